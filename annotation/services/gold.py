"""Writes for attention checks: open a gold check when a gold task is leased, score it when it is
submitted (and set it aside so it never counts as real work), move the labeler's standing
(qualified, failed, paused), and let an admin lift a pause or a failed qualification.

What a labeler is served is decided in annotation.services.assignments with the reads in
annotation.selectors.gold. Choices:
- A paused or unqualified labeler is served nothing in the project (not gold either): they are told
  so plainly, and gold served to someone who knows they are being checked would measure nothing.
- A gold check's ranking is stored like any other, then marked excluded with reason "gold check"
  (a QualityEvent records it), so it fills no slot and stays out of agreement, consensus, exports and
  training; the GoldCheck row says which assignment was gold and how the labeler did.
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from annotation.models import Assignment, GoldCheck, Membership, MembershipEvent, QualityEvent, Ranking
from annotation.models.assignments import TaskKind
from annotation.models.gold import StandingAction
from annotation.models.projects import QualificationStatus
from annotation.models.quality import COUNTING_STATES, QualityAction, QualityState
from annotation.selectors.gold import (
    GoldChoice,
    gold_checks_scored,
    gold_score,
    pooled_accuracy,
    rolling_gold_accuracy,
)
from annotation.sql.queue import prompt_done_count_add
from config.errors import Conflict

GOLD_CHECK_REASON = "gold check"
MAX_LIFT_REASON_CHARS = 500


def gold_check_open(*, assignment: Assignment, choice: GoldChoice, qualification: bool) -> GoldCheck:
    """Record that `assignment` (just leased, in the lease's transaction) is a gold check."""
    return GoldCheck.objects.create(
        assignment=assignment,
        project_id=assignment.project_id,
        labeler_id=assignment.labeler_id,
        prompt_id=assignment.prompt_id,
        gold_ranking_id=choice.gold_ranking_id,
        qualification=qualification,
    )


def gold_check_submitted(*, assignment: Assignment, ranking: Ranking) -> GoldCheck | None:
    """If `assignment` was a gold check: score `ranking` against gold, set it aside, and update the
    labeler's standing. Call it in the submission's transaction, after the ranking is stored; a
    no-op (None) for real work."""
    check = GoldCheck.objects.select_for_update().filter(assignment=assignment).first()
    if check is None:
        return None
    now = timezone.now()
    if ranking.quality_state in COUNTING_STATES:
        # The ranking was counted in the prompt's done count when stored; it must not fill a slot.
        prompt_done_count_add(prompt_id=ranking.prompt_id, kind=TaskKind.RANK, delta=-1)
    QualityEvent.objects.create(
        ranking=ranking,
        prompt_id=ranking.prompt_id,
        action=QualityAction.EXCLUDE,
        state_before=ranking.quality_state,
        state_after=QualityState.EXCLUDED,
        reason=GOLD_CHECK_REASON,
    )
    ranking.quality_state = QualityState.EXCLUDED
    ranking.save(update_fields=["quality_state"])
    gold_order = (
        Ranking.objects.filter(pk=check.gold_ranking_id).values_list("order", flat=True).first()
        if check.gold_ranking_id
        else None
    )
    if gold_order is not None:
        check.agreed, check.compared = gold_score(
            order=ranking.order, gold_order=gold_order, shown=assignment.shown_order
        )
        check.accuracy = check.agreed / check.compared if check.compared else None
    check.ranking = ranking
    check.submitted_at = now
    check.save(update_fields=["agreed", "compared", "accuracy", "ranking", "submitted_at"])
    membership_standing_update(project_id=assignment.project_id, labeler_id=assignment.labeler_id)
    return check


def membership_standing_update(*, project_id: int, labeler_id: int) -> Membership | None:
    """Decide qualification once the qualification tasks are done, and pause a working labeler whose
    rolling gold accuracy fell below the project's bar. Locks the membership row."""
    membership = (
        Membership.objects.select_for_update()
        .select_related("project")
        .filter(project_id=project_id, user_id=labeler_id)
        .first()
    )
    if membership is None:  # a superuser outside the project: nothing to gate
        return None
    project, now = membership.project, timezone.now()
    if project.qualification_tasks > 0 and membership.qualification_status == QualificationStatus.PENDING:
        done = list(
            gold_checks_scored(project=project, labeler_id=labeler_id)
            .filter(qualification=True)
            .values_list("agreed", "compared")
        )
        if len(done) < project.qualification_tasks:
            return membership
        accuracy = pooled_accuracy(done)
        passed = accuracy is not None and accuracy >= project.qualification_accuracy
        membership.qualification_status = (
            QualificationStatus.QUALIFIED if passed else QualificationStatus.FAILED
        )
        membership.qualified_at = now if passed else None
        membership.save(update_fields=["qualification_status", "qualified_at"])
        MembershipEvent.objects.create(
            membership=membership,
            action=StandingAction.QUALIFIED if passed else StandingAction.QUALIFICATION_FAILED,
            accuracy=accuracy,
            reason=f"accuracy {_percent(accuracy)} over {len(done)} qualification tasks; "
            f"the project asks for {_percent(project.qualification_accuracy)}",
        )
        return membership  # the pause rule starts reading after qualification
    if project.pause_accuracy <= 0 or membership.paused_at is not None:
        return membership
    accuracy, read = rolling_gold_accuracy(project=project, membership=membership)
    # Only a full window decides: a single unlucky check must not pause anyone.
    if read >= project.pause_window and accuracy is not None and accuracy < project.pause_accuracy:
        membership.paused_at = now
        membership.pause_reason = (
            f"rolling gold accuracy {_percent(accuracy)} over the last {read} gold tasks is below "
            f"the project's {_percent(project.pause_accuracy)}"
        )
        membership.save(update_fields=["paused_at", "pause_reason"])
        MembershipEvent.objects.create(
            membership=membership,
            action=StandingAction.PAUSED,
            accuracy=accuracy,
            reason=membership.pause_reason,
        )
    return membership


@transaction.atomic
def membership_pause_lift(*, membership_id: int, actor: User, reason: str = "") -> Membership:
    """An admin lets the labeler back to real work: lifts a pause and waives a failed qualification.

    The rolling accuracy then reads only gold checks submitted after the lift, so the checks that
    caused the pause cannot pause the labeler again. Conflict when there is nothing to lift.
    """
    membership = Membership.objects.select_for_update().get(pk=membership_id)
    reason = (reason or "").strip()[:MAX_LIFT_REASON_CHARS]
    now = timezone.now()
    lifted = False
    if membership.paused_at is not None:
        membership.paused_at = None
        membership.pause_lifted_by = actor
        membership.pause_lifted_at = now
        MembershipEvent.objects.create(
            membership=membership, actor=actor, action=StandingAction.PAUSE_LIFTED, reason=reason
        )
        lifted = True
    if membership.qualification_status == QualificationStatus.FAILED:
        membership.qualification_status = QualificationStatus.QUALIFIED
        membership.qualified_at = now
        membership.pause_lifted_by = actor
        membership.pause_lifted_at = now
        MembershipEvent.objects.create(
            membership=membership, actor=actor, action=StandingAction.QUALIFICATION_WAIVED, reason=reason
        )
        lifted = True
    if not lifted:
        raise Conflict("this labeler is neither paused nor failed qualification", code="nothing_to_lift")
    membership.save(
        update_fields=[
            "paused_at",
            "pause_lifted_by",
            "pause_lifted_at",
            "qualification_status",
            "qualified_at",
        ]
    )
    return membership


def _percent(value: float | None) -> str:
    return "none" if value is None else f"{value:.0%}"
