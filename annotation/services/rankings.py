"""Writes for rankings: checking an order of tie groups and storing it with the comparisons it implies."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from annotation.models import Project, Prompt, Ranking
from annotation.models.assignments import Assignment, TaskKind
from annotation.models.rankings import FLAG_KEYS, RankingSource
from annotation.ranking_math import comparisons_from_order, order_validate
from annotation.services.gold import gold_check_submitted
from annotation.services.review import ranking_review_sample
from annotation.services.submissions import prompt_done_counts_add, submission_store
from annotation.services.webhooks import webhook_ranking_submitted
from annotation.sql.requests import ranking_children_insert
from config.errors import Conflict, ValidationFailed

MAX_COMMENT_CHARS = 10_000


@dataclass
class ItemInput:
    """A labeler's judgement of one candidate beyond its place: a 1-7 rating and flags."""

    rating: int | None = None
    flags: list[str] = field(default_factory=list)


def items_validate(*, items: dict[int, ItemInput], candidate_ids: Sequence[int]) -> None:
    """Ratings are 1-7 (or absent), flags come from FLAG_CHOICES, and items name only known candidates."""
    known = set(candidate_ids)
    for candidate_id, item in items.items():
        if candidate_id not in known:
            raise ValidationFailed(
                f"rating or flags given for unknown candidate {candidate_id}",
                code="unknown_candidate",
                details={"unknown": [candidate_id]},
            )
        if item.rating is not None and (
            isinstance(item.rating, bool) or not isinstance(item.rating, int) or not 1 <= item.rating <= 7
        ):
            raise ValidationFailed(
                f"rating {item.rating!r} for candidate {candidate_id} is outside 1-7",
                code="invalid_rating",
                details={"candidate": candidate_id, "rating": item.rating},
            )
        bad_flags = sorted(set(item.flags) - FLAG_KEYS)
        if bad_flags:
            raise ValidationFailed(
                f"unknown flag(s) {bad_flags} for candidate {candidate_id}",
                code="invalid_flag",
                details={"candidate": candidate_id, "flags": bad_flags},
            )


def ratings_required_check(
    *, project: Project, items: dict[int, ItemInput], candidate_ids: Sequence[int]
) -> None:
    """Where the project asks for a 1-7 rating of every answer, every shown candidate has one."""
    if not project.ratings_required:
        return
    rated = {candidate_id for candidate_id, item in items.items() if item.rating is not None}
    unrated = [candidate_id for candidate_id in candidate_ids if candidate_id not in rated]
    if unrated:
        raise ValidationFailed(
            "this project asks for a 1-7 rating of every answer",
            code="rating_required",
            details={"unrated": unrated},
        )


# No savepoint of its own inside a caller's transaction (a submission, an import): any error
# rolls the caller's whole transaction back anyway, and a savepoint costs two round trips.
# A caller that catches its errors and carries on must wrap the call in its own atomic block.
@transaction.atomic(savepoint=False)
def ranking_record(
    *,
    prompt: Prompt,
    candidate_ids: Sequence[int],
    order: Any,
    labeler: User | None,
    items: dict[int, ItemInput] | None = None,
    comment: str = "",
    seconds_spent: float = 0.0,
    source: str = RankingSource.LABELER,
    assignment: Assignment | None = None,
    none_acceptable: bool = False,
) -> Ranking:
    """Validate and store one ranking of `candidate_ids`, its items and its comparisons, in one transaction.

    `candidate_ids` are the candidates the ranker was shown (for a labeler: the assignment's shown
    order). `none_acceptable` marks a ranking whose ranker found no answer good enough: its order
    still says which is least bad, so its comparisons are stored all the same. Nothing is written if
    anything is invalid.
    """
    items = items or {}
    cleaned_order = order_validate(order=order, candidate_ids=candidate_ids)
    items_validate(items=items, candidate_ids=candidate_ids)
    if len(comment) > MAX_COMMENT_CHARS:
        raise ValidationFailed(
            f"comment is longer than {MAX_COMMENT_CHARS} characters", code="invalid_comment"
        )
    if seconds_spent < 0:
        raise ValidationFailed("seconds_spent cannot be negative", code="invalid_time")
    if (
        labeler is not None
        and assignment is None  # a submission has checked this already, under the assignment's lock
        and Ranking.objects.filter(prompt=prompt, labeler=labeler).exists()
    ):
        # A conflict with stored work, as for a second demonstration: 409, not a bad body.
        raise Conflict("this labeler has already ranked this prompt", code="already_ranked")

    ranking = Ranking.objects.create(
        prompt=prompt,
        labeler=labeler,
        assignment=assignment,
        source=source,
        order=cleaned_order,
        comment=comment,
        seconds_spent=seconds_spent,
        none_acceptable=none_acceptable,
    )
    if source == RankingSource.LABELER:
        prompt_done_counts_add(prompt_id=prompt.pk, kind=TaskKind.RANK)
    ranking_children_insert(
        ranking=ranking,
        items=[
            (
                candidate_id,
                group_index,
                items.get(candidate_id, ItemInput()).rating,
                sorted(set(items.get(candidate_id, ItemInput()).flags)),
            )
            for group_index, group in enumerate(cleaned_order)
            for candidate_id in group
        ],
        comparisons=comparisons_from_order(order=cleaned_order),
        created_at=timezone.now(),
    )
    return ranking


def ranking_submit(
    *,
    assignment_id: int,
    labeler: User,
    order: Any,
    idempotency_key: str,
    items: dict[int, ItemInput] | None = None,
    comment: str = "",
    seconds_spent: float = 0.0,
    none_acceptable: bool = False,
) -> tuple[Ranking, bool]:
    """Store the labeler's ranking for their rank assignment: (ranking, created).

    Checks the assignment (see `submission_store`), then stores the ranking of exactly the
    candidates they were shown with its comparisons, marked `none_acceptable` when the labeler found
    no answer good enough. A retry with the same idempotency key returns the first ranking and
    writes nothing.
    """

    def store(assignment: Assignment, seconds: float) -> Ranking:
        ratings_required_check(
            project=assignment.project, items=items or {}, candidate_ids=assignment.shown_order
        )
        ranking = ranking_record(
            prompt=assignment.prompt,
            candidate_ids=assignment.shown_order,
            order=order,
            labeler=labeler,
            items=items,
            comment=comment,
            seconds_spent=seconds,
            assignment=assignment,
            none_acceptable=none_acceptable,
        )
        # A gold check is set aside (never counted, never sampled for review); real work may be sampled.
        if gold_check_submitted(assignment=assignment, ranking=ranking) is None:
            ranking_review_sample(ranking=ranking, project=assignment.project)
        # Sent once this submission commits; a rolled-back one sends nothing.
        webhook_ranking_submitted(ranking=ranking, project_id=assignment.project_id)
        return ranking

    return submission_store(
        assignment_id=assignment_id,
        labeler=labeler,
        kind=TaskKind.RANK,
        idempotency_key=idempotency_key,
        seconds_spent=seconds_spent,
        store=store,
        stored=lambda assignment: Ranking.objects.get(assignment=assignment),
    )
