"""Writes for quality control: gold rankings, and whether a submission counts, each change recorded.

A ranking or demonstration that stops counting (excluded by triage or a signal, rejected in
review) is kept, marked, and left out of exports, agreement and training; its slot returns to the
queue. Every change is a QualityEvent saying who, when and why, and every one can be undone.
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction

from annotation.models import Demonstration, Prompt, QualityEvent, Ranking
from annotation.models.assignments import TaskKind
from annotation.models.quality import COUNTING_STATES, QualityAction, QualityState
from annotation.models.rankings import RankingSource
from annotation.services.submissions import prompt_done_counts_add
from config.errors import NotFound, ValidationFailed

MAX_REASON_CHARS = 2000
MAX_EXTRA_RANKINGS = 20


def _reason(reason: str, *, required: bool) -> str:
    reason = (reason or "").strip()
    if required and not reason:
        raise ValidationFailed("say why", code="reason_required")
    if len(reason) > MAX_REASON_CHARS:
        raise ValidationFailed(
            f"the reason is longer than {MAX_REASON_CHARS} characters", code="reason_too_long"
        )
    return reason


@transaction.atomic
def ranking_gold_set(
    *, ranking: Ranking, is_gold: bool, actor: User | None = None, reason: str = ""
) -> Ranking:
    """Mark (or unmark) a ranking as a known-good reference that labelers' rankings are compared with."""
    if ranking.is_gold != is_gold:
        ranking.is_gold = is_gold
        ranking.save(update_fields=["is_gold"])
        QualityEvent.objects.create(
            ranking=ranking,
            actor=actor,
            action=QualityAction.GOLD_MARK if is_gold else QualityAction.GOLD_UNMARK,
            reason=_reason(reason, required=False),
        )
    return ranking


def _counts(state: str) -> bool:
    return state in COUNTING_STATES


@transaction.atomic
def ranking_quality_set(
    *, ranking_id: int, state: str, actor: User | None, action: str, reason: str, reason_required: bool = True
) -> Ranking:
    """Move a ranking to `state`, keeping the prompt's done count and the record in step.

    The prompt is locked first (as a lease locks it), so a slot freed here is counted once.
    """
    if state not in QualityState.values:
        raise ValidationFailed(f"unknown quality state {state!r}", code="invalid_state")
    cleaned = _reason(reason, required=reason_required)
    prompt_id = Ranking.objects.filter(pk=ranking_id).values_list("prompt_id", flat=True).first()
    if prompt_id is None:
        raise NotFound("no such ranking", code="ranking_not_found")
    Prompt.objects.select_for_update().filter(pk=prompt_id).values_list("pk").first()
    ranking = Ranking.objects.select_for_update().get(pk=ranking_id)
    before = ranking.quality_state
    if before == state:
        return ranking
    ranking.quality_state = state
    ranking.save(update_fields=["quality_state"])
    if ranking.source == RankingSource.LABELER and _counts(before) != _counts(state):
        prompt_done_counts_add(prompt_id=prompt_id, kind=TaskKind.RANK, delta=1 if _counts(state) else -1)
    QualityEvent.objects.create(
        ranking=ranking, actor=actor, action=action, state_before=before, state_after=state, reason=cleaned
    )
    return ranking


@transaction.atomic
def demonstration_quality_set(
    *,
    demonstration_id: int,
    state: str,
    actor: User | None,
    action: str,
    reason: str,
    reason_required: bool = True,
) -> Demonstration:
    """As `ranking_quality_set`, for a demonstration."""
    if state not in QualityState.values:
        raise ValidationFailed(f"unknown quality state {state!r}", code="invalid_state")
    cleaned = _reason(reason, required=reason_required)
    prompt_id = Demonstration.objects.filter(pk=demonstration_id).values_list("prompt_id", flat=True).first()
    if prompt_id is None:
        raise NotFound("no such demonstration", code="demonstration_not_found")
    Prompt.objects.select_for_update().filter(pk=prompt_id).values_list("pk").first()
    demonstration = Demonstration.objects.select_for_update().get(pk=demonstration_id)
    before = demonstration.quality_state
    if before == state:
        return demonstration
    demonstration.quality_state = state
    demonstration.save(update_fields=["quality_state"])
    if _counts(before) != _counts(state):
        prompt_done_counts_add(
            prompt_id=prompt_id, kind=TaskKind.DEMONSTRATE, delta=1 if _counts(state) else -1
        )
    QualityEvent.objects.create(
        demonstration=demonstration,
        actor=actor,
        action=action,
        state_before=before,
        state_after=state,
        reason=cleaned,
    )
    return demonstration


def ranking_exclude(*, ranking_id: int, actor: User | None, reason: str) -> Ranking:
    """Leave a ranking out of exports, agreement and training (kept; `ranking_restore` undoes it)."""
    return ranking_quality_set(
        ranking_id=ranking_id,
        state=QualityState.EXCLUDED,
        actor=actor,
        action=QualityAction.EXCLUDE,
        reason=reason,
    )


def ranking_restore(*, ranking_id: int, actor: User | None, reason: str = "") -> Ranking:
    """Count an excluded or rejected ranking again."""
    return ranking_quality_set(
        ranking_id=ranking_id,
        state=QualityState.COUNTED,
        actor=actor,
        action=QualityAction.RESTORE,
        reason=reason,
        reason_required=False,
    )


@transaction.atomic
def prompt_more_rankings(*, prompt_id: int, actor: User | None, extra: int, reason: str = "") -> Prompt:
    """Ask for `extra` more rankings of the prompt than the project's overlap (0 takes the ask back)."""
    if isinstance(extra, bool) or not isinstance(extra, int) or not 0 <= extra <= MAX_EXTRA_RANKINGS:
        raise ValidationFailed(
            f"extra must be a whole number from 0 to {MAX_EXTRA_RANKINGS}", code="invalid_extra"
        )
    prompt = Prompt.objects.select_for_update().filter(pk=prompt_id).first()
    if prompt is None:
        raise NotFound("no such prompt", code="prompt_not_found")
    if prompt.extra_rankings != extra:
        QualityEvent.objects.create(
            prompt=prompt,
            actor=actor,
            action=QualityAction.MORE_RANKINGS,
            state_before=str(prompt.extra_rankings),
            state_after=str(extra),
            reason=_reason(reason, required=False),
        )
        prompt.extra_rankings = extra
        prompt.save(update_fields=["extra_rankings"])
    return prompt
