"""Agreement between labelers who ranked the same prompt, and with gold rankings.

Two measures, both over the candidates two rankings share:
- pairwise agreement: of the candidate pairs both rankings order strictly (a tie in either leaves the
  pair out), the fraction ordered the same way. This is InstructGPT's inter-annotator figure (72.6 %).
- Kendall's tau-b: rank correlation in [-1, 1] that accounts for ties; undefined (skipped) when either
  ranking ties every shared candidate.
Aggregates pool pairwise agreement (sum agreed / sum compared, so prompts with more pairs weigh more)
and average tau over ranking pairs. Everything is computed in one streaming pass over the rankings,
grouped by prompt, so memory grows with the number of labelers and days, not of rankings.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import combinations, groupby
from typing import Any

from django.utils import timezone

from annotation.models import Ranking
from annotation.services.rankings import comparisons_from_order

ITERATOR_CHUNK = 2000


@dataclass
class AgreementTally:
    """Running sums; `agreement` and `tau` are None until something was compared."""

    agreed: int = 0
    compared: int = 0
    tau_sum: float = 0.0
    tau_count: int = 0
    ranking_pairs: int = 0

    def add(self, *, agreed: int, compared: int, tau: float | None) -> None:
        self.agreed += agreed
        self.compared += compared
        self.ranking_pairs += 1
        if tau is not None:
            self.tau_sum += tau
            self.tau_count += 1

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.compared if self.compared else None

    @property
    def tau(self) -> float | None:
        return self.tau_sum / self.tau_count if self.tau_count else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "agreement": self.agreement,
            "kendall_tau": self.tau,
            "pairs_agreed": self.agreed,
            "pairs_compared": self.compared,
            "ranking_pairs": self.ranking_pairs,
        }


def pair_set(order: Sequence[Sequence[int]]) -> set[tuple[int, int]]:
    return set(comparisons_from_order(order=order))


def pairwise_counts(a: set[tuple[int, int]], b: set[tuple[int, int]]) -> tuple[int, int]:
    """(agreed, compared) between two rankings' (better, worse) sets; ties appear in neither set."""
    agreed = len(a & b)
    disagreed = sum(1 for better, worse in a if (worse, better) in b)
    return agreed, agreed + disagreed


def rank_map(order: Sequence[Sequence[int]]) -> dict[int, int]:
    return {cid: index for index, group in enumerate(order) for cid in group}


def kendall_tau_b(a: dict[int, int], b: dict[int, int]) -> float | None:
    """Kendall's tau-b between two rank maps (candidate -> tie-group index) over shared candidates."""
    shared = sorted(set(a) & set(b))
    concordant = discordant = ties_a = ties_b = 0
    for x, y in combinations(shared, 2):
        da, db = a[x] - a[y], b[x] - b[y]
        if da == 0 and db == 0:
            ties_a += 1
            ties_b += 1
        elif da == 0:
            ties_a += 1
        elif db == 0:
            ties_b += 1
        elif (da > 0) == (db > 0):
            concordant += 1
        else:
            discordant += 1
    total = len(shared) * (len(shared) - 1) // 2
    denominator = math.sqrt((total - ties_a) * (total - ties_b))
    if denominator == 0:
        return None
    return (concordant - discordant) / denominator


def orders_agreement(orders: Sequence[Sequence[Sequence[int]]]) -> AgreementTally:
    """Agreement among several rankings of one prompt (every pair of rankings)."""
    tally = AgreementTally()
    sets = [pair_set(order) for order in orders]
    maps = [rank_map(order) for order in orders]
    for i, j in combinations(range(len(orders)), 2):
        agreed, compared = pairwise_counts(sets[i], sets[j])
        tally.add(agreed=agreed, compared=compared, tau=kendall_tau_b(maps[i], maps[j]))
    return tally


def pair_sets_agreement(sets: Sequence[set[tuple[int, int]]]) -> AgreementTally:
    """Pairwise agreement only (no tau), from each ranking's comparison rows: what export filters use."""
    tally = AgreementTally()
    for i, j in combinations(range(len(sets)), 2):
        agreed, compared = pairwise_counts(sets[i], sets[j])
        tally.add(agreed=agreed, compared=compared, tau=None)
    return tally


@dataclass
class RankingRow:
    id: int
    prompt_id: int
    labeler_id: int | None
    order: list[list[int]]
    is_gold: bool
    created_at: datetime
    pairs: set[tuple[int, int]] = field(default_factory=set)
    ranks: dict[int, int] = field(default_factory=dict)


@dataclass
class AgreementReport:
    project: AgreementTally = field(default_factory=AgreementTally)
    labelers: dict[int, AgreementTally] = field(default_factory=lambda: defaultdict(AgreementTally))
    gold: dict[int, AgreementTally] = field(default_factory=lambda: defaultdict(AgreementTally))
    prompts: dict[int, AgreementTally] = field(default_factory=lambda: defaultdict(AgreementTally))
    days: dict[date, AgreementTally] = field(default_factory=lambda: defaultdict(AgreementTally))


def _ranking_groups(queryset) -> Iterator[list[RankingRow]]:
    rows = (
        queryset.order_by("prompt_id", "id")
        .values_list("id", "prompt_id", "labeler_id", "order", "is_gold", "created_at")
        .iterator(chunk_size=ITERATOR_CHUNK)
    )
    for _prompt_id, group in groupby(rows, key=lambda row: row[1]):
        yield [RankingRow(*row) for row in group]


def agreement_scan(
    *, project_id: int, prompt_ids: Iterable[int] | None = None, keep_prompts: bool = False
) -> AgreementReport:
    """One pass over a project's rankings (or only `prompt_ids`): project, per-labeler (against every
    other ranking of the same prompts), per-gold, per-day (by the later ranking of each pair) and, if
    `keep_prompts`, per-prompt tallies. Gold rankings take part like any ranking, and each non-gold
    ranking is also compared with every gold ranking of its prompt for the gold tallies."""
    queryset = Ranking.objects.filter(prompt__project_id=project_id)
    if prompt_ids is not None:
        queryset = queryset.filter(prompt_id__in=list(prompt_ids))
    report = AgreementReport()
    for group in _ranking_groups(queryset):
        for row in group:
            row.pairs = pair_set(row.order)
            row.ranks = rank_map(row.order)
        for first, second in combinations(group, 2):
            agreed, compared = pairwise_counts(first.pairs, second.pairs)
            tau = kendall_tau_b(first.ranks, second.ranks)
            report.project.add(agreed=agreed, compared=compared, tau=tau)
            day = timezone.localtime(max(first.created_at, second.created_at)).date()  # as throughput's days
            report.days[day].add(agreed=agreed, compared=compared, tau=tau)
            if keep_prompts:
                report.prompts[first.prompt_id].add(agreed=agreed, compared=compared, tau=tau)
            for one, other in ((first, second), (second, first)):
                if one.labeler_id is not None and one.labeler_id != other.labeler_id:
                    report.labelers[one.labeler_id].add(agreed=agreed, compared=compared, tau=tau)
                if other.is_gold and not one.is_gold and one.labeler_id is not None:
                    report.gold[one.labeler_id].add(agreed=agreed, compared=compared, tau=tau)
    return report
