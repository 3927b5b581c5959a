"""Agreement between labelers who ranked the same prompt, and with gold rankings, read from the database.

The measures (pairwise agreement, Kendall's tau-b) are in annotation.ranking_math. Everything here is
computed in one streaming pass over the rankings, grouped by prompt, so memory grows with the number
of labelers and days, not of rankings.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import combinations, groupby

from django.utils import timezone

from annotation.models import Ranking
from annotation.models.quality import COUNTING_STATES
from annotation.ranking_math import AgreementTally, kendall_tau_b, pair_set, pairwise_counts, rank_map

ITERATOR_CHUNK = 2000


@dataclass
class RankingRow:
    id: int
    prompt_id: int
    labeler_id: int | None
    order: list[list[int]]
    is_gold: bool
    created_at: datetime
    none_acceptable: bool
    pairs: set[tuple[int, int]] = field(default_factory=set)
    ranks: dict[int, int] = field(default_factory=dict)


@dataclass
class AgreementReport:
    project: AgreementTally = field(default_factory=AgreementTally)
    labelers: dict[int, AgreementTally] = field(default_factory=lambda: defaultdict(AgreementTally))
    gold: dict[int, AgreementTally] = field(default_factory=lambda: defaultdict(AgreementTally))
    prompts: dict[int, AgreementTally] = field(default_factory=lambda: defaultdict(AgreementTally))
    days: dict[date, AgreementTally] = field(default_factory=lambda: defaultdict(AgreementTally))
    # Rankings whose labeler found no answer acceptable: their orders agree or disagree like any
    # other, but a prompt where many say so needs better answers, not more rankings.
    none_acceptable: int = 0
    none_acceptable_prompts: dict[int, int] = field(default_factory=lambda: defaultdict(int))


def _ranking_groups(queryset) -> Iterator[list[RankingRow]]:
    rows = (
        queryset.order_by("prompt_id", "id")
        .values_list("id", "prompt_id", "labeler_id", "order", "is_gold", "created_at", "none_acceptable")
        .iterator(chunk_size=ITERATOR_CHUNK)
    )
    for _prompt_id, group in groupby(rows, key=lambda row: row[1]):
        yield [RankingRow(*row) for row in group]


def agreement_scan(
    *, project_id: int, prompt_ids: Iterable[int] | None = None, keep_prompts: bool = False
) -> AgreementReport:
    """One pass over a project's rankings (or only `prompt_ids`): project, per-labeler (against every
    other ranking of the same prompts), per-gold, per-day (by the later ranking of each pair) and, if
    `keep_prompts`, per-prompt tallies; and how many rankings (in all and per prompt) were marked
    none acceptable. Gold rankings take part like any ranking, and each non-gold
    ranking is also compared with every gold ranking of its prompt for the gold tallies."""
    # Only rankings that count: an excluded or rejected one is kept but measures nothing.
    queryset = Ranking.objects.filter(prompt__project_id=project_id, quality_state__in=COUNTING_STATES)
    if prompt_ids is not None:
        queryset = queryset.filter(prompt_id__in=list(prompt_ids))
    report = AgreementReport()
    for group in _ranking_groups(queryset):
        for row in group:
            row.pairs = pair_set(row.order)
            row.ranks = rank_map(row.order)
            if row.none_acceptable:
                report.none_acceptable += 1
                report.none_acceptable_prompts[row.prompt_id] += 1
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
