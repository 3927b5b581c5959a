"""Ranking math, pure: no database, no Django. Services, selectors, serializers and exports import it.

An order is a list of tie groups of candidate ids, best group first: [[3], [1, 4], [2]].

- Validation: an order names each shown candidate exactly once, in non-empty groups.
- Comparisons: every (better, worse) pair an order implies (tied candidates form none). The reward
  model's own pair expansion (rewards.ml.data.order_pairs) is tested to agree with it.
- Agreement between rankings of one prompt: pairwise agreement and Kendall's tau-b.
- Consensus of several rankings of one prompt: ranked pairs (Tideman).

Agreement has two measures, both over the candidates two rankings share:
- pairwise agreement: of the candidate pairs both rankings order strictly (a tie in either leaves the
  pair out), the fraction ordered the same way. This is InstructGPT's inter-annotator figure (72.6 %).
- Kendall's tau-b: rank correlation in [-1, 1] that accounts for ties; undefined (skipped) when either
  ranking ties every shared candidate.
Aggregates pool pairwise agreement (sum agreed / sum compared, so prompts with more pairs weigh more)
and average tau over ranking pairs.

Why ranked pairs and not a Bradley-Terry fit: a prompt has only a handful of rankings (the project's
overlap, typically 2-5), so a Bradley-Terry maximum-likelihood fit is usually degenerate (whenever the
labelers agree the likelihood has no finite maximum, and a prior would then decide the answer). Ranked
pairs works from the same pairwise counts, needs no iteration or regularisation, is deterministic, is a
Condorcet method (a candidate every majority prefers comes first), and resolves a cycle in a way one can
explain: majorities are locked in from the strongest down, and one that would close a cycle is dropped.
Bradley-Terry is what the reward model fits across prompts; here we only need one order per prompt.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from config.errors import ValidationFailed

# ---- Orders and the comparisons they imply ----------------------------------------------------------


def comparisons_from_order(*, order: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    """Every (better, worse) pair implied by tie groups, best group first. Tied candidates form no pair.

    [[3], [1, 4], [2]] -> (3,1) (3,4) (3,2) (1,2) (4,2): C(4,2) = 6 pairs minus the one tie.
    """
    pairs: list[tuple[int, int]] = []
    for group_index, group in enumerate(order):
        for better in group:
            for later_group in order[group_index + 1 :]:
                pairs.extend((better, worse) for worse in later_group)
    return pairs


def order_validate(*, order: Any, candidate_ids: Sequence[int]) -> list[list[int]]:
    """Check that `order` is a list of non-empty tie groups naming each candidate exactly once.

    Returns the order with ints; raises ValidationFailed naming what is wrong (unknown, missing,
    repeated candidate, or a malformed group).
    """
    if not isinstance(order, list) or not order:
        raise ValidationFailed("order must be a non-empty list of tie groups", code="invalid_order")
    expected = set(candidate_ids)
    seen: set[int] = set()
    repeated: list[int] = []
    unknown: list[Any] = []
    cleaned: list[list[int]] = []
    for group in order:
        if not isinstance(group, list) or not group:
            raise ValidationFailed(
                "each tie group must be a non-empty list of candidate ids", code="invalid_order"
            )
        cleaned_group: list[int] = []
        for value in group:
            if isinstance(value, bool) or not isinstance(value, int):
                unknown.append(value)
                continue
            if value not in expected:
                unknown.append(value)
            elif value in seen:
                repeated.append(value)
            else:
                seen.add(value)
                cleaned_group.append(value)
        cleaned.append(cleaned_group)
    if unknown:
        raise ValidationFailed(
            f"unknown candidate(s) {unknown}: not among this task's candidates",
            code="unknown_candidate",
            details={"unknown": unknown},
        )
    if repeated:
        raise ValidationFailed(
            f"candidate(s) {sorted(set(repeated))} appear more than once",
            code="repeated_candidate",
            details={"repeated": sorted(set(repeated))},
        )
    missing = sorted(expected - seen)
    if missing:
        raise ValidationFailed(
            f"candidate(s) {missing} are missing from the order",
            code="missing_candidate",
            details={"missing": missing},
        )
    return cleaned


# ---- Agreement ---------------------------------------------------------------------------------------


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


# ---- Consensus ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Consensus:
    """`order`: tie groups, best first. `pairs`: every (better, worse) the locked majorities imply,
    directly or through a chain; candidates that no majority separates form no pair."""

    order: list[list[int]]
    pairs: list[tuple[int, int]]
    dropped: list[tuple[int, int]]  # majorities dropped because they would close a cycle


def _reaches(graph: dict[int, set[int]], start: int, goal: int) -> bool:
    stack, seen = [start], {start}
    while stack:
        node = stack.pop()
        if node == goal:
            return True
        for nxt in graph[node]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return False


def consensus_ranked_pairs(*, candidate_ids: Iterable[int], pairs: Iterable[tuple[int, int]]) -> Consensus:
    """Consensus of the (better, worse) `pairs` from all rankings of one prompt, over `candidate_ids`.

    The margin of a over b is (#rankings a above b) - (#rankings b above a). Positive margins are locked
    strongest first (ties broken by more votes for the winner, then by candidate id, so the result is
    deterministic); a margin that would create a cycle is skipped. The order layers the locked graph:
    each tie group is the candidates nothing remaining is locked above.
    """
    return consensus_weighted_pairs(candidate_ids=candidate_ids, weights=Counter(pairs))


def consensus_weighted_pairs(
    *, candidate_ids: Iterable[int], weights: Mapping[tuple[int, int], float]
) -> Consensus:
    """Ranked pairs over weighted votes: `weights[(a, b)]` is the total weight of the votes for a over b
    (a count, or a reliability weight such as annotation.reliability's log-odds). Same rules as
    consensus_ranked_pairs, which is this with every vote weighing 1."""
    nodes = sorted(set(candidate_ids))
    for better, worse in weights:
        if better not in nodes:
            nodes.append(better)
        if worse not in nodes:
            nodes.append(worse)
    nodes = sorted(set(nodes))
    majorities: list[tuple[float, float, int, int]] = []
    for index, a in enumerate(nodes):
        for b in nodes[index + 1 :]:
            ab, ba = weights.get((a, b), 0), weights.get((b, a), 0)
            margin = ab - ba
            if margin > 0:
                majorities.append((margin, ab, a, b))
            elif margin < 0:
                majorities.append((-margin, ba, b, a))
    majorities.sort(key=lambda m: (-m[0], -m[1], m[2], m[3]))

    locked: dict[int, set[int]] = {node: set() for node in nodes}
    dropped: list[tuple[int, int]] = []
    for _margin, _votes, winner, loser in majorities:
        if _reaches(locked, loser, winner):
            dropped.append((winner, loser))
        else:
            locked[winner].add(loser)

    implied: list[tuple[int, int]] = []
    for node in nodes:
        stack, seen = list(locked[node]), set(locked[node])
        while stack:
            for nxt in locked[stack.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        implied.extend((node, below) for below in sorted(seen))

    order: list[list[int]] = []
    remaining = set(nodes)
    while remaining:
        beaten = {loser for winner in remaining for loser in locked[winner] if loser in remaining}
        group = sorted(remaining - beaten)
        order.append(group)
        remaining -= set(group)
    return Consensus(order=order, pairs=implied, dropped=dropped)


def consensus_from_orders(*, orders: Sequence[Sequence[Sequence[int]]]) -> Consensus:
    """Consensus of several rankings given as tie-group orders."""
    candidates = {cid for order in orders for group in order for cid in group}
    pairs = [pair for order in orders for pair in comparisons_from_order(order=order)]
    return consensus_ranked_pairs(candidate_ids=candidates, pairs=pairs)
