"""A labeler's own past work, newest first: the demonstrations and rankings they submitted and the tasks they skipped.

The list is one of assignments: every submission and every skip closes exactly one, so the three kinds
share one order and one paginated query, and the rows of a page are then filled in with a few batched
reads. Only the labeler's own work is ever read: the filter on the labeler lives here, not in the callers.

A row is a mapping with a nested part per kind (`demonstration`, `ranking`, `skip`, the others None), so
what a later review adds (its state and notes) is one more key beside them, not a new shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.db.models.functions import Coalesce, Substr

from annotation.models import Assignment, Candidate, Demonstration, Project, QualityEvent, Ranking
from annotation.models.assignments import AssignmentStatus, TaskKind
from annotation.models.quality import QualityAction
from annotation.permissions import projects_for_role
from config.errors import ValidationFailed

# Enough to recognise a task at a glance on a phone; the whole text is one click away on the task page.
PROMPT_EXCERPT_CHARS = 160
DEMONSTRATION_EXCERPT_CHARS = 280
ANSWER_EXCERPT_CHARS = 140
COMMENT_EXCERPT_CHARS = 500
# Long texts are cut in the database, to this many times their excerpt (whitespace collapses after).
HEAD_FACTOR = 2

CLOSED = (AssignmentStatus.SUBMITTED, AssignmentStatus.SKIPPED)


class HistoryKind:
    DEMONSTRATION = "demonstration"
    RANKING = "ranking"
    SKIP = "skip"


def excerpt(text: str, *, limit: int, cut_already: bool = False) -> str:
    """`text` on one line, cut at a word boundary to at most `limit` characters, with an ellipsis if cut
    (here, or already: `cut_already` for a head the database cut off a longer text)."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat + "…" if cut_already else flat
    cut = flat[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip() + "…"


def labeler_history(*, labeler: User, project_id: int | None = None) -> QuerySet[Assignment]:
    """The labeler's closed tasks (submitted or skipped), newest first, of one project if given.

    Each is annotated with `closed_at`: when it was submitted or skipped. Skips made before skips
    recorded their time have only their lease's start.
    """
    closed = (
        Assignment.objects.filter(labeler=labeler, status__in=CLOSED)
        .annotate(closed_at=Coalesce("submitted_at", "leased_at"))
        .select_related("project", "prompt")
        .order_by("-closed_at", "-id")
    )
    if project_id is not None:
        closed = closed.filter(project_id=project_id)
    return closed


def labeler_history_projects(*, labeler: User) -> QuerySet[Project]:
    """Projects the labeler may filter their history by: those they belong to and those they worked in, by name."""
    worked_in = Assignment.objects.filter(project=OuterRef("pk"), labeler=labeler, status__in=CLOSED)
    member_of = projects_for_role(user=labeler).values("pk")
    return Project.objects.filter(Q(pk__in=member_of) | Exists(worked_in)).order_by("name", "id")


def labeler_history_project_validate(*, labeler: User, project_id: int) -> None:
    """Refuse a project filter naming a project the labeler neither belongs to nor worked in.

    A project that does not exist and one that is not theirs get the same answer, so ids cannot be probed.
    """
    if not labeler_history_projects(labeler=labeler).filter(pk=project_id).exists():
        raise ValidationFailed(
            f"project {project_id} is not one of your projects",
            code="unknown_project",
            details={"project": project_id},
        )


def _head_excerpt(head: str, *, limit: int) -> str:
    return excerpt(head, limit=limit, cut_already=len(head) >= limit * HEAD_FACTOR)


def _first_user_turn(turns: Any) -> str:
    if not isinstance(turns, list):
        return ""
    return next(
        (str(t.get("content", "")) for t in turns if isinstance(t, dict) and t.get("role") == "user"), ""
    )


def _draft_seconds(draft: Any) -> float | None:
    # A skip sends no time; the page's last autosave of its clock is the best the server knows.
    seconds = draft.get("seconds_spent") if isinstance(draft, dict) else None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        return None
    return float(seconds)


def _ranking_parts(rankings: list[Ranking], *, shown: dict[int, list[int]]) -> dict[int, dict[str, Any]]:
    """Per assignment id: the ranking's order as tie groups of answers (letter as shown, excerpt, rating, flags)."""
    candidate_ids = {cid for ranking in rankings for group in ranking.order for cid in group}
    texts = dict(
        Candidate.objects.filter(pk__in=candidate_ids)
        .annotate(head=Substr("text", 1, ANSWER_EXCERPT_CHARS * HEAD_FACTOR))
        .values_list("pk", "head")
    )
    parts: dict[int, dict[str, Any]] = {}
    for ranking in rankings:
        if ranking.assignment_id is None:  # fetched by assignment: never, but the type allows it
            continue
        items = {item.candidate_id: item for item in ranking.items.all()}
        order = shown.get(ranking.assignment_id, [])
        groups = []
        for group in ranking.order:
            answers = []
            for candidate_id in group:
                item = items.get(candidate_id)
                answers.append(
                    {
                        # The letter the labeler saw the answer under; never its id.
                        "letter": chr(65 + order.index(candidate_id)) if candidate_id in order else None,
                        "excerpt": _head_excerpt(texts.get(candidate_id, ""), limit=ANSWER_EXCERPT_CHARS),
                        "rating": item.rating if item else None,
                        "flags": list(item.flags) if item else [],
                    }
                )
            groups.append(answers)
        parts[ranking.assignment_id] = {
            "order": groups,
            "comment": excerpt(ranking.comment, limit=COMMENT_EXCERPT_CHARS),
            "none_acceptable": ranking.none_acceptable,
            "seconds_spent": ranking.seconds_spent,
        }
    return parts


REVIEW_OUTCOMES: dict[str, str] = {
    QualityAction.REVIEW_REQUEST: "pending",
    QualityAction.REVIEW_ACCEPT: "accepted",
    QualityAction.REVIEW_REJECT: "rejected",
}


def _latest_reviews(
    *, ranking_ids: list[int], demonstration_ids: list[int]
) -> dict[tuple[str, int], dict[str, Any]]:
    """Per ("ranking" | "demonstration", id): the latest review event's outcome, the reviewer's note
    and when. Why it was sent to review (a sample, a signal) is the reviewers' business, not shown."""
    events = (
        QualityEvent.objects.filter(action__in=list(REVIEW_OUTCOMES))
        .filter(Q(ranking_id__in=ranking_ids) | Q(demonstration_id__in=demonstration_ids))
        .order_by("created_at", "id")
        .values_list("ranking_id", "demonstration_id", "action", "reason", "created_at")
    )
    latest: dict[tuple[str, int], dict[str, Any]] = {}
    for ranking_id, demonstration_id, action, reason, at in events:
        key = (
            (HistoryKind.RANKING, ranking_id) if ranking_id else (HistoryKind.DEMONSTRATION, demonstration_id)
        )
        outcome = REVIEW_OUTCOMES[action]
        latest[key] = {"outcome": outcome, "note": "" if outcome == "pending" else reason, "at": at}
    return latest


def history_rows(*, assignments: Sequence[Assignment]) -> list[dict[str, Any]]:
    """One row per closed assignment (as `labeler_history` returns them), in the order given.

    Four batched reads whatever the number of rows: rankings with their items, demonstrations,
    the excerpts of the ranked answers, and the latest review of each submission.
    """
    ids = [a.pk for a in assignments]
    rankings = list(Ranking.objects.filter(assignment_id__in=ids).prefetch_related("items"))
    shown = {a.pk: list(a.shown_order or []) for a in assignments}
    ranked = _ranking_parts(rankings, shown=shown)
    demonstrated = {
        row["assignment_id"]: row
        for row in Demonstration.objects.filter(assignment_id__in=ids)
        .annotate(head=Substr("text", 1, DEMONSTRATION_EXCERPT_CHARS * HEAD_FACTOR))
        .values("assignment_id", "id", "head", "seconds_spent")
    }
    reviews = _latest_reviews(
        ranking_ids=[ranking.pk for ranking in rankings],
        demonstration_ids=[row["id"] for row in demonstrated.values()],
    )
    ranking_ids = {ranking.assignment_id: ranking.pk for ranking in rankings}
    rows = []
    for assignment in assignments:
        closed_at: datetime = getattr(assignment, "closed_at", None) or assignment.leased_at
        row: dict[str, Any] = {
            "id": assignment.pk,
            "task_kind": assignment.kind,
            "project": {"id": assignment.project_id, "name": assignment.project.name},
            "prompt_excerpt": excerpt(_first_user_turn(assignment.prompt.turns), limit=PROMPT_EXCERPT_CHARS),
            "at": closed_at,
            "seconds_spent": None,
            "demonstration": None,
            "ranking": None,
            "skip": None,
            "review": None,
        }
        if assignment.status == AssignmentStatus.SKIPPED:
            row.update(
                kind=HistoryKind.SKIP,
                skip={"reason": assignment.skip_reason},
                seconds_spent=_draft_seconds(assignment.draft),
            )
        elif assignment.kind == TaskKind.RANK:
            ranking = ranked.get(assignment.pk)
            row["kind"] = HistoryKind.RANKING
            if ranking is not None:
                row["seconds_spent"] = ranking.pop("seconds_spent")
                row["ranking"] = ranking
                row["review"] = reviews.get((HistoryKind.RANKING, ranking_ids[assignment.pk]))
        else:
            demonstration = demonstrated.get(assignment.pk)
            row["kind"] = HistoryKind.DEMONSTRATION
            if demonstration is not None:
                row["seconds_spent"] = demonstration["seconds_spent"]
                row["demonstration"] = {
                    "excerpt": _head_excerpt(demonstration["head"], limit=DEMONSTRATION_EXCERPT_CHARS)
                }
                row["review"] = reviews.get((HistoryKind.DEMONSTRATION, demonstration["id"]))
        rows.append(row)
    return rows
