"""How a reward model does on a fixed set of rankings: accuracy, agreement with the labelers measured
the way labeler-labeler agreement is, calibration, and the spread of its scores.

The measures are plain Python over scores already computed (`rankings_score` computes them), so a
small fixture checks them by hand:

- accuracy: of every (better, worse) comparison the rankings imply, the share the model scores
  better > worse (an exact tie counts as wrong, as the training loss's accuracy does).
- RM-labeler agreement: pairwise agreement (annotation.ranking_math's measure) between the model's
  order and each ranking, on the prompts ranked at least twice, the prompts where labeler-labeler
  agreement exists; a pair the model ties is left out, as a pair a labeler ties is. InstructGPT's
  comparison: a model that agrees with labelers about as often as they agree with each other
  (72.6 %) has learnt what they agree on.
- calibration: the model's P(a better than b) = sigmoid(r_a - r_b), the Bradley-Terry probability it
  was trained on. Each comparison enters a reliability diagram in both orientations: (p, observed 1)
  for (better, worse) and (1 - p, observed 0) for (worse, better), so the diagram does not depend
  on which answer is called first and is symmetric about 0.5. Expected calibration error (ECE): the
  gap between mean predicted and observed frequency per bin, weighted by the bin's share.
- score distribution: a histogram of the scores of the set's distinct answers.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

# Ten bins of width 0.1: enough resolution for the few hundred to few thousand pairs a project's
# evaluation set holds, few enough that each bin has pairs in it.
CALIBRATION_BINS = 10
# Twenty bins show the shape (one mode or two, a long tail) without many empty ones.
HISTOGRAM_BINS = 20


@dataclass
class ScoredRanking:
    """One ranking with the model's score of each answer it orders."""

    prompt_key: str
    order: list[list[int]]  # tie groups of answer keys (candidate ids), best first
    scores: dict[int, float]  # answer key -> score


def order_pairs_keys(order: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    """Every (better, worse) pair the tie groups imply; tied answers form none."""
    return [
        (better, worse)
        for index, group in enumerate(order)
        for better in group
        for later in order[index + 1 :]
        for worse in later
    ]


def ranking_margins(rankings: Iterable[ScoredRanking]) -> list[float]:
    """score(better) - score(worse) for every comparison of every ranking."""
    return [
        ranking.scores[better] - ranking.scores[worse]
        for ranking in rankings
        for better, worse in order_pairs_keys(ranking.order)
    ]


def pairs_accuracy(margins: Sequence[float]) -> float | None:
    return sum(1 for margin in margins if margin > 0) / len(margins) if margins else None


def rm_labeler_agreement(rankings: Sequence[ScoredRanking]) -> dict[str, Any]:
    """Pairwise agreement of the model's order with each ranking of the prompts ranked twice or more."""
    per_prompt = Counter(ranking.prompt_key for ranking in rankings)
    overlapping = [ranking for ranking in rankings if per_prompt[ranking.prompt_key] >= 2]
    margins = ranking_margins(overlapping)
    agreed = sum(1 for margin in margins if margin > 0)
    compared = sum(1 for margin in margins if margin != 0)
    return {
        "agreement": agreed / compared if compared else None,
        "pairs_agreed": agreed,
        "pairs_compared": compared,
        "rankings": len(overlapping),
        "prompts": len({ranking.prompt_key for ranking in overlapping}),
    }


def sigmoid(value: float) -> float:
    if value >= 0:
        return 1.0 / (1.0 + math.exp(-value))
    exponential = math.exp(value)  # no overflow for very negative values
    return exponential / (1.0 + exponential)


def reliability_diagram(margins: Sequence[float], *, bins: int = CALIBRATION_BINS) -> dict[str, Any]:
    """Bins of predicted P(better) against the observed frequency, and the expected calibration error.

    Each margin m = r_better - r_worse gives the points (sigmoid(m), 1) and (1 - sigmoid(m), 0).
    A bin: [lower, upper) (the last one closed), its point count, mean prediction and observed
    frequency (None when empty). `ece` is None without pairs.
    """
    counts = [0] * bins
    predicted = [0.0] * bins
    observed = [0] * bins
    for margin in margins:
        probability = sigmoid(margin)
        for point, outcome in ((probability, 1), (1.0 - probability, 0)):
            index = min(int(point * bins), bins - 1)
            counts[index] += 1
            predicted[index] += point
            observed[index] += outcome
    total = sum(counts)
    rows = []
    ece = 0.0
    for index in range(bins):
        count = counts[index]
        mean = predicted[index] / count if count else None
        frequency = observed[index] / count if count else None
        if mean is not None and frequency is not None:
            ece += count / total * abs(mean - frequency)
        rows.append(
            {
                "lower": round(index / bins, 6),
                "upper": round((index + 1) / bins, 6),
                "count": count,
                "mean_predicted": mean,
                "observed": frequency,
            }
        )
    return {"bins": rows, "ece": ece if total else None, "pairs": len(margins)}


def score_histogram(scores: Sequence[float], *, bins: int = HISTOGRAM_BINS) -> dict[str, Any]:
    """Equal-width bins from the lowest score to the highest (`edges` has bins + 1 entries), with the
    count in each (the last bin closed), and the mean and standard deviation."""
    if not scores:
        return {"edges": [], "counts": [], "count": 0, "mean": None, "std": None, "min": None, "max": None}
    low, high = min(scores), max(scores)
    if high == low:  # one value: one bin around it
        low, high, bins = low - 0.5, high + 0.5, 1
    width = (high - low) / bins
    counts = [0] * bins
    for score in scores:
        counts[min(int((score - low) / width), bins - 1)] += 1
    mean = sum(scores) / len(scores)
    variance = sum((score - mean) ** 2 for score in scores) / len(scores)
    return {
        "edges": [low + width * index for index in range(bins + 1)],
        "counts": counts,
        "count": len(scores),
        "mean": mean,
        "std": math.sqrt(variance),
        "min": min(scores),
        "max": max(scores),
    }


def evaluation_report(
    rankings: Sequence[ScoredRanking], *, labeler_labeler: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Every measure above for one model on one set of rankings; `labeler_labeler` (agreement among
    the labelers on the same prompts, computed elsewhere) is stored beside RM-labeler agreement."""
    margins = ranking_margins(rankings)
    distinct: dict[tuple[str, int], float] = {}
    for ranking in rankings:
        for key, score in ranking.scores.items():
            distinct[(ranking.prompt_key, key)] = score
    return {
        "accuracy": pairs_accuracy(margins),
        "pairs": len(margins),
        "rankings": len(rankings),
        "prompts": len({ranking.prompt_key for ranking in rankings}),
        "rm_labeler": rm_labeler_agreement(rankings),
        "labeler_labeler": labeler_labeler,
        "calibration": reliability_diagram(margins),
        "scores": score_histogram(list(distinct.values())),
    }
