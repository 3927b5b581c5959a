"""Reads for review and adjudication: the next submission a reviewer judges, what they see of it, and
the prompts whose labelers disagree beyond the project's threshold.

A reviewer holds the item they were given for REVIEW_LEASE_SECONDS (a cache entry, atomic on Redis),
so two reviewers asking at once get different items; a decided item leaves the queue by its state,
so the lease needs no release.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from itertools import combinations, groupby
from typing import Any

from django.contrib.auth.models import User
from django.core.cache import cache
from django.db.models import Max, Q

from annotation.models import Candidate, Demonstration, Project, Prompt, Ranking, RankingItem
from annotation.models.prompts import FINISH_REASON_LENGTH
from annotation.models.quality import COUNTING_STATES, QualityAction, QualityEvent, QualityState, ReviewKind
from annotation.models.rankings import RankingSource
from annotation.ranking_math import AgreementTally, pair_set, pairwise_counts
from config.errors import NotFound

REVIEW_LEASE_SECONDS = 10 * 60  # long enough to read K answers; a reviewer who walks away frees it
# The oldest items looked at per kind when finding one not leased to someone else.
REVIEW_SCAN = 50


def _lease_key(kind: str, item_id: int, created_at: datetime) -> str:
    # The creation time keeps a reused id (a test database rolled back) from inheriting a lease.
    return f"review-lease:{kind}:{item_id}:{created_at.timestamp()}"


def _waiting(model: type[Ranking] | type[Demonstration], *, project: Project, reviewer: User):
    return (
        model.objects.filter(prompt__project=project, quality_state=QualityState.UNDER_REVIEW)
        .exclude(labeler=reviewer)
        .annotate(
            sent_at=Max(
                "quality_events__created_at",
                filter=Q(quality_events__action=QualityAction.REVIEW_REQUEST),
            )
        )
        .order_by("sent_at", "id")
        .values_list("id", "created_at", "sent_at")
    )


def review_waiting_count(*, project: Project, reviewer: User) -> int:
    """Submissions under review in the project that this reviewer may judge (not their own)."""
    return sum(
        model.objects.filter(prompt__project=project, quality_state=QualityState.UNDER_REVIEW)
        .exclude(labeler=reviewer)
        .count()
        for model in (Ranking, Demonstration)
    )


def review_next(*, project: Project, reviewer: User) -> tuple[str, int] | None:
    """(kind, id) of the submission this reviewer judges next, leased to them; None when none waits.

    Oldest sent to review first, rankings and demonstrations together; never the reviewer's own work;
    an item leased to another reviewer is passed over until its lease ends.
    """
    waiting: list[tuple[datetime | None, str, int, datetime]] = []
    for kind, model in ((ReviewKind.RANKING, Ranking), (ReviewKind.DEMONSTRATION, Demonstration)):
        for item_id, created_at, sent_at in _waiting(model, project=project, reviewer=reviewer)[:REVIEW_SCAN]:
            waiting.append((sent_at or created_at, kind, item_id, created_at))
    waiting.sort(key=lambda row: (row[0], row[1], row[2]))
    for _sent, kind, item_id, created_at in waiting:
        key = _lease_key(kind, item_id, created_at)
        if cache.add(key, reviewer.pk, timeout=REVIEW_LEASE_SECONDS) or cache.get(key) == reviewer.pk:
            return kind, item_id
    return None


def _prompt_part(prompt: Prompt) -> dict[str, Any]:
    return {"id": prompt.pk, "turns": prompt.turns}


def _review_requests(**owner: Any) -> list[dict[str, Any]]:
    events = QualityEvent.objects.filter(action=QualityAction.REVIEW_REQUEST, **owner).order_by("created_at")
    return [{"reason": event.reason, "at": event.created_at} for event in events]


def _candidates(ids: list[int]) -> dict[int, dict[str, Any]]:
    rows = Candidate.objects.filter(pk__in=ids).values_list("pk", "text", "finish_reason")
    return {
        pk: {"id": pk, "text": text, "cut_off": reason == FINISH_REASON_LENGTH} for pk, text, reason in rows
    }


def review_item(*, project: Project, kind: str, item_id: int) -> dict[str, Any]:
    """What the reviewer judges: the prompt, who did the work, and the work itself.

    A ranking's answers come in the order the labeler was shown them, each with its letter; its
    order is tie groups of candidate ids, and each answer's rating and flags. NotFound outside
    the project.
    """
    model = Ranking if kind == ReviewKind.RANKING else Demonstration
    item = (
        model.objects.select_related("prompt", "labeler").filter(pk=item_id, prompt__project=project).first()
    )
    if item is None:
        raise NotFound(f"no such {kind} in this project", code=f"{kind}_not_found")
    result: dict[str, Any] = {
        "kind": kind,
        "id": item.pk,
        "labeler": item.labeler.username if item.labeler else None,
        "quality_state": item.quality_state,
        "created_at": item.created_at,
        "seconds_spent": item.seconds_spent,
        "prompt": _prompt_part(item.prompt),
        "requests": _review_requests(**{kind: item}),
        "ranking": None,
        "demonstration": None,
    }
    if isinstance(item, Ranking):
        shown = list(item.assignment.shown_order or []) if item.assignment_id and item.assignment else []
        named = [cid for group in item.order for cid in group]
        ordered = shown + [cid for cid in named if cid not in shown]
        texts = _candidates(ordered)
        items = {row.candidate_id: row for row in RankingItem.objects.filter(ranking=item)}
        answers = []
        for index, candidate_id in enumerate(ordered):
            answer = dict(texts.get(candidate_id, {"id": candidate_id, "text": "", "cut_off": False}))
            row = items.get(candidate_id)
            answer.update(
                letter=chr(65 + index),
                rating=row.rating if row else None,
                flags=list(row.flags) if row else [],
            )
            answers.append(answer)
        result["ranking"] = {
            "answers": answers,
            "order": item.order,
            "comment": item.comment,
            "none_acceptable": item.none_acceptable,
        }
    else:
        result["demonstration"] = {"text": item.text}
    return result


def _labeler_ranking_groups(*, project: Project) -> Iterator[list[tuple[int, int, Any]]]:
    rows = (
        Ranking.objects.filter(
            prompt__project=project, source=RankingSource.LABELER, quality_state__in=COUNTING_STATES
        )
        .order_by("prompt_id", "id")
        .values_list("prompt_id", "id", "order")
        .iterator(chunk_size=2000)
    )
    for _prompt_id, group in groupby(rows, key=lambda row: row[0]):
        yield list(group)


def adjudication_candidate_ids(*, prompt: Prompt) -> list[int]:
    """The answers an adjudicated order ranks: every candidate the prompt's counted labeler rankings
    name, in the order they were first shown."""
    seen: list[int] = []
    rankings = Ranking.objects.filter(
        prompt=prompt, source=RankingSource.LABELER, quality_state__in=COUNTING_STATES
    ).select_related("assignment")
    for ranking in rankings.order_by("id"):
        shown = list(ranking.assignment.shown_order or []) if ranking.assignment else []
        named = shown or [cid for group in ranking.order for cid in group]
        seen.extend(cid for cid in named if cid not in seen)
    return seen


def adjudication_prompts(*, project: Project) -> list[dict[str, Any]]:
    """Prompts that wait for adjudication: ranked by at least two labelers (counted rankings) whose
    pairwise agreement is below the project's threshold, and not adjudicated yet. Lowest agreement
    first. Empty when the threshold is 0 (off).

    One streaming pass over the project's labeler rankings, grouped by prompt.
    """
    threshold = project.adjudication_threshold
    if threshold <= 0:
        return []
    adjudicated = set(
        Ranking.objects.filter(prompt__project=project, source=RankingSource.ADJUDICATION).values_list(
            "prompt_id", flat=True
        )
    )
    below: dict[int, tuple[float, int]] = {}
    for group in _labeler_ranking_groups(project=project):
        prompt_id = group[0][0]
        if len(group) < 2 or prompt_id in adjudicated:
            continue
        tally = AgreementTally()
        sets = [pair_set(order) for _p, _id, order in group]
        for first, second in combinations(sets, 2):
            agreed, compared = pairwise_counts(first, second)
            tally.add(agreed=agreed, compared=compared, tau=None)
        agreement = tally.agreement
        if agreement is not None and agreement < threshold:
            below[prompt_id] = (agreement, len(group))
    titles = {prompt.pk: prompt.title for prompt in Prompt.objects.filter(pk__in=below).only("pk", "turns")}
    rows = [
        {"prompt_id": pk, "title": titles.get(pk, ""), "agreement": agreement, "ranking_count": count}
        for pk, (agreement, count) in below.items()
    ]
    rows.sort(key=lambda row: (row["agreement"], row["prompt_id"]))
    return rows


def adjudication_detail(*, project: Project, prompt_id: int) -> dict[str, Any]:
    """One prompt for adjudication: its conversation, every answer its counted labeler rankings name
    (in the order first shown), each such ranking side by side, their agreement, and the
    adjudicated ranking if there is one."""
    prompt = Prompt.objects.filter(pk=prompt_id, project=project).first()
    if prompt is None:
        raise NotFound("no such prompt in this project", code="prompt_not_found")
    candidate_ids = adjudication_candidate_ids(prompt=prompt)
    texts = _candidates(candidate_ids)
    letters = {cid: chr(65 + index) for index, cid in enumerate(candidate_ids)}
    rankings = list(
        Ranking.objects.filter(prompt=prompt, source=RankingSource.LABELER, quality_state__in=COUNTING_STATES)
        .select_related("labeler")
        .order_by("id")
    )
    tally = AgreementTally()
    for first, second in combinations(rankings, 2):
        agreed, compared = pairwise_counts(pair_set(first.order), pair_set(second.order))
        tally.add(agreed=agreed, compared=compared, tau=None)
    adjudicated = Ranking.objects.filter(prompt=prompt, source=RankingSource.ADJUDICATION).first()
    return {
        "prompt": _prompt_part(prompt),
        "answers": [
            dict(texts.get(cid, {"id": cid, "text": "", "cut_off": False}), letter=letters[cid])
            for cid in candidate_ids
        ],
        "rankings": [
            {
                "id": ranking.pk,
                "labeler": ranking.labeler.username if ranking.labeler else None,
                "order": ranking.order,
                "none_acceptable": ranking.none_acceptable,
                "comment": ranking.comment,
            }
            for ranking in rankings
        ],
        "agreement": tally.agreement,
        "threshold": project.adjudication_threshold,
        "adjudicated": (
            {"id": adjudicated.pk, "order": adjudicated.order, "is_gold": adjudicated.is_gold}
            if adjudicated
            else None
        ),
    }
