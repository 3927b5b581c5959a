"""Writes for review: sending submissions to a reviewer, and the reviewer's decisions (adjudication:
services/adjudication.py).

A submission under review still counts (COUNTING_STATES) until a reviewer decides, so sending one to
review never moves the queue; a rejection stops it counting and frees its slot (ranking_quality_set
and demonstration_quality_set keep the prompt's done count in step). Every step is a QualityEvent.
"""

from __future__ import annotations

import random
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from annotation.models import Demonstration, Project, Prompt, Ranking
from annotation.models.quality import QualityAction, QualityState, ReviewKind
from annotation.models.rankings import RankingSource
from annotation.services.quality import demonstration_quality_set, ranking_quality_set
from config.errors import Conflict, Forbidden, NotFound, ValidationFailed

REVIEW_REASON_SAMPLE = "sample"
MAX_REQUEST_REASON_CHARS = 200


class ReviewDecision:
    ACCEPT = "accept"
    REJECT = "reject"


def _request_reason(reason: str) -> str:
    cleaned = (reason or "").strip()
    if not cleaned:
        raise ValidationFailed("say why the submission is sent to review", code="reason_required")
    return cleaned[:MAX_REQUEST_REASON_CHARS]


def ranking_review_request(*, ranking_id: int, reason: str, actor: User | None = None) -> Ranking:
    """Send a labeler's ranking to review (`reason`: "sample" or the signal's name).

    Only a counted ranking moves: one already under review, rejected or excluded stays as it is (a
    signal firing twice asks once). It keeps counting until a reviewer decides.
    """
    cleaned = _request_reason(reason)
    ranking = Ranking.objects.filter(pk=ranking_id).only("source", "quality_state").first()
    if ranking is None:
        raise NotFound("no such ranking", code="ranking_not_found")
    if ranking.source != RankingSource.LABELER:
        raise ValidationFailed("only labelers' rankings are reviewed", code="not_reviewable")
    if ranking.quality_state != QualityState.COUNTED:
        return ranking
    return ranking_quality_set(
        ranking_id=ranking_id,
        state=QualityState.UNDER_REVIEW,
        actor=actor,
        action=QualityAction.REVIEW_REQUEST,
        reason=cleaned,
    )


def demonstration_review_request(
    *, demonstration_id: int, reason: str, actor: User | None = None
) -> Demonstration:
    """As `ranking_review_request`, for a demonstration."""
    cleaned = _request_reason(reason)
    state = Demonstration.objects.filter(pk=demonstration_id).values_list("quality_state", flat=True).first()
    if state is None:
        raise NotFound("no such demonstration", code="demonstration_not_found")
    if state != QualityState.COUNTED:
        return Demonstration.objects.get(pk=demonstration_id)
    return demonstration_quality_set(
        demonstration_id=demonstration_id,
        state=QualityState.UNDER_REVIEW,
        actor=actor,
        action=QualityAction.REVIEW_REQUEST,
        reason=cleaned,
    )


def _sampled(project: Project) -> bool:
    rate = project.review_sample_rate
    # Rate 1 sends everything without drawing: a test (or a strict project) never depends on chance.
    return rate >= 1 or (rate > 0 and random.random() < rate)


def ranking_review_sample(*, ranking: Ranking, project: Project) -> None:
    """On submission: send the ranking to review with the project's sample rate. Inside the
    submission's transaction, so a rolled-back submission sends nothing."""
    if _sampled(project):
        ranking_review_request(ranking_id=ranking.pk, reason=REVIEW_REASON_SAMPLE)


def demonstration_review_sample(*, demonstration: Demonstration, project: Project) -> None:
    """As `ranking_review_sample`, for a demonstration."""
    if _sampled(project):
        demonstration_review_request(demonstration_id=demonstration.pk, reason=REVIEW_REASON_SAMPLE)


@transaction.atomic
def review_decide(
    *, project: Project, reviewer: User, kind: str, item_id: int, decision: str, reason: str = ""
) -> Any:
    """Accept (it counts again) or reject (it stops counting, its slot returns to the queue) a
    submission under review. A rejection needs a reason; the labeler reads it in their history.

    The caller has checked that `reviewer` reviews `project`; an item of another project is not found. Refuses a reviewer's own work
    (403) and an item no longer under review (409: another reviewer decided first). The prompt is
    locked before the state is read, so two decisions on one item cannot both pass.
    """
    if decision not in (ReviewDecision.ACCEPT, ReviewDecision.REJECT):
        raise ValidationFailed("decision must be accept or reject", code="invalid_decision")
    model: type[Ranking] | type[Demonstration]
    if kind == ReviewKind.RANKING:
        model = Ranking
    elif kind == ReviewKind.DEMONSTRATION:
        model = Demonstration
    else:
        raise ValidationFailed("kind must be ranking or demonstration", code="invalid_kind")
    row = model.objects.filter(pk=item_id, prompt__project=project).values("prompt_id", "labeler_id").first()
    if row is None:
        raise NotFound(f"no such {kind}", code=f"{kind}_not_found")
    Prompt.objects.select_for_update().filter(pk=row["prompt_id"]).values_list("pk").first()
    if row["labeler_id"] == reviewer.pk:
        raise Forbidden("nobody reviews their own work", code="own_work")
    current = model.objects.filter(pk=item_id).values_list("quality_state", flat=True).get()
    if current != QualityState.UNDER_REVIEW:
        raise Conflict(f"this {kind} is no longer under review", code="not_under_review")
    accept = decision == ReviewDecision.ACCEPT
    state = QualityState.COUNTED if accept else QualityState.REJECTED
    action = QualityAction.REVIEW_ACCEPT if accept else QualityAction.REVIEW_REJECT
    if kind == ReviewKind.RANKING:
        return ranking_quality_set(
            ranking_id=item_id,
            state=state,
            actor=reviewer,
            action=action,
            reason=reason,
            reason_required=not accept,
        )
    return demonstration_quality_set(
        demonstration_id=item_id,
        state=state,
        actor=reviewer,
        action=action,
        reason=reason,
        reason_required=not accept,
    )
