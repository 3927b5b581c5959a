"""Uncertainty heads: a small ensemble of linear Bradley-Terry heads on a trained version's pooled
features, so the queue can ask where a label would move the model (rewards.acquisition).

A version is one fine-tuned model, and one model's scores only say how close to a coin flip it
calls a pair (acquisition_closeness), which bench/active_learning.py measured as barely better than
random: closeness is highest where two answers look alike to the model, and a label there teaches it
little. What does better there is disagreement among members fitted to different resamples of the
same labels. Fine-tuning several backbones per version would cost several trainings, so after
training the backbone is frozen and `members` linear heads are fitted on its pooled features, each
to a Poisson bootstrap of the training comparisons (the members differ only in their resample, so
their spread is the labels' uncertainty, not the optimiser's). The heads are a few kilobytes, are
saved beside the scalar head, and give each candidate one score per member at scoring time, from the
same forward pass as its score.

The fit is the one bench/active_learning.py measures: Newton's method on the Bradley-Terry loss plus
an L2 penalty, on features scaled so a comparison's difference has mean squared norm 1.
"""

from __future__ import annotations

import torch

# Eight members: the spread of eight bootstrap fits is a usable ranking signal (the bench's default),
# and each member is a few hundred numbers.
MEMBERS = 8
# L2 penalty on features scaled to mean squared difference norm 1: bench/active_learning.py's value,
# chosen there on the random order's curve alone, best from 40 to 900 labels among 0.3, 1, 5 and 15.
PENALTY = 5.0
# Newton converges in well under this on a penalised logistic loss; the cap bounds a degenerate case.
NEWTON_ITERATIONS = 50
NEWTON_TOLERANCE = 1e-7


def heads_fit(
    differences: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor,
    *,
    penalty: float,
    start: torch.Tensor | None = None,
) -> torch.Tensor:
    """(members, dim) weights w minimising, for each member m,
    sum_n weights[m, n] * -log sigmoid(labels[n] * w . differences[n]) + penalty / 2 * |w|^2.

    differences: (n, dim), first answer's features minus the second's; labels: (n,) +1 where the
    first is better, -1 otherwise; weights: (members, n) bootstrap counts; start: a warm start of
    the result's shape. float64 throughout; memory is one member's (n, dim) at a time.
    """
    if penalty <= 0:
        raise ValueError("penalty must be positive: it keeps the fit unique when comparisons are few")
    oriented = differences * labels.unsqueeze(1)
    members, dimension = weights.shape[0], differences.shape[1]
    heads = torch.zeros(members, dimension, dtype=differences.dtype) if start is None else start.clone()
    identity = torch.eye(dimension, dtype=differences.dtype)
    for _ in range(NEWTON_ITERATIONS):
        p = torch.sigmoid(oriented @ heads.T).T  # (members, n): probability of the given label
        gradient = -((weights * (1 - p)) @ oriented) + penalty * heads
        steps = []
        for member in range(members):
            curvature = (weights[member] * p[member] * (1 - p[member])).unsqueeze(1) * oriented
            hessian = curvature.T @ oriented + penalty * identity
            steps.append(torch.linalg.solve(hessian, gradient[member]))
        step = torch.stack(steps)
        heads = heads - step
        if float(step.abs().max()) < NEWTON_TOLERANCE:
            break
    return heads


def uncertainty_heads_fit(
    better: torch.Tensor,
    worse: torch.Tensor,
    *,
    members: int = MEMBERS,
    penalty: float = PENALTY,
    seed: int = 0,
) -> torch.Tensor:
    """(members, dim) float32 heads in the features' own units: member m's score of an answer is
    heads[m] . features. better, worse: (n, dim) pooled features of each training comparison's
    better and worse answer. Deterministic for a seed.
    """
    if members < 2:
        raise ValueError("an ensemble needs at least two members")
    if better.shape != worse.shape or better.dim() != 2 or better.shape[0] == 0:
        raise ValueError("better and worse must be (n, dim) features of the same n >= 1 comparisons")
    differences = (better - worse).double()
    # Scaled so the penalty means the same whatever the backbone's feature norms are.
    scale = differences.pow(2).sum(1).mean().sqrt().clamp_min(1e-12)
    generator = torch.Generator().manual_seed(seed)
    weights = torch.poisson(torch.ones(members, len(differences), dtype=torch.float64), generator=generator)
    heads = heads_fit(
        differences / scale, torch.ones(len(differences), dtype=torch.float64), weights, penalty=penalty
    )
    return (heads / scale).float()  # w . (x / scale) = (w / scale) . x
