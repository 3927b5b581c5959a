"""Acquisition scores for the rank queue: which prompt should humans rank next. Pure functions,
no Django: a worker computes them from stored candidate scores and rankings and stores the result
on each prompt, so leasing stays an indexed read (no model call inside a request).

- `acquisition_uncertainty`: how unsure the reward model is about the order of a prompt's
  candidates. Mean over the candidate pairs of 4 p (1 - p), p the Bradley-Terry probability that
  one beats the other; 1 when every pair is a coin flip, near 0 when every order is clear. With an
  ensemble, each candidate's score is a mean and a spread (standard deviation across members); the
  score difference is then taken as Gaussian and p is its expected sigmoid (MacKay's probit
  approximation), so members that disagree pull p towards 1/2 as a coin flip does.
- `acquisition_disagreement`: how often the prompt's labelers disagree with each other.
- `acquisition_order` and `acquisition_mix`: a strategy's order, with an exploration share of
  random prompts interleaved so the model does not only see what it already finds hard.

Why mean p (1 - p) rather than the closest pair or the entropy: it is smooth in the scores, costs
O(K^2) with K small, has the same order as the entropy for one pair, and for K > 2 it rewards
prompts with many uncertain pairs (a ranking labels all C(K, 2) of them at once).
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable, Mapping, Sequence
from itertools import combinations
from typing import TypeVar

Key = TypeVar("Key", bound=Hashable)


def _sigmoid(value: float) -> float:
    if value >= 0:
        return 1.0 / (1.0 + math.exp(-value))
    exponential = math.exp(value)
    return exponential / (1.0 + exponential)


def pair_probability(*, difference: float, variance: float = 0.0) -> float:
    """E[sigmoid(d)] for d ~ N(difference, variance): P(first beats second) under Bradley-Terry.

    MacKay's approximation sigmoid(mu / sqrt(1 + pi variance / 8)); exact when variance is 0.
    """
    return _sigmoid(difference / math.sqrt(1.0 + math.pi * variance / 8.0))


def acquisition_uncertainty(*, scores: Sequence[float], spreads: Sequence[float] | None = None) -> float:
    """Mean of 4 p (1 - p) over the candidate pairs, in [0, 1]; 0.0 for fewer than two candidates.

    scores: one reward per candidate (an ensemble's mean); spreads: the ensemble's standard
    deviation per candidate, or None for a single model. Spreads are treated as independent
    across candidates, which overstates the variance of a difference when members shift every
    candidate together; an ensemble whose members agree on the order still scores low through
    the means.
    """
    if spreads is not None and len(spreads) != len(scores):
        raise ValueError("scores and spreads must have one entry per candidate")
    pairs = list(combinations(range(len(scores)), 2))
    if not pairs:
        return 0.0
    total = 0.0
    for first, second in pairs:
        variance = 0.0 if spreads is None else spreads[first] ** 2 + spreads[second] ** 2
        p = pair_probability(difference=scores[first] - scores[second], variance=variance)
        total += 4.0 * p * (1.0 - p)
    return total / len(pairs)


def _pair_outcomes(ranking: Sequence[Sequence[Hashable]]) -> dict[frozenset, Hashable | None]:
    """{frozenset({x, y}): the better one, or None for a tie} from tie groups, best group first."""
    position = {candidate: rank for rank, group in enumerate(ranking) for candidate in group}
    outcomes: dict[frozenset, Hashable | None] = {}
    for first, second in combinations(position, 2):
        if position[first] == position[second]:
            outcomes[frozenset((first, second))] = None
        else:
            outcomes[frozenset((first, second))] = first if position[first] < position[second] else second
    return outcomes


def acquisition_disagreement(*, rankings: Sequence[Sequence[Sequence[Hashable]]]) -> float:
    """Share of (two rankings, one candidate pair both ranked) where the two rankings' outcomes differ.

    rankings: each a list of tie groups of candidate ids, best first (`[[c3], [c1, c4], [c2]]`).
    A tie against a strict order counts as a disagreement. 0.0 with fewer than two rankings (no
    evidence of disagreement yet); 1 - this is the pairwise agreement the agreement report shows.
    """
    outcomes = [_pair_outcomes(ranking) for ranking in rankings]
    compared = differing = 0
    for first, second in combinations(outcomes, 2):
        for pair in first.keys() & second.keys():
            compared += 1
            differing += first[pair] != second[pair]
    return differing / compared if compared else 0.0


def acquisition_order(*, scores: Mapping[Key, float | None]) -> list[Key]:
    """Keys by score, highest first; keys without a score (None) last. Ties and unscored keys keep
    the mapping's order, so a caller that passes prompts in breadth-first order keeps it as the
    tie-break."""
    scored = [key for key, score in scores.items() if score is not None]
    unscored = [key for key, score in scores.items() if score is None]
    scored.sort(key=lambda key: -float(scores[key]))  # type: ignore[arg-type]  # None filtered above
    return scored + unscored


def acquisition_mix(*, order: Sequence[Key], exploration_share: float, seed: int) -> list[Key]:
    """`order` with a share of its positions given to prompts drawn uniformly at random.

    Position n (from 1) is an exploration slot when floor(share * n + offset) steps up, with one
    seeded offset in [0, 1): every prefix of the result, which is what labelers lease first, holds
    share * n exploration picks give or take one, not only the whole list on average. An exploration
    slot takes a uniformly random prompt among those not yet placed (any of them, including the
    strategy's own next one); the other slots take the strategy's next prompt not yet placed.
    Deterministic for a given order, share and seed. Store len(result) - index as the priority to
    lease in this order.
    """
    if not 0.0 <= exploration_share <= 1.0:
        raise ValueError("exploration_share must be within [0, 1]")
    if len(set(order)) != len(order):
        raise ValueError("order must not repeat a key")
    rng = random.Random(seed)
    offset = rng.random()
    # The prompts not yet placed, with each one's position, so a placed one leaves in O(1).
    unplaced = list(order)
    where = {key: index for index, key in enumerate(unplaced)}
    next_in_order = 0
    mixed: list[Key] = []
    for n in range(1, len(order) + 1):
        if math.floor(exploration_share * n + offset) > math.floor(exploration_share * (n - 1) + offset):
            choice = unplaced[rng.randrange(len(unplaced))]
        else:
            while order[next_in_order] not in where:
                next_in_order += 1
            choice = order[next_in_order]
        last = unplaced.pop()
        if last != choice:  # move the last one into the chosen one's slot
            unplaced[where[choice]] = last
            where[last] = where[choice]
        del where[choice]
        mixed.append(choice)
    return mixed
