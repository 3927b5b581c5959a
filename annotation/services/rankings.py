"""Writes for rankings: checking an order of tie groups and storing it with the comparisons it implies."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from annotation.errors import Conflict, ValidationFailed
from annotation.models import Comparison, Prompt, Ranking, RankingItem
from annotation.models.assignments import Assignment, TaskKind
from annotation.models.rankings import FLAG_KEYS, RankingSource
from annotation.rows import row_exists, rows_insert
from annotation.services.leases import prompt_done_counts_add

MAX_COMMENT_CHARS = 10_000


@dataclass
class ItemInput:
    """A labeler's judgement of one candidate beyond its place: a 1-7 rating and flags."""

    rating: int | None = None
    flags: list[str] = field(default_factory=list)


def comparisons_from_order(*, order: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    """Every (better, worse) pair implied by tie groups, best group first. Tied candidates form no pair.

    [[3], [1, 4], [2]] -> (3,1) (3,4) (3,2) (1,2) (4,2): C(4,2) = 6 pairs minus the one tie.
    """
    pairs: list[tuple[int, int]] = []
    for group_index, group in enumerate(order):
        for better in group:
            for later_group in order[group_index + 1 :]:
                pairs.extend((better, worse) for worse in later_group)
    return pairs


def order_validate(*, order: Any, candidate_ids: Sequence[int]) -> list[list[int]]:
    """Check that `order` is a list of non-empty tie groups naming each candidate exactly once.

    Returns the order with ints; raises ValidationFailed naming what is wrong (unknown, missing,
    repeated candidate, or a malformed group).
    """
    if not isinstance(order, list) or not order:
        raise ValidationFailed("order must be a non-empty list of tie groups", code="invalid_order")
    expected = set(candidate_ids)
    seen: set[int] = set()
    repeated: list[int] = []
    unknown: list[Any] = []
    cleaned: list[list[int]] = []
    for group in order:
        if not isinstance(group, list) or not group:
            raise ValidationFailed(
                "each tie group must be a non-empty list of candidate ids", code="invalid_order"
            )
        cleaned_group: list[int] = []
        for value in group:
            if isinstance(value, bool) or not isinstance(value, int):
                unknown.append(value)
                continue
            if value not in expected:
                unknown.append(value)
            elif value in seen:
                repeated.append(value)
            else:
                seen.add(value)
                cleaned_group.append(value)
        cleaned.append(cleaned_group)
    if unknown:
        raise ValidationFailed(
            f"unknown candidate(s) {unknown}: not among this task's candidates",
            code="unknown_candidate",
            details={"unknown": unknown},
        )
    if repeated:
        raise ValidationFailed(
            f"candidate(s) {sorted(set(repeated))} appear more than once",
            code="repeated_candidate",
            details={"repeated": sorted(set(repeated))},
        )
    missing = sorted(expected - seen)
    if missing:
        raise ValidationFailed(
            f"candidate(s) {missing} are missing from the order",
            code="missing_candidate",
            details={"missing": missing},
        )
    return cleaned


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
) -> Ranking:
    """Validate and store one ranking of `candidate_ids`, its items and its comparisons, in one transaction.

    `candidate_ids` are the candidates the ranker was shown (for a labeler: the assignment's shown
    order). Nothing is written if anything is invalid.
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
    if labeler is not None and row_exists(
        f"SELECT 1 FROM {Ranking._meta.db_table} WHERE prompt_id = %s AND labeler_id = %s LIMIT 1",
        [prompt.pk, labeler.pk],
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
    )
    rows_insert(
        RankingItem,
        fields=("ranking", "candidate", "rank", "rating", "flags"),
        rows=[
            (
                ranking.pk,
                candidate_id,
                group_index,
                items.get(candidate_id, ItemInput()).rating,
                sorted(set(items.get(candidate_id, ItemInput()).flags)),
            )
            for group_index, group in enumerate(cleaned_order)
            for candidate_id in group
        ],
    )
    if source == RankingSource.LABELER:
        prompt_done_counts_add(prompt_id=prompt.pk, kind=TaskKind.RANK)
    now = timezone.now()
    rows_insert(
        Comparison,
        fields=("ranking", "prompt", "labeler", "better", "worse", "created_at"),
        rows=[
            (ranking.pk, prompt.pk, labeler.pk if labeler else None, better, worse, now)
            for better, worse in comparisons_from_order(order=cleaned_order)
        ],
    )
    return ranking


@transaction.atomic
def ranking_submit(
    *,
    assignment_id: int,
    labeler: User,
    order: Any,
    idempotency_key: str,
    items: dict[int, ItemInput] | None = None,
    comment: str = "",
    seconds_spent: float = 0.0,
) -> tuple[Ranking, bool]:
    """Store the labeler's ranking for their rank assignment: (ranking, created).

    Checks the assignment (theirs, a rank task, not skipped, lease live or its slot still free),
    then stores the ranking of exactly the candidates they were shown with its comparisons.
    A retry with the same idempotency key returns the first ranking and writes nothing.
    """
    # Imported here so that rankings.py, which other services import for ranking_record, pulls in
    # the queue machinery only when a labeler actually submits.
    from annotation.services.assignments import assignment_claim_for_submit, assignment_mark_submitted
    from annotation.services.demonstrations import seconds_spent_validate

    now = timezone.now()
    assignment, replay = assignment_claim_for_submit(
        assignment_id=assignment_id,
        labeler=labeler,
        kind=TaskKind.RANK,
        idempotency_key=idempotency_key,
        now=now,
    )
    if replay:
        return Ranking.objects.get(assignment=assignment), False
    ranking = ranking_record(
        prompt=assignment.prompt,
        candidate_ids=assignment.shown_order,
        order=order,
        labeler=labeler,
        items=items,
        comment=comment,
        seconds_spent=seconds_spent_validate(seconds_spent=seconds_spent),
        assignment=assignment,
    )
    assignment_mark_submitted(assignment=assignment, idempotency_key=idempotency_key, now=now)
    return ranking, True
