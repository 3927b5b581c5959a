"""Consensus ranking of one prompt from all its rankings, by ranked pairs (Tideman).

Why ranked pairs and not a Bradley-Terry fit: a prompt has only a handful of rankings (the project's
overlap, typically 2-5), so a Bradley-Terry maximum-likelihood fit is usually degenerate (whenever the
labelers agree the likelihood has no finite maximum, and a prior would then decide the answer). Ranked
pairs works from the same pairwise counts, needs no iteration or regularisation, is deterministic, is a
Condorcet method (a candidate every majority prefers comes first), and resolves a cycle in a way one can
explain: majorities are locked in from the strongest down, and one that would close a cycle is dropped.
Bradley-Terry is what the reward model fits across prompts; here we only need one order per prompt.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from annotation.models import Ranking
from annotation.services.rankings import comparisons_from_order


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
    nodes = sorted(set(candidate_ids))
    wins = Counter(pairs)
    for better, worse in wins:
        if better not in nodes:
            nodes.append(better)
        if worse not in nodes:
            nodes.append(worse)
    nodes = sorted(set(nodes))
    majorities: list[tuple[int, int, int, int]] = []
    for index, a in enumerate(nodes):
        for b in nodes[index + 1 :]:
            margin = wins[(a, b)] - wins[(b, a)]
            if margin > 0:
                majorities.append((margin, wins[(a, b)], a, b))
            elif margin < 0:
                majorities.append((-margin, wins[(b, a)], b, a))
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


def prompt_consensus(*, prompt_id: int) -> Consensus:
    """The consensus of every ranking stored for one prompt."""
    orders = list(Ranking.objects.filter(prompt_id=prompt_id).order_by("id").values_list("order", flat=True))
    return consensus_from_orders(orders=orders)
