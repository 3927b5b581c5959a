"""Constant-memory readers for exports.

Each source walks its table once with a server-side cursor (`.iterator(chunk_size=...)` over
`values_list`, so no model instances), ordered by prompt so one prompt's rows arrive together, and
yields batches of about BATCH_ROWS rows with just the texts those rows need, fetched with one query
per batch. Memory therefore depends on the batch size, never on the size of the export.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import groupby, islice
from operator import itemgetter
from typing import Any

from django.db.models import CharField, Exists, F, Func, OuterRef

from annotation.exports.filters import ExportFilters, LabelerNames
from annotation.models import Candidate, Comparison, Demonstration, Prompt, Ranking, RankingItem
from annotation.models.quality import COUNTING_STATES
from annotation.ranking_math import (
    comparisons_from_order,
    consensus_from_orders,
    consensus_ranked_pairs,
    orders_agreement,
    pair_sets_agreement,
)
from annotation.selectors.reliability import (
    labeler_reliabilities_below,
    labeler_vote_weights,
    votes_weighted_consensus,
)

BATCH_ROWS = 5000
ITERATOR_CHUNK = 5000

# (prompt_id, ranking_id, labeler_id, better_id, worse_id, created_at as ISO 8601 text)
PairTuple = tuple[int, int | None, int | None, int, int, str]


class IsoTimestamp(Func):
    """A timestamp as ISO 8601 text in UTC, formatted by the database.

    Parsing a million timestamps into datetimes only to print them again was a third of the export's
    time; the database writes the text directly. Same text as Python's isoformat() on a UTC datetime.
    """

    output_field = CharField()

    def as_postgresql(self, compiler, connection, **extra):
        # isoformat() leaves out a zero fraction, so the CASE does too. (SQLite and PostgreSQL are the
        # two databases the project supports; others would need their own method here.)
        template = (
            "CASE WHEN mod(date_part('microseconds', %(expressions)s)::int, 1000000) = 0 "
            "THEN to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"+00:00\"') "
            "ELSE to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"') END"
        )
        return self.as_sql(compiler, connection, template=template, **extra)

    def as_sqlite(self, compiler, connection, **extra):
        # Django stores aware datetimes in SQLite as naive UTC text "YYYY-MM-DD HH:MM:SS[.ffffff]".
        return self.as_sql(
            compiler, connection, template="replace(%(expressions)s, ' ', 'T') || '+00:00'", **extra
        )


@dataclass
class SourceBatch:
    """Rows of one kind plus the lookups needed to render them; `source_rows` counts rows read."""

    rows: list[Any]
    prompts: dict[int, list[dict[str, str]]]
    candidates: dict[int, Any]  # pairs: id -> text; rankings: id -> candidate row
    names: LabelerNames
    source_rows: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _filter_common(queryset, *, project_id: int, filters: ExportFilters, labeler_field: str = "labeler_id"):
    queryset = queryset.filter(prompt__project_id=project_id)
    if filters.date_from:
        queryset = queryset.filter(created_at__gte=filters.date_from)
    if filters.date_to:
        queryset = queryset.filter(created_at__lt=filters.date_to)
    if filters.labeler_ids is not None:
        queryset = queryset.filter(**{f"{labeler_field}__in": filters.labeler_ids})
    # Only work that counts: a ranking excluded by triage or rejected in review (and its
    # comparisons), or a rejected demonstration, is kept but never exported.
    counting = (
        "quality_state__in" if queryset.model in (Ranking, Demonstration) else "ranking__quality_state__in"
    )
    queryset = queryset.filter(**{counting: COUNTING_STATES})
    if filters.min_labeler_reliability is not None and queryset.model is not Demonstration:
        # Reliability is the labeler's over all their counted work, not only what these dates keep.
        unreliable = labeler_reliabilities_below(
            project_id=project_id, minimum=filters.min_labeler_reliability
        )
        queryset = queryset.exclude(**{f"{labeler_field}__in": unreliable})
    if filters.exclude_none_acceptable:
        # Rankings carry the mark themselves; comparisons through their ranking.
        marked = "none_acceptable" if queryset.model is Ranking else "ranking__none_acceptable"
        queryset = queryset.filter(**{marked: False})
    return queryset


def _prompt_turns(prompt_ids: Iterable[int]) -> dict[int, list[dict[str, str]]]:
    return dict(Prompt.objects.filter(pk__in=set(prompt_ids)).values_list("pk", "turns"))


def _flagged_in_prompts(prompt_ids: Iterable[int]) -> set[int]:
    """Candidates of these prompts that any ranking flagged."""
    return set(
        RankingItem.objects.filter(
            ranking__prompt_id__in=set(prompt_ids), ranking__quality_state__in=COUNTING_STATES
        )
        .exclude(flags=[])
        .values_list("candidate_id", flat=True)
    )


def comparison_source_count(*, project_id: int, filters: ExportFilters) -> int:
    return _filter_common(Comparison.objects.all(), project_id=project_id, filters=filters).count()


def _flagged(candidate: OuterRef) -> Exists:
    """Whether any ranking flagged the candidate `candidate` points at (as `_flagged_in_prompts`)."""
    return Exists(
        RankingItem.objects.filter(
            candidate_id=candidate, ranking__quality_state__in=COUNTING_STATES
        ).exclude(flags=[])
    )


def pair_row_count(*, project_id: int, filters: ExportFilters) -> int:
    """The rows `pair_batches` would yield, without reading a text: one COUNT when no per-prompt
    filter is set, else one pass over the comparisons' ids through the same per-prompt filter."""
    queryset = _filter_common(Comparison.objects.all(), project_id=project_id, filters=filters)
    if not filters.needs_prompt_groups:
        if filters.exclude_flagged:
            queryset = queryset.exclude(_flagged(OuterRef("better_id"))).exclude(
                _flagged(OuterRef("worse_id"))
            )
        return queryset.count()
    flagged = (
        set(
            RankingItem.objects.filter(
                ranking__prompt__project_id=project_id, ranking__quality_state__in=COUNTING_STATES
            )
            .exclude(flags=[])
            .values_list("candidate_id", flat=True)
        )
        if filters.exclude_flagged
        else set()
    )
    rows = _pairs_after_quality_filters(
        _comparison_rows(project_id=project_id, filters=filters),
        filters,
        weights=_consensus_weights(project_id=project_id, filters=filters),
    )
    return sum(1 for row in rows if row[3] not in flagged and row[4] not in flagged)


def _comparison_rows(*, project_id: int, filters: ExportFilters) -> Iterator[PairTuple]:
    queryset = _filter_common(Comparison.objects.all(), project_id=project_id, filters=filters)
    return (
        queryset.order_by("prompt_id", "id")
        .annotate(created_text=IsoTimestamp(F("created_at")))
        .values_list("prompt_id", "ranking_id", "labeler_id", "better_id", "worse_id", "created_text")
        .iterator(chunk_size=ITERATOR_CHUNK)
    )


def _consensus_weights(*, project_id: int, filters: ExportFilters) -> dict[int, float] | None:
    """Each labeler's vote weight for a reliability-weighted consensus; None: every vote weighs 1."""
    if filters.consensus_only and filters.consensus_weighting == "reliability":
        return labeler_vote_weights(project_id=project_id)
    return None


def _pairs_after_quality_filters(
    rows: Iterator[PairTuple], filters: ExportFilters, *, weights: dict[int, float] | None = None
) -> Iterator[PairTuple]:
    """Apply the per-prompt filters (minimum agreement, consensus) to one prompt's rows at a time.

    `weights`: labeler id -> vote weight, for a reliability-weighted consensus (`_consensus_weights`)."""
    for prompt_id, group_iter in groupby(rows, key=itemgetter(0)):
        group = list(group_iter)
        by_ranking: dict[int | None, set[tuple[int, int]]] = defaultdict(set)
        for row in group:
            by_ranking[row[1]].add((row[3], row[4]))
        if filters.min_agreement is not None:
            agreement = pair_sets_agreement(list(by_ranking.values())).agreement
            if agreement is None or agreement < filters.min_agreement:
                continue
        if filters.consensus_only:
            consensus = (
                votes_weighted_consensus(
                    candidate_ids=[c for row in group for c in (row[3], row[4])],
                    votes=[(row[2], row[3], row[4]) for row in group],
                    weights=weights,
                )
                if weights is not None
                else consensus_ranked_pairs(
                    candidate_ids=[c for row in group for c in (row[3], row[4])],
                    pairs=[(row[3], row[4]) for row in group],
                )
            )
            latest = max(row[5] for row in group)
            yield from ((prompt_id, None, None, better, worse, latest) for better, worse in consensus.pairs)
        else:
            yield from group


def pair_batches(*, project_id: int, filters: ExportFilters) -> Iterator[SourceBatch]:
    """Comparison rows (or consensus pairs) in batches, with prompt turns and candidate texts."""
    rows: Iterator[PairTuple] = _comparison_rows(project_id=project_id, filters=filters)
    # Counting through a wrapper costs a Python call per row, so only when filters drop rows.
    counter = _Counter(rows) if filters.needs_prompt_groups else None
    stream = (
        _pairs_after_quality_filters(
            counter, filters, weights=_consensus_weights(project_id=project_id, filters=filters)
        )
        if counter is not None
        else rows
    )
    names = LabelerNames(anonymise=filters.anonymise, project_id=project_id)
    while True:
        batch = list(islice(stream, BATCH_ROWS))
        if not batch:
            return
        read = counter.take() if counter is not None else len(batch)
        # Texts are fetched by prompt: a batch holds a few hundred prompts but several times as many
        # candidates, and long IN lists are what such a query spends its time on.
        prompt_ids = {row[0] for row in batch}
        if filters.exclude_flagged:
            flagged = _flagged_in_prompts(prompt_ids)
            if flagged:
                batch = [row for row in batch if row[3] not in flagged and row[4] not in flagged]
        texts = dict(Candidate.objects.filter(prompt_id__in=prompt_ids).values_list("pk", "text"))
        names.load({row[2] for row in batch})
        yield SourceBatch(
            rows=batch,
            prompts=_prompt_turns(prompt_ids),
            candidates=texts,
            names=names,
            source_rows=read,
        )


class _Counter:
    """Wraps an iterator and counts what passed since the last `take()` (for progress)."""

    def __init__(self, iterator: Iterator[Any]) -> None:
        self.iterator = iterator
        self.count = 0

    def __iter__(self) -> _Counter:
        return self

    def __next__(self) -> Any:
        value = next(self.iterator)
        self.count += 1
        return value

    def take(self) -> int:
        count, self.count = self.count, 0
        return count


# --- K-way rankings -----------------------------------------------------------------------------


@dataclass
class PromptRankings:
    prompt_id: int
    rankings: list[dict[str, Any]]
    consensus_order: list[list[int]]
    agreement: float | None
    kendall_tau: float | None


def ranking_source_count(*, project_id: int, filters: ExportFilters) -> int:
    return _filter_common(Ranking.objects.all(), project_id=project_id, filters=filters).count()


def ranking_row_count(*, project_id: int, filters: ExportFilters) -> int:
    """The records `ranking_batches` would yield (one per prompt): a COUNT of prompts, or with
    `min_agreement` one pass over the orders alone. Flag and consensus filters drop no prompt."""
    queryset = _filter_common(Ranking.objects.all(), project_id=project_id, filters=filters)
    if filters.min_agreement is None:
        return queryset.values("prompt_id").distinct().count()
    orders = (
        queryset.order_by("prompt_id", "id")
        .values_list("prompt_id", "order")
        .iterator(chunk_size=ITERATOR_CHUNK)
    )
    count = 0
    for _prompt_id, group in groupby(orders, key=itemgetter(0)):
        agreement = orders_agreement([order for _, order in group]).agreement
        count += agreement is not None and agreement >= filters.min_agreement
    return count


def _ranking_groups(*, project_id: int, filters: ExportFilters) -> Iterator[list[dict[str, Any]]]:
    queryset = _filter_common(Ranking.objects.all(), project_id=project_id, filters=filters)
    rows = (
        queryset.order_by("prompt_id", "id")
        .values(
            "id",
            "prompt_id",
            "labeler_id",
            "source",
            "order",
            "comment",
            "seconds_spent",
            "is_gold",
            "none_acceptable",
            "created_at",
        )
        .iterator(chunk_size=ITERATOR_CHUNK)
    )
    for _prompt_id, group in groupby(rows, key=itemgetter("prompt_id")):
        yield list(group)


def ranking_batches(*, project_id: int, filters: ExportFilters) -> Iterator[SourceBatch]:
    """One PromptRankings per prompt, batched, with candidates (and provenance) and ranking items."""
    names = LabelerNames(anonymise=filters.anonymise, project_id=project_id)
    groups = _ranking_groups(project_id=project_id, filters=filters)
    weights = _consensus_weights(project_id=project_id, filters=filters)
    while True:
        chunk: list[list[dict[str, Any]]] = []
        size = 0
        for group in groups:
            chunk.append(group)
            size += len(group)
            if size >= BATCH_ROWS // 10:
                break
        if not chunk:
            return
        ranking_ids = [r["id"] for group in chunk for r in group]
        candidate_ids = {c for group in chunk for r in group for g in r["order"] for c in g}
        items: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for ranking_id, candidate_id, rank, rating, flags in (
            RankingItem.objects.filter(ranking_id__in=ranking_ids)
            .order_by("ranking_id", "rank", "candidate_id")
            .values_list("ranking_id", "candidate_id", "rank", "rating", "flags")
        ):
            items[ranking_id].append(
                {"candidate_id": candidate_id, "rank": rank, "rating": rating, "flags": flags}
            )
        # Flagged by any ranking of these prompts, as for pairs, not only by the rankings exported.
        flagged = (
            _flagged_in_prompts(group[0]["prompt_id"] for group in chunk)
            if filters.exclude_flagged
            else set()
        )
        candidates = {
            row["id"]: row
            for row in Candidate.objects.filter(pk__in=candidate_ids).values(
                "id",
                "text",
                "source",
                "backend",
                "model_name",
                "sampling_params",
                "seed",
                "finish_reason",
                "demonstration_id",
            )
        }
        names.load({r["labeler_id"] for group in chunk for r in group})
        prompts_out: list[PromptRankings] = []
        for group in chunk:
            orders = [r["order"] for r in group]
            tally = orders_agreement(orders)
            if filters.min_agreement is not None and (
                tally.agreement is None or tally.agreement < filters.min_agreement
            ):
                continue
            consensus = (
                votes_weighted_consensus(
                    candidate_ids=[c for order in orders for g in order for c in g],
                    votes=[
                        (r["labeler_id"], better, worse)
                        for r in group
                        for better, worse in comparisons_from_order(order=r["order"])
                    ],
                    weights=weights,
                ).order
                if weights is not None
                else consensus_from_orders(orders=orders).order
            )
            for r in group:
                r["items"] = items.get(r["id"], [])
            rankings = [] if filters.consensus_only else group
            if filters.exclude_flagged and flagged:
                consensus = _without(consensus, flagged)
                for r in rankings:
                    r["order"] = _without(r["order"], flagged)
                    r["items"] = [i for i in r["items"] if i["candidate_id"] not in flagged]
            prompts_out.append(
                PromptRankings(
                    prompt_id=group[0]["prompt_id"],
                    rankings=rankings,
                    consensus_order=consensus,
                    agreement=tally.agreement,
                    kendall_tau=tally.tau,
                )
            )
        yield SourceBatch(
            rows=prompts_out,
            prompts=_prompt_turns(group[0]["prompt_id"] for group in chunk),
            candidates=candidates,
            names=names,
            source_rows=len(ranking_ids),
        )


def _without(order: list[list[int]], excluded: set[int]) -> list[list[int]]:
    return [kept for kept in ([c for c in group if c not in excluded] for group in order) if kept]


# --- Demonstrations -----------------------------------------------------------------------------


def demonstration_source_count(*, project_id: int, filters: ExportFilters) -> int:
    return _filter_common(Demonstration.objects.all(), project_id=project_id, filters=filters).count()


def demonstration_row_count(*, project_id: int, filters: ExportFilters) -> int:
    """The rows `demonstration_batches` would yield: one COUNT."""
    queryset = _filter_common(Demonstration.objects.all(), project_id=project_id, filters=filters)
    if filters.exclude_flagged:
        flagged = RankingItem.objects.filter(candidate__demonstration_id=OuterRef("pk")).exclude(flags=[])
        queryset = queryset.exclude(Exists(flagged))
    return queryset.count()


def demonstration_batches(*, project_id: int, filters: ExportFilters) -> Iterator[SourceBatch]:
    """Demonstrations in batches with their prompts; `exclude_flagged` drops demonstrations that were
    put among the candidates and flagged there."""
    queryset = _filter_common(Demonstration.objects.all(), project_id=project_id, filters=filters)
    rows = (
        queryset.order_by("prompt_id", "id")
        .values_list("id", "prompt_id", "labeler_id", "text", "seconds_spent", "created_at")
        .iterator(chunk_size=ITERATOR_CHUNK)
    )
    names = LabelerNames(anonymise=filters.anonymise, project_id=project_id)
    while True:
        batch = list(islice(rows, BATCH_ROWS))
        if not batch:
            return
        read = len(batch)
        if filters.exclude_flagged:
            flagged_demos = set(
                Candidate.objects.filter(
                    demonstration_id__in=[row[0] for row in batch],
                    ranking_items__in=RankingItem.objects.exclude(flags=[]),
                ).values_list("demonstration_id", flat=True)
            )
            batch = [row for row in batch if row[0] not in flagged_demos]
        names.load({row[2] for row in batch})
        yield SourceBatch(
            rows=batch,
            prompts=_prompt_turns(row[1] for row in batch),
            candidates={},
            names=names,
            source_rows=read,
        )
