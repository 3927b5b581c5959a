"""Rows derived from the rankings' tie groups and ratings, for the exports the stored comparisons
cannot give: pairs under a pair or tie policy or with a margin, KTO's unpaired labels; and prompt rows.

Each reader walks the rankings once, grouped by prompt (as sources.ranking_batches does), attaches the
ranking items of a chunk of rankings with one query, and turns each prompt into rows. A "unit" is one
ranking (per-labeler rows) or the prompt's consensus (`consensus_only`): its order as tie groups, its
(better, worse) pairs and its ratings. The same row generator feeds the export and its row count, so
the two cannot drift apart.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations, islice
from statistics import fmean
from typing import Any

from annotation.exports import sources
from annotation.exports.filters import ExportFilters, LabelerNames
from annotation.models import Candidate, Prompt, Ranking, RankingItem
from annotation.ranking_math import comparisons_from_order, consensus_from_orders, orders_agreement, rank_map

CHUNK_RANKINGS = 500

# (prompt_id, ranking_id, labeler_id, better_id, worse_id, created_at text, margin, tie)
DerivedPair = tuple[int, int | None, int | None, int, int, str, float, bool]
# (prompt_id, ranking_id, labeler_id, candidate_id, label, created_at text)
KtoRow = tuple[int, int | None, int | None, int, bool, str]


@dataclass
class Unit:
    prompt_id: int
    ranking_id: int | None
    labeler_id: int | None
    created_at: str
    order: list[list[int]]
    pairs: list[tuple[int, int]]
    ratings: dict[int, float]


def _chunks(
    *, project_id: int, filters: ExportFilters
) -> Iterator[tuple[list[list[dict[str, Any]]], set[int]]]:
    """Chunks of prompts' ranking groups with their items' ratings, and the candidates to leave out."""
    groups = sources._ranking_groups(project_id=project_id, filters=filters)
    while True:
        chunk: list[list[dict[str, Any]]] = []
        size = 0
        for group in groups:
            chunk.append(group)
            size += len(group)
            if size >= CHUNK_RANKINGS:
                break
        if not chunk:
            return
        ratings: dict[int, dict[int, int]] = defaultdict(dict)
        for ranking_id, candidate_id, rating in RankingItem.objects.filter(
            ranking_id__in=[r["id"] for group in chunk for r in group], rating__isnull=False
        ).values_list("ranking_id", "candidate_id", "rating"):
            if rating is not None:  # filtered out by the query too; this tells the type checker
                ratings[ranking_id][candidate_id] = rating
        for group in chunk:
            for ranking in group:
                ranking["ratings"] = ratings.get(ranking["id"], {})
        flagged = (
            sources._flagged_in_prompts(group[0]["prompt_id"] for group in chunk)
            if filters.exclude_flagged
            else set()
        )
        yield chunk, flagged


def _units(group: list[dict[str, Any]], *, filters: ExportFilters, flagged: set[int]) -> list[Unit]:
    """One prompt's units after the agreement, consensus and flag filters (in that order, as the
    comparison-based pair export applies them)."""
    orders = [r["order"] for r in group]
    if filters.min_agreement is not None:
        agreement = orders_agreement(orders).agreement
        if agreement is None or agreement < filters.min_agreement:
            return []
    prompt_id = group[0]["prompt_id"]
    if filters.consensus_only:
        consensus = consensus_from_orders(orders=orders)
        rated: dict[int, list[int]] = defaultdict(list)
        for ranking in group:
            for candidate_id, rating in ranking["ratings"].items():
                rated[candidate_id].append(rating)
        units = [
            Unit(
                prompt_id=prompt_id,
                ranking_id=None,
                labeler_id=None,
                created_at=max(r["created_at"] for r in group).isoformat(),
                order=consensus.order,
                pairs=consensus.pairs,
                ratings={cid: fmean(values) for cid, values in rated.items()},
            )
        ]
    else:
        units = [
            Unit(
                prompt_id=prompt_id,
                ranking_id=r["id"],
                labeler_id=r["labeler_id"],
                created_at=r["created_at"].isoformat(),
                order=r["order"],
                pairs=comparisons_from_order(order=r["order"]),
                ratings=r["ratings"],
            )
            for r in group
        ]
    if flagged:
        for unit in units:
            unit.order = sources._without(unit.order, flagged)
            unit.pairs = [(b, w) for b, w in unit.pairs if b not in flagged and w not in flagged]
    return units


def _margin(unit: Unit, better: int, worse: int, distance: int) -> float:
    """The rating difference when both answers are rated and the ratings agree with the order; else
    how many tie groups apart they are (README: "margin")."""
    better_rating, worse_rating = unit.ratings.get(better), unit.ratings.get(worse)
    if better_rating is not None and worse_rating is not None and better_rating > worse_rating:
        return float(better_rating - worse_rating)
    return float(distance)


def unit_pairs(unit: Unit, *, filters: ExportFilters) -> list[DerivedPair]:
    tiers = rank_map(unit.order)
    head = (unit.prompt_id, unit.ranking_id, unit.labeler_id)
    rows: list[DerivedPair] = []
    for better, worse in unit.pairs:
        distance = tiers[worse] - tiers[better]
        if filters.pair_policy == "adjacent" and distance != 1:
            continue
        if filters.pair_policy == "best_vs_rest" and tiers[better] != 0:
            continue
        rows.append((*head, better, worse, unit.created_at, _margin(unit, better, worse, distance), False))
    if filters.tie_policy == "keep":
        rows.extend(
            (*head, first, second, unit.created_at, 0.0, True)
            for group in unit.order
            for first, second in combinations(group, 2)
        )
    return rows


def unit_kto(unit: Unit, *, filters: ExportFilters) -> list[KtoRow]:
    head = (unit.prompt_id, unit.ranking_id, unit.labeler_id)
    if filters.kto_from == "ratings":
        labelled = [
            (cid, unit.ratings[cid] >= filters.desirable_rating)
            for group in unit.order
            for cid in group
            if cid in unit.ratings
            and (
                unit.ratings[cid] >= filters.desirable_rating
                or unit.ratings[cid] <= filters.undesirable_rating
            )
        ]
    elif len(unit.order) >= 2:  # a ranking that ties everything says nothing good or bad
        labelled = [(cid, True) for cid in unit.order[0]] + [(cid, False) for cid in unit.order[-1]]
    else:
        labelled = []
    return [(*head, cid, label, unit.created_at) for cid, label in labelled]


def _rows(*, project_id: int, filters: ExportFilters, kind: str) -> Iterator[tuple[list[Any], int]]:
    """(rows, rankings read) per chunk; `kind` is "pairs" or "kto"."""
    make = unit_pairs if kind == "pairs" else unit_kto
    for chunk, flagged in _chunks(project_id=project_id, filters=filters):
        rows: list[Any] = []
        for group in chunk:
            for unit in _units(group, filters=filters, flagged=flagged):
                rows.extend(make(unit, filters=filters))
        yield rows, sum(len(group) for group in chunk)


def derived_row_count(*, project_id: int, filters: ExportFilters, kind: str) -> int:
    return sum(len(rows) for rows, _read in _rows(project_id=project_id, filters=filters, kind=kind))


def derived_batches(*, project_id: int, filters: ExportFilters, kind: str) -> Iterator[sources.SourceBatch]:
    """Derived pair rows (kind "pairs") or KTO rows ("kto") in batches, with their texts."""
    names = LabelerNames(anonymise=filters.anonymise, project_id=project_id)
    for rows, read in _rows(project_id=project_id, filters=filters, kind=kind):
        prompt_ids = {row[0] for row in rows}
        names.load({row[2] for row in rows})
        yield sources.SourceBatch(
            rows=rows,
            prompts=sources._prompt_turns(prompt_ids),
            candidates=dict(Candidate.objects.filter(prompt_id__in=prompt_ids).values_list("pk", "text")),
            names=names,
            source_rows=read,
            extra={"margin": filters.margin, "tie": filters.tie_policy == "keep"},
        )


def derived_source_count(*, project_id: int, filters: ExportFilters) -> int:
    return sources._filter_common(Ranking.objects.all(), project_id=project_id, filters=filters).count()


# --- Prompt-only rows ---------------------------------------------------------------------------


def _prompts(*, project_id: int, filters: ExportFilters):
    queryset = Prompt.objects.filter(project_id=project_id)
    if filters.date_from:
        queryset = queryset.filter(created_at__gte=filters.date_from)
    if filters.date_to:
        queryset = queryset.filter(created_at__lt=filters.date_to)
    return queryset


def prompt_row_count(*, project_id: int, filters: ExportFilters) -> int:
    return _prompts(project_id=project_id, filters=filters).count()


def prompt_batches(*, project_id: int, filters: ExportFilters) -> Iterator[sources.SourceBatch]:
    """Every prompt of the project (dates bound when it was added), in id order, with its turns."""
    rows = (
        _prompts(project_id=project_id, filters=filters)
        .order_by("id")
        .values_list("pk", "turns")
        .iterator(chunk_size=sources.ITERATOR_CHUNK)
    )
    names = LabelerNames(anonymise=False, project_id=project_id)
    while True:
        batch = list(islice(rows, sources.BATCH_ROWS))
        if not batch:
            return
        yield sources.SourceBatch(
            rows=[pk for pk, _turns in batch],
            prompts=dict(batch),
            candidates={},
            names=names,
            source_rows=len(batch),
        )
