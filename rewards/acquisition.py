"""Acquisition scores for the rank queue: which prompt should humans rank next. Pure functions,
no Django: a worker computes them from stored candidate scores and rankings and stores the result
on each prompt, so leasing stays an indexed read (no model call inside a request).

- `acquisition_uncertainty`: how unsure the reward model is about the order of a prompt's
  candidates. Given an ensemble's scores: mean over candidate pairs of the spread (standard
  deviation across members) of the score difference. Given one model's scores: its closeness.
- `acquisition_information`: the BALD variant, mutual information between a pair's label and the
  ensemble member, H(mean p) - mean H(p); bounded by ln 2, small for pairs every member calls a
  coin flip.
- `acquisition_closeness`: for a single model, mean over pairs of 4 p (1 - p), p the Bradley-Terry
  probability; 1 when every pair is a coin flip.
- `acquisition_disagreement`: how often the prompt's labelers disagree with each other.
- `acquisition_order` and `acquisition_mix`: a strategy's order, with an exploration share of
  random prompts interleaved so the model does not only see what it already finds hard.

Why an ensemble's spread rather than closeness to p = 1/2: closeness is highest for pairs whose
two answers the model can hardly tell apart (near-identical embeddings, or what it has learnt to be
a coin flip), and a label there teaches it little; members disagree where a label moves the model.
bench/active_learning.py measures both on HH-RLHF: with an ensemble of heads the uncertainty order
reached breadth-first's final accuracy with well under half its labels, closeness barely beat it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable, Mapping, Sequence
from itertools import combinations
from typing import TypeVar

Key = TypeVar("Key", bound=Hashable)


def pair_probability(*, difference: float) -> float:
    """P(first beats second) under Bradley-Terry: the sigmoid of the score difference."""
    if difference >= 0:
        return 1.0 / (1.0 + math.exp(-difference))
    exponential = math.exp(difference)  # the other form: exp of a large positive overflows
    return exponential / (1.0 + exponential)


def acquisition_closeness(*, scores: Sequence[float]) -> float:
    """Mean of 4 p (1 - p) over the candidate pairs of one model's scores, in [0, 1]; 0.0 for fewer
    than two candidates."""
    pairs = list(combinations(scores, 2))
    if not pairs:
        return 0.0
    total = 0.0
    for first, second in pairs:
        p = pair_probability(difference=first - second)
        total += 4.0 * p * (1.0 - p)
    return total / len(pairs)


def _member_differences(member_scores: Sequence[Sequence[float]]) -> list[list[float]]:
    """For each candidate pair, each member's score difference."""
    if len(member_scores) < 2:
        raise ValueError("an ensemble needs at least two members; use acquisition_closeness for one model")
    candidates = len(member_scores[0])
    if any(len(scores) != candidates for scores in member_scores):
        raise ValueError("every member must score the same candidates")
    return [
        [scores[first] - scores[second] for scores in member_scores]
        for first, second in combinations(range(candidates), 2)
    ]


def acquisition_uncertainty(
    *, scores: Sequence[float] | None = None, member_scores: Sequence[Sequence[float]] | None = None
) -> float:
    """How unsure the reward model is about the order of one prompt's candidates; pass one of:

    - scores: one model's reward per candidate -> `acquisition_closeness` (mean 4 p (1 - p)).
    - member_scores[m][c]: ensemble member m's reward for candidate c (two members or more) ->
      mean over candidate pairs of the standard deviation across members of the score difference,
      in the scores' units (log-odds). Differences, not per-candidate spreads: members that shift
      every candidate by the same amount agree on every order.

    0.0 for fewer than two candidates. The two are on different scales: a project's prompts must
    all be scored the same way to be compared (they are: by the active version).
    """
    if (scores is None) == (member_scores is None):
        raise ValueError("pass scores (one model) or member_scores (an ensemble), not both")
    if scores is not None:
        return acquisition_closeness(scores=scores)
    pairs = _member_differences(member_scores or [])
    if not pairs:
        return 0.0
    total = 0.0
    for differences in pairs:
        mean = sum(differences) / len(differences)
        total += math.sqrt(sum((d - mean) ** 2 for d in differences) / (len(differences) - 1))
    return total / len(pairs)


def _entropy(p: float) -> float:
    return -sum(q * math.log(q) for q in (p, 1.0 - p) if q > 0.0)


def acquisition_information(*, member_scores: Sequence[Sequence[float]]) -> float:
    """BALD: mean over candidate pairs of H(mean of members' p) - mean of H(p), in nats, [0, ln 2]."""
    pairs = _member_differences(member_scores)
    if not pairs:
        return 0.0
    total = 0.0
    for differences in pairs:
        probabilities = [pair_probability(difference=d) for d in differences]
        mean = sum(probabilities) / len(probabilities)
        total += _entropy(mean) - sum(_entropy(p) for p in probabilities) / len(probabilities)
    return max(total / len(pairs), 0.0)


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
