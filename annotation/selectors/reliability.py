"""Labeler reliability, Krippendorff's alpha and the bias and spam signals of one project, from what counts.

The math is pure and lives in annotation/reliability.py (one-coin Dawid-Skene EM over pairwise
judgments) and annotation/labeler_signals.py; this module only reads the rows they need, one query
each: the counted rankings (labelers' as judgments, gold ones as gold pairs, their assignments' shown
orders and times), the candidates' lengths and the counted demonstrations.

Nothing here is cached: a project-wide EM over 10k judgments takes milliseconds, far less than the
queries that feed it, so the labeler stats, the prompt list and an export each compute it afresh.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db.models.functions import Length

from annotation.labeler_signals import (
    RankingRecord,
    RankingThresholds,
    Signal,
    near_duplicate_signals,
    ranking_signals,
)
from annotation.models import Candidate, Demonstration, Project, Ranking
from annotation.models.quality import COUNTING_STATES
from annotation.models.rankings import RankingSource
from annotation.ranking_math import Consensus, consensus_weighted_pairs
from annotation.reliability import (
    PRIOR_RELIABILITY,
    LabelerReliability,
    ReliabilityResult,
    judgments_from_rankings,
    rankings_krippendorff_alpha,
    reliability_estimate,
)

# The vote weight of a ranker without an estimate: the prior's, log(0.75 / 0.25).
PRIOR_WEIGHT = math.log(PRIOR_RELIABILITY / (1.0 - PRIOR_RELIABILITY))


@dataclass(frozen=True)
class CountedRanking:
    id: int
    prompt_id: int
    labeler_id: int | None
    order: list[list[int]]
    is_gold: bool
    source: str
    seconds: float
    shown_order: list[int]

    @property
    def is_labeler_work(self) -> bool:
        """A labeler's own ranking: the work that is judged (gold and imports are not)."""
        return self.labeler_id is not None and not self.is_gold and self.source == RankingSource.LABELER


@dataclass
class ProjectQuality:
    reliability: ReliabilityResult
    krippendorff_alpha: float | None
    # labeler_id -> signal name -> Signal (ranking signals and near-duplicate demonstrations)
    signals: dict[int, dict[str, Signal]] = field(default_factory=dict)

    def labeler(self, labeler_id: int) -> LabelerReliability | None:
        return self.reliability.labelers.get(labeler_id)


def counted_rankings(*, project_id: int, prompt_ids: Iterable[int] | None = None) -> list[CountedRanking]:
    """Every counted ranking of the project (or of `prompt_ids`) with its assignment's shown order."""
    queryset = Ranking.objects.filter(prompt__project_id=project_id, quality_state__in=COUNTING_STATES)
    if prompt_ids is not None:
        queryset = queryset.filter(prompt_id__in=list(prompt_ids))
    return [
        CountedRanking(
            id=row[0],
            prompt_id=row[1],
            labeler_id=row[2],
            order=row[3],
            is_gold=row[4],
            source=row[5],
            seconds=row[6],
            shown_order=row[7] or [],
        )
        for row in queryset.order_by("prompt_id", "id").values_list(
            "id",
            "prompt_id",
            "labeler_id",
            "order",
            "is_gold",
            "source",
            "seconds_spent",
            "assignment__shown_order",
        )
    ]


def reliability_from_rankings(
    *, rankings: list[CountedRanking], candidates: Mapping[Any, Iterable[int]] | None = None
) -> ReliabilityResult:
    """EM over the labelers' judgments, gold rankings' pairs clamped as known."""
    judgments = judgments_from_rankings(
        rankings=((r.prompt_id, r.labeler_id, r.order) for r in rankings if r.is_labeler_work)
    )
    gold = [
        (prompt_id, better, worse)
        for prompt_id, _, better, worse in judgments_from_rankings(
            rankings=((r.prompt_id, r.id, r.order) for r in rankings if r.is_gold)
        )
    ]
    return reliability_estimate(judgments=judgments, gold=gold, candidates=candidates)


def project_reliability(*, project_id: int) -> ReliabilityResult:
    """Each labeler's reliability and each prompt's reliability-weighted consensus (counted work only)."""
    return reliability_from_rankings(rankings=counted_rankings(project_id=project_id))


def project_candidate_lengths(*, project_id: int) -> dict[int, int]:
    """Candidate id -> characters, counted by the database so that no text is loaded."""
    return dict(
        Candidate.objects.filter(prompt__project_id=project_id)
        .annotate(chars=Length("text"))
        .values_list("id", "chars")
    )


def project_signal_thresholds(*, project: Project) -> RankingThresholds:
    return RankingThresholds(
        position_bias=project.position_bias_threshold,
        repeated_order=project.repeated_order_threshold,
        speed_ratio=project.speed_ratio_threshold,
        length_bias=project.length_bias_threshold,
    )


def project_quality(*, project: Project) -> ProjectQuality:
    """Reliability (EM), ordinal Krippendorff's alpha and every labeler's signals against the project's
    thresholds, from the project's counted work."""
    rankings = counted_rankings(project_id=project.pk)
    reliability = reliability_from_rankings(rankings=rankings)
    # Alpha's coders are rankings, not labelers: only the values within a unit matter to it, and so
    # imported rankings (no labeler) count as they do in pairwise agreement.
    alpha = rankings_krippendorff_alpha(rankings=((r.prompt_id, r.id, r.order) for r in rankings))
    records = [
        RankingRecord(
            labeler_id=r.labeler_id,
            prompt_id=r.prompt_id,
            order=r.order,
            shown_order=r.shown_order,
            seconds=r.seconds,
        )
        for r in rankings
        if r.is_labeler_work
    ]
    signals: dict[int, dict[str, Signal]] = defaultdict(dict)
    for labeler_id, by_name in ranking_signals(
        rankings=records,
        candidate_lengths=project_candidate_lengths(project_id=project.pk),
        thresholds=project_signal_thresholds(project=project),
    ).items():
        signals[labeler_id].update(by_name)  # type: ignore[index]
    demonstrations = (
        Demonstration.objects.filter(prompt__project=project, quality_state__in=COUNTING_STATES)
        .order_by("created_at", "id")
        .values_list("id", "labeler_id", "text")
    )
    for labeler_id, signal in near_duplicate_signals(
        demonstrations=demonstrations.iterator(chunk_size=2000),
        threshold=project.duplicate_share_threshold,
    ).items():
        signals[labeler_id][signal.name] = signal  # type: ignore[index]
    return ProjectQuality(reliability=reliability, krippendorff_alpha=alpha, signals=dict(signals))


def labeler_reliabilities_below(*, project_id: int, minimum: float) -> set[int]:
    """Labelers of the project whose estimated reliability is below `minimum` (for export filters)."""
    result = project_reliability(project_id=project_id)
    return {
        int(labeler_id)  # type: ignore[call-overload]
        for labeler_id, estimate in result.labelers.items()
        if estimate.reliability < minimum
    }


def prompts_weighted_consensus(*, project_id: int, prompt_ids: list[int]) -> dict[int, list[list[int]]]:
    """Reliability-weighted consensus of the given prompts, over the candidates their counted rankings
    name (as the unweighted consensus is).

    Reliability is estimated over the whole project: one prompt's few rankings say little about who
    is careful, so the weights come from everything each labeler did.
    """
    rankings = counted_rankings(project_id=project_id)
    wanted = set(prompt_ids)
    candidates: dict[int, set[int]] = defaultdict(set)
    for ranking in rankings:
        if ranking.prompt_id in wanted:
            candidates[ranking.prompt_id].update(c for group in ranking.order for c in group)
    result = reliability_from_rankings(rankings=rankings, candidates=candidates)
    return {prompt_id: result.consensus.get(prompt_id, []) for prompt_id in prompt_ids}


def project_krippendorff_alpha(*, project_id: int) -> float | None:
    """Ordinal Krippendorff's alpha over the project's counted rankings (as in `project_quality`)."""
    rankings = counted_rankings(project_id=project_id)
    return rankings_krippendorff_alpha(rankings=((r.prompt_id, r.id, r.order) for r in rankings))


def labeler_vote_weights(*, project_id: int) -> dict[int, float]:
    """Labeler id -> log-odds weight of one of their votes, from the project's counted work (negative:
    an adversarial labeler's votes count flipped)."""
    return {
        int(labeler_id): estimate.weight  # type: ignore[call-overload]
        for labeler_id, estimate in project_reliability(project_id=project_id).labelers.items()
    }


def votes_weighted_consensus(
    *,
    candidate_ids: Iterable[int],
    votes: Iterable[tuple[int | None, int, int]],
    weights: Mapping[int, float],
) -> Consensus:
    """Ranked pairs over (labeler_id, better, worse) votes, each weighing its labeler's `weights` entry.

    A ranker without an estimate (an import, a gold ranking's author, someone new since) weighs as
    the prior says a typical labeler does, so their votes neither vanish nor dominate.
    """
    net: dict[tuple[int, int], float] = defaultdict(float)
    for labeler_id, better, worse in votes:
        weight = weights.get(labeler_id, PRIOR_WEIGHT) if labeler_id is not None else PRIOR_WEIGHT
        low, high = (better, worse) if better < worse else (worse, better)
        net[(low, high)] += weight if better == low else -weight
    margins = {
        (low, high) if value > 0 else (high, low): abs(value) for (low, high), value in net.items() if value
    }
    return consensus_weighted_pairs(candidate_ids=candidate_ids, weights=margins)
