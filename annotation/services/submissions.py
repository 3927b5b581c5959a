"""The bookkeeping every submission shares, whatever it stores: claim the task, replay a retry,
check the time spent, mark the task submitted; and the prompts' done counts that the queue reads.

`submission_store` is the one skeleton: `ranking_submit` and `demonstration_submit` only say how
to validate and store their own rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import F, OuterRef, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotation.models import Assignment, Demonstration, Prompt, Ranking
from annotation.models.assignments import AssignmentStatus, TaskKind
from annotation.models.quality import COUNTING_STATES
from annotation.models.rankings import RankingSource
from annotation.selectors.queue import count_per_prompt, slot_capacity
from annotation.services.assignments import assignment_get_for_labeler, assignment_newer_leases
from annotation.sql.queue import prompt_done_count_add, slots_taken
from annotation.sql.requests import assignment_submitted_update, submission_conflicts
from config.errors import Conflict, ValidationFailed

MAX_SECONDS_SPENT = 7 * 24 * 3600
MAX_IDEMPOTENCY_KEY_CHARS = 100

Stored = TypeVar("Stored")


def seconds_spent_validate(*, seconds_spent: float) -> float:
    """The time a labeler spent on a task, in seconds: a finite number from 0 to a week."""
    if (
        isinstance(seconds_spent, bool)
        or not isinstance(seconds_spent, int | float)
        or not math.isfinite(seconds_spent)
        or not 0 <= seconds_spent <= MAX_SECONDS_SPENT
    ):
        raise ValidationFailed(
            f"seconds_spent must be a number between 0 and {MAX_SECONDS_SPENT}", code="invalid_time"
        )
    return float(seconds_spent)


@transaction.atomic
def submission_store(
    *,
    assignment_id: int,
    labeler: User,
    kind: str,
    idempotency_key: str,
    seconds_spent: float,
    store: Callable[[Assignment, float], Stored],
    stored: Callable[[Assignment], Stored],
) -> tuple[Stored, bool]:
    """Submit the labeler's task of `kind`: (what `store` wrote, True), or (what `stored` finds, False).

    Claims the assignment (theirs, of this kind, not skipped, the project still open to them, the
    lease live or its slot still free); a retry with the key that submitted it replays `stored`
    and writes nothing. Otherwise `store(assignment, seconds)` validates and writes the work (and
    its done count, see `prompt_done_counts_add`), and the assignment is marked submitted, all in
    one transaction: any error leaves nothing behind.
    """
    now = timezone.now()
    assignment, replay = _submission_claim(
        assignment_id=assignment_id, labeler=labeler, kind=kind, idempotency_key=idempotency_key, now=now
    )
    if replay:
        return stored(assignment), False
    result = store(assignment, seconds_spent_validate(seconds_spent=seconds_spent))
    assignment.status = AssignmentStatus.SUBMITTED
    assignment.submitted_at = now
    assignment.idempotency_key = idempotency_key.strip()
    try:
        assignment_submitted_update(assignment=assignment)
    except IntegrityError:  # the same key sent for another task at the same instant
        raise Conflict(
            "this idempotency_key was already used for another task", code="idempotency_key_reused"
        ) from None
    return result, True


def _submission_claim(
    *, assignment_id: int, labeler: User, kind: str, idempotency_key: str, now: datetime
) -> tuple[Assignment, bool]:
    """Lock the labeler's assignment for a submission: (assignment, False) to store, (assignment, True) to replay.

    A retry with the key that submitted it replays; any other key on a submitted task, a skipped
    task, or a key used on another task is a Conflict. A lease that expired is still accepted when
    its slot is free, checked under the prompt lock.
    """
    key = (idempotency_key or "").strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY_CHARS:
        raise ValidationFailed(
            f"idempotency_key must be 1-{MAX_IDEMPOTENCY_KEY_CHARS} characters",
            code="invalid_idempotency_key",
        )
    assignment = assignment_get_for_labeler(assignment_id=assignment_id, labeler=labeler, lock=True)
    if assignment.kind != kind:
        raise ValidationFailed(
            f"assignment {assignment.pk} is a {assignment.kind} task, not {kind}", code="wrong_kind"
        )
    if assignment.status == AssignmentStatus.SUBMITTED:
        if assignment.idempotency_key == key:
            return assignment, True
        raise Conflict("this task was already submitted", code="already_submitted")
    if assignment.status == AssignmentStatus.SKIPPED:
        raise Conflict("this task was skipped; it cannot be submitted", code="skipped")
    conflicts = submission_conflicts(assignment=assignment, labeler_id=labeler.pk, key=key)
    if not assignment.project.is_active or not (labeler.is_superuser or conflicts.member):
        raise Conflict("this project is closed to you now; your work was not stored", code="project_closed")
    if conflicts.key_used_elsewhere:
        raise Conflict(
            "this idempotency_key was already used for another task", code="idempotency_key_reused"
        )
    if conflicts.already_done:  # a conflict with stored work: 409, not a bad body
        if kind in (TaskKind.RANK, TaskKind.CONVERSE):
            raise Conflict("this labeler has already ranked this prompt", code="already_ranked")
        raise Conflict(
            "you have already written a demonstration for this prompt", code="already_demonstrated"
        )
    if assignment.status == AssignmentStatus.EXPIRED or assignment.expires_at <= now:
        _late_submission_check(assignment=assignment, now=now)
    return assignment, False


def _late_submission_check(*, assignment: Assignment, now: datetime) -> None:
    """Keep work sent after the lease ran out only if nobody has taken its slot since."""
    Prompt.objects.select_for_update().filter(pk=assignment.prompt_id).values_list("pk").first()
    newer = assignment_newer_leases(assignment=assignment).first()
    if newer is not None:
        raise Conflict(
            "your lease on this task expired and you hold a newer one; submit that one",
            code="lease_expired",
            details={"newer_assignment": newer.pk},
        )
    capacity = slot_capacity(project=assignment.project, kind=assignment.kind)
    if assignment.kind == TaskKind.RANK:
        capacity += Prompt.objects.values_list("extra_rankings", flat=True).get(pk=assignment.prompt_id)
    taken = slots_taken(
        prompt_id=assignment.prompt_id, kind=assignment.kind, now=now, exclude_assignment_id=assignment.pk
    )
    if taken >= capacity:
        raise Conflict(
            "your lease on this task expired and other labelers have since filled it; your work was not stored",
            code="lease_expired",
            details={"expired_at": assignment.expires_at.isoformat()},
        )


# ---- Done counts ----------------------------------------------------------------------------------
# Each prompt counts its submitted work (labelers' rankings, demonstrations) so that the queue's
# fast paths walk partial indexes of untouched and partly done prompts instead of counting rows.


def prompt_done_counts_add(*, prompt_id: int, kind: str, delta: int = 1) -> None:
    """Count one more piece of submitted work on the prompt (or `delta`: -1 for work that stopped
    counting); call it in the transaction that changes the work."""
    prompt_done_count_add(prompt_id=prompt_id, kind=kind, delta=delta)


def _done_count(kind: str) -> Coalesce:
    if kind == TaskKind.RANK:
        return count_per_prompt(
            Ranking.objects.filter(
                prompt=OuterRef("pk"), source=RankingSource.LABELER, quality_state__in=COUNTING_STATES
            )
        )
    return count_per_prompt(
        Demonstration.objects.filter(prompt=OuterRef("pk"), quality_state__in=COUNTING_STATES)
    )


@transaction.atomic
def prompt_done_counts_reconcile() -> int:
    """Set every prompt's done counts back to the rows they count; returns how many were off.

    The services that store work keep the counts; this repairs what they cannot see (work deleted
    in the admin, rows written by hand). Only prompts whose counts are off are written.
    """
    demonstrations, rankings = _done_count(TaskKind.DEMONSTRATE), _done_count(TaskKind.RANK)
    stale = (
        Prompt.objects.annotate(demonstrations_actual=demonstrations, rankings_actual=rankings)
        .filter(~Q(demonstrations_done=F("demonstrations_actual")) | ~Q(rankings_done=F("rankings_actual")))
        .values("pk")
    )
    return Prompt.objects.filter(pk__in=stale).update(
        demonstrations_done=demonstrations, rankings_done=rankings
    )
