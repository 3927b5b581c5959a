"""Signals act: a labeler whose bias or spam signal fires (or whose reliability says adversarial) has
their recent counted work sent to review.

Run by the periodic `annotation.labeler_signals_review` task. Idempotent: only the labeler's latest
RECENT_RANKINGS rankings (RECENT_DEMONSTRATIONS demonstrations) are looked at, and of those only the
ones never sent to review before, so a signal that keeps firing asks once per piece of work, and a
reviewer's accept is not undone by the next run. Work under review keeps counting until decided.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from annotation.models import Demonstration, Project, Ranking
from annotation.models.quality import QualityAction, QualityState
from annotation.models.rankings import RankingSource
from annotation.selectors.reliability import ProjectQuality, project_quality
from annotation.services.review import demonstration_review_request, ranking_review_request

logger = logging.getLogger(__name__)

# A reviewer reads a sample, not a history: 20 rankings (about 120 pairs at K=4) is enough to confirm
# or clear a habit, and bounds the reviewers' load per flagged labeler.
RECENT_RANKINGS = 20
RECENT_DEMONSTRATIONS = 10
# Signals measured on demonstrations; every other signal is measured on rankings.
DEMONSTRATION_SIGNALS = frozenset({"near_duplicates"})
ADVERSARIAL = "adversarial"
# Any of these in a submission's record means a reviewer has it or had it: never ask again.
REVIEWED_ACTIONS = (
    QualityAction.REVIEW_REQUEST,
    QualityAction.REVIEW_ACCEPT,
    QualityAction.REVIEW_REJECT,
)


@dataclass
class SignalsReviewResult:
    project_id: int
    # labeler_id -> the reasons their work was looked at (firing signal names, "adversarial")
    flagged: dict[int, list[str]] = field(default_factory=dict)
    rankings_sent: int = 0
    demonstrations_sent: int = 0


def labeler_firing_reasons(*, quality: ProjectQuality) -> dict[int, list[str]]:
    """labeler_id -> firing signal names (and "adversarial"), for the labelers with any."""
    reasons: dict[int, list[str]] = {}
    labeler_ids = set(quality.signals) | {
        labeler_id for labeler_id in quality.reliability.labelers if isinstance(labeler_id, int)
    }
    for labeler_id in sorted(labeler_ids):
        names = sorted(name for name, s in quality.signals.get(labeler_id, {}).items() if s.fires)
        estimate = quality.labeler(labeler_id)
        if estimate is not None and estimate.adversarial:
            names.append(ADVERSARIAL)
        if names:
            reasons[labeler_id] = names
    return reasons


def _unreviewed_recent_rankings(*, project_id: int, labeler_id: int) -> list[int]:
    recent = list(
        Ranking.objects.filter(
            prompt__project_id=project_id,
            labeler_id=labeler_id,
            source=RankingSource.LABELER,
            is_gold=False,
        )
        .order_by("-created_at", "-id")
        .values_list("id", flat=True)[:RECENT_RANKINGS]
    )
    return list(
        Ranking.objects.filter(pk__in=recent, quality_state=QualityState.COUNTED)
        .exclude(quality_events__action__in=REVIEWED_ACTIONS)
        .order_by("id")
        .values_list("id", flat=True)
    )


def _unreviewed_recent_demonstrations(*, project_id: int, labeler_id: int) -> list[int]:
    recent = list(
        Demonstration.objects.filter(prompt__project_id=project_id, labeler_id=labeler_id)
        .order_by("-created_at", "-id")
        .values_list("id", flat=True)[:RECENT_DEMONSTRATIONS]
    )
    return list(
        Demonstration.objects.filter(pk__in=recent, quality_state=QualityState.COUNTED)
        .exclude(quality_events__action__in=REVIEWED_ACTIONS)
        .order_by("id")
        .values_list("id", flat=True)
    )


def project_signals_review(*, project_id: int) -> SignalsReviewResult:
    """Send the recent, never-reviewed work of every labeler whose signals fire to review.

    Rankings go for a ranking signal or adversarial reliability, demonstrations for near-duplicates;
    the review reason is the first such signal's name. Each request is its own transaction (through
    the review service), so a failure halfway leaves what was sent, and the next run sends the rest.
    """
    project = Project.objects.get(pk=project_id)
    result = SignalsReviewResult(project_id=project_id)
    result.flagged = labeler_firing_reasons(quality=project_quality(project=project))
    for labeler_id, reasons in result.flagged.items():
        ranking_reasons = [name for name in reasons if name not in DEMONSTRATION_SIGNALS]
        demonstration_reasons = [name for name in reasons if name in DEMONSTRATION_SIGNALS]
        if ranking_reasons:
            for ranking_id in _unreviewed_recent_rankings(project_id=project_id, labeler_id=labeler_id):
                ranking_review_request(ranking_id=ranking_id, reason=ranking_reasons[0])
                result.rankings_sent += 1
        if demonstration_reasons:
            for demonstration_id in _unreviewed_recent_demonstrations(
                project_id=project_id, labeler_id=labeler_id
            ):
                demonstration_review_request(
                    demonstration_id=demonstration_id, reason=demonstration_reasons[0]
                )
                result.demonstrations_sent += 1
    if result.rankings_sent or result.demonstrations_sent:
        logger.info(
            "project %d: signals sent %d ranking(s) and %d demonstration(s) to review (%s)",
            project_id,
            result.rankings_sent,
            result.demonstrations_sent,
            result.flagged,
        )
    return result


def projects_signals_review() -> list[SignalsReviewResult]:
    """`project_signals_review` for every active project."""
    return [
        project_signals_review(project_id=project_id)
        for project_id in Project.objects.filter(is_active=True).order_by("id").values_list("id", flat=True)
    ]
