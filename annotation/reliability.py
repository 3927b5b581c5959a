"""Labeler reliability and reliability-weighted consensus; Krippendorff's alpha. Pure: no Django, no database.

A judgment is one (prompt, labeler, better, worse) comparison: exactly the Comparison rows, or what
`judgments_from_rankings` expands from tie-group orders. A tie yields no judgment.

The model: one-coin Dawid-Skene over candidate pairs (MACE-like). Every unordered pair {a, b} of one
prompt has a hidden true direction; labeler j reports it correctly with probability p_j, whatever
the pair, independently. EM alternates between the posterior of each pair's direction given the
current p (a vote weighs w_j = log(p_j / (1 - p_j))) and p_j as the share of j's votes that agree
with those posteriors, shrunk towards a Beta prior. A labeler below 0.5 gets a negative weight: their
votes count, flipped. The consensus of a prompt is ranked pairs (ranking_math) over the posterior
log-odds of its pairs, so it is always an order (tie groups), and a Condorcet winner stays first.

Why this model and not the alternatives:
- Bradley-Terry with per-labeler noise needs one latent score per candidate and per-labeler
  temperatures fitted by gradient steps; with 2-5 rankings a prompt the scores are often unbounded
  (the reason ranking_math uses ranked pairs) and the fit needs regularisation that then decides
  the answer. The pairwise model has closed-form steps, no learning rate, and converges in a few
  dozen cheap passes (10k judgments: a few milliseconds each).
- Full Dawid-Skene (a confusion matrix per labeler) has nothing to learn here: a pair has two
  symmetric outcomes, so one accuracy per labeler is the whole matrix. MACE's "spammer" mixture
  needs a label distribution for spam; a random clicker is already p = 0.5, weight 0.
- The one-coin model is what the product needs to show: one number per labeler, the probability of
  agreeing with the truth, below 0.5 meaning adversarial (systematically reversed).
Its blind spot: it treats the C(K,2) pairs of one ranking as independent, so a labeler's evidence
is counted per pair, not per ranking; the prior strength is in pairs for that reason.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from annotation.ranking_math import comparisons_from_order, consensus_weighted_pairs

# Prior on a labeler's accuracy, Beta with this mean and strength (in pseudo-pairs). A typical human
# labeler agrees with the consensus about 3 times in 4 (InstructGPT: 72.6 % inter-annotator).
PRIOR_RELIABILITY = 0.75
# Twelve pseudo-pairs = two K=4 rankings: a labeler's first couple of rankings cannot swing their
# weight far, and a hundred pairs outweigh the prior eight to one.
PRIOR_STRENGTH = 12.0
# EM stops when no labeler's reliability moved by more than this, or after MAX_ITERATIONS.
TOLERANCE = 1e-6
MAX_ITERATIONS = 200
# Gold pairs are clamped to this posterior instead of 1 so that their log-odds stay finite.
GOLD_CERTAINTY = 0.999
# Adversarial: reliability below 0.5 by more than this many standard errors (a random clicker sits at
# 0.5 and must not be called adversarial because of noise).
ADVERSARIAL_STANDARD_ERRORS = 2.0

Judgment = tuple[Hashable, Hashable, int, int]  # (prompt_id, labeler_id, better, worse)


@dataclass(frozen=True)
class LabelerReliability:
    labeler_id: Hashable
    reliability: float  # posterior-mean probability of agreeing with the truth on a pair
    standard_error: float
    judgments: int
    weight: float  # log-odds weight of one vote; negative means flipped
    adversarial: bool


@dataclass
class ReliabilityResult:
    labelers: dict[Hashable, LabelerReliability]
    # prompt_id -> tie groups, best first; posteriors: (prompt_id, a, b) with a < b -> P(a above b)
    consensus: dict[Hashable, list[list[int]]]
    posteriors: dict[tuple[Hashable, int, int], float] = field(repr=False)
    iterations: int = 0
    converged: bool = False


def judgments_from_rankings(
    *, rankings: Iterable[tuple[Hashable, Hashable, Sequence[Sequence[int]]]]
) -> list[Judgment]:
    """(prompt_id, labeler_id, order) rows, e.g. Ranking.prompt_id/labeler_id/order -> judgments."""
    return [
        (prompt_id, labeler_id, better, worse)
        for prompt_id, labeler_id, order in rankings
        for better, worse in comparisons_from_order(order=order)
    ]


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def _sort_key(value: Hashable) -> tuple[str, str]:
    # Ids may be ints or strings; sorting by type name then text is total and stable across runs.
    return (type(value).__name__, f"{value:>20}" if isinstance(value, int) else str(value))


def reliability_estimate(
    *,
    judgments: Iterable[Judgment],
    gold: Iterable[tuple[Hashable, int, int]] = (),
    candidates: Mapping[Hashable, Iterable[int]] | None = None,
    prior_reliability: float = PRIOR_RELIABILITY,
    prior_strength: float = PRIOR_STRENGTH,
    tolerance: float = TOLERANCE,
    max_iterations: int = MAX_ITERATIONS,
) -> ReliabilityResult:
    """Each labeler's reliability and each prompt's consensus, estimated jointly by EM.

    `judgments`: (prompt_id, labeler_id, better, worse), e.g. the Comparison rows. `gold`:
    (prompt_id, better, worse) pairs whose direction is known (gold or adjudicated rankings); they
    anchor the estimate and are never re-estimated. `candidates`: prompt_id -> every candidate id, so
    that candidates nobody compared still appear in the consensus (otherwise only compared ones do).
    Deterministic: the result does not depend on the order of the input.
    """
    # One row per unordered pair (prompt, low, high); a vote is +1 for "low above high".
    votes_by_pair: dict[tuple[Hashable, int, int], list[tuple[Hashable, int]]] = defaultdict(list)
    for prompt_id, labeler_id, better, worse in judgments:
        if better == worse:
            continue
        low, high = (better, worse) if better < worse else (worse, better)
        votes_by_pair[(prompt_id, low, high)].append((labeler_id, 1 if better == low else -1))
    clamped: dict[tuple[Hashable, int, int], float] = {}
    for prompt_id, better, worse in gold:
        low, high = (better, worse) if better < worse else (worse, better)
        clamped[(prompt_id, low, high)] = GOLD_CERTAINTY if better == low else 1.0 - GOLD_CERTAINTY
        votes_by_pair.setdefault((prompt_id, low, high), [])

    labeler_ids = sorted({lab for votes in votes_by_pair.values() for lab, _ in votes}, key=_sort_key)
    index_of = {labeler_id: i for i, labeler_id in enumerate(labeler_ids)}
    pair_keys = sorted(votes_by_pair, key=lambda k: (_sort_key(k[0]), k[1], k[2]))
    pairs = [sorted((index_of[lab], sign) for lab, sign in votes_by_pair[key]) for key in pair_keys]
    counts = [0] * len(labeler_ids)
    for votes in pairs:
        for j, _ in votes:
            counts[j] += 1

    alpha = prior_reliability * prior_strength
    # Start from agreement with gold where there is gold: starting from the unweighted majority would
    # let an adversarial majority pull EM into the flipped solution, which explains votes equally well.
    gold_agreed, gold_votes = [0.0] * len(labeler_ids), [0] * len(labeler_ids)
    for key, votes in zip(pair_keys, pairs, strict=True):
        if key in clamped:
            for j, sign in votes:
                gold_agreed[j] += clamped[key] if sign > 0 else 1.0 - clamped[key]
                gold_votes[j] += 1
    reliability = [
        (alpha + gold_agreed[j]) / (prior_strength + gold_votes[j]) for j in range(len(labeler_ids))
    ]
    posterior = [0.5] * len(pair_keys)
    converged, iteration = False, 0
    for iteration in range(1, max_iterations + 1):  # noqa: B007 (reported after the loop)
        # E step: P(low above high) for every pair, from log-odds weighted votes.
        weights = [math.log(p / (1.0 - p)) for p in reliability]
        for i, (key, votes) in enumerate(zip(pair_keys, pairs, strict=True)):
            if key in clamped:
                posterior[i] = clamped[key]
            else:
                posterior[i] = _sigmoid(sum(weights[j] * sign for j, sign in votes))
        # M step: expected agreements per labeler, shrunk towards the prior.
        agreed = [0.0] * len(labeler_ids)
        for q, votes in zip(posterior, pairs, strict=True):
            for j, sign in votes:
                agreed[j] += q if sign > 0 else 1.0 - q
        updated = [(alpha + agreed[j]) / (prior_strength + counts[j]) for j in range(len(labeler_ids))]
        change = max((abs(a - b) for a, b in zip(updated, reliability, strict=True)), default=0.0)
        reliability = updated
        if change <= tolerance:
            converged = True
            break

    labelers: dict[Hashable, LabelerReliability] = {}
    for j, labeler_id in enumerate(labeler_ids):
        p = reliability[j]
        standard_error = math.sqrt(p * (1.0 - p) / (prior_strength + counts[j]))
        labelers[labeler_id] = LabelerReliability(
            labeler_id=labeler_id,
            reliability=p,
            standard_error=standard_error,
            judgments=counts[j],
            weight=math.log(p / (1.0 - p)),
            adversarial=p + ADVERSARIAL_STANDARD_ERRORS * standard_error < 0.5,
        )

    posteriors = dict(zip(pair_keys, posterior, strict=True))
    return ReliabilityResult(
        labelers=labelers,
        consensus=consensus_from_posteriors(posteriors=posteriors, candidates=candidates),
        posteriors=posteriors,
        iterations=iteration,
        converged=converged,
    )


def consensus_from_posteriors(
    *,
    posteriors: Mapping[tuple[Hashable, int, int], float],
    candidates: Mapping[Hashable, Iterable[int]] | None = None,
) -> dict[Hashable, list[list[int]]]:
    """Per prompt, ranked pairs over the pairs' posterior log-odds: the strongest beliefs lock first."""
    margins: dict[Hashable, dict[tuple[int, int], float]] = defaultdict(dict)
    members: dict[Hashable, set[int]] = defaultdict(set)
    for (prompt_id, low, high), q in posteriors.items():
        members[prompt_id].update((low, high))
        q = min(max(q, 1e-12), 1.0 - 1e-12)
        log_odds = math.log(q / (1.0 - q))
        if log_odds > 0:
            margins[prompt_id][(low, high)] = log_odds
        elif log_odds < 0:
            margins[prompt_id][(high, low)] = -log_odds
    for prompt_id, ids in (candidates or {}).items():
        members[prompt_id].update(ids)
    return {
        prompt_id: consensus_weighted_pairs(candidate_ids=ids, weights=margins[prompt_id]).order
        for prompt_id, ids in sorted(members.items(), key=lambda item: _sort_key(item[0]))
    }


# ---- Krippendorff's alpha ----------------------------------------------------------------------------


def _ordinal_distances(
    values: list[float], totals: Mapping[float, float]
) -> dict[tuple[float, float], float]:
    """Krippendorff's ordinal metric: (sum of n_g for g from c to k, minus (n_c + n_k) / 2) squared."""
    distances: dict[tuple[float, float], float] = {}
    for i, c in enumerate(values):
        running = 0.0
        for k in values[i:]:
            running += totals[k]
            delta = (running - (totals[c] + totals[k]) / 2.0) ** 2
            distances[(c, k)] = distances[(k, c)] = delta
    return distances


def krippendorff_alpha(
    *, units: Iterable[Mapping[Hashable, float | None]], metric: str = "ordinal"
) -> float | None:
    """Krippendorff's alpha over `units`, each a mapping coder -> value (None or absent: missing).

    `metric`: "nominal", "ordinal" or "interval". Units with fewer than two values are not pairable
    and are left out, as the method prescribes. None when nothing is pairable or every value is the
    same (expected disagreement zero: alpha is undefined).
    """
    coincidences: dict[tuple[float, float], float] = defaultdict(float)
    for unit in units:
        present: dict[float, int] = defaultdict(int)
        for value in unit.values():
            if value is not None:
                present[value] += 1
        m = sum(present.values())
        if m < 2:
            continue
        for c, count_c in present.items():
            for k, count_k in present.items():
                pairs = count_c * (count_k - 1) if c == k else count_c * count_k
                if pairs:
                    coincidences[(c, k)] += pairs / (m - 1)
    totals: dict[float, float] = defaultdict(float)
    for (c, _k), o in coincidences.items():
        totals[c] += o
    n = sum(totals.values())
    values = sorted(totals)
    if metric == "nominal":
        distance = {(c, k): 0.0 if c == k else 1.0 for c in values for k in values}
    elif metric == "interval":
        distance = {(c, k): (c - k) ** 2 for c in values for k in values}
    elif metric == "ordinal":
        distance = _ordinal_distances(values, totals)
    else:
        raise ValueError(f"unknown metric {metric!r}: nominal, ordinal or interval")
    observed = sum(o * distance[pair] for pair, o in coincidences.items())
    expected = sum(totals[c] * totals[k] * distance[(c, k)] for c in values for k in values)
    if n < 2 or expected == 0:
        return None
    return 1.0 - (n - 1) * observed / expected


def midranks(order: Sequence[Sequence[int]]) -> dict[int, float]:
    """Candidate -> 1-based rank position, tied candidates sharing the mean of the places they fill."""
    ranks: dict[int, float] = {}
    place = 0
    for group in order:
        mean_place = place + (len(group) + 1) / 2.0
        for candidate_id in group:
            ranks[candidate_id] = mean_place
        place += len(group)
    return ranks


def rankings_krippendorff_alpha(
    *, rankings: Iterable[tuple[Hashable, Hashable, Sequence[Sequence[int]]]], metric: str = "ordinal"
) -> float | None:
    """Alpha over rankings given as (prompt_id, labeler_id, order) rows, e.g. from Ranking.

    Units are (prompt, candidate); a labeler's value is the candidate's rank position in their order,
    ties sharing the mean position (midrank), so [[a], [b, c], [d]] gives a=1, b=c=2.5, d=4. A labeler
    who did not rank the prompt is a missing value.
    """
    units: dict[tuple[Hashable, int], dict[Hashable, float | None]] = defaultdict(dict)
    for prompt_id, labeler_id, order in rankings:
        for candidate_id, rank in midranks(order).items():
            units[(prompt_id, candidate_id)][labeler_id] = rank
    return krippendorff_alpha(units=units.values(), metric=metric)
