"""The Bradley-Terry ranking loss of InstructGPT (Ouyang et al. 2022, eq. 1).

loss = -1/C(K,2) * sum over pairs (better, worse) of log sigmoid(r(x, better) - r(x, worse))

per ranking, then averaged over rankings, so a K=9 ranking weighs as much as a K=2 one. With
ties a ranking has fewer than C(K,2) pairs and its mean is over the pairs it has.
The optional centering term (Eisenstein et al. 2023, eq. 2) adds coefficient * (r_better + r_worse)^2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class LossParts:
    loss: torch.Tensor  # mean over rankings, what backward() uses
    pair_loss_sum: float  # sum of -log sigmoid over pairs, for reporting
    pairs: int
    correct: int  # pairs with r_better > r_worse


def ranking_loss(
    scores: torch.Tensor,
    *,
    better: torch.Tensor,
    worse: torch.Tensor,
    pair_ranking: torch.Tensor,
    pairs_per_ranking: torch.Tensor,
    center_coefficient: float = 0.0,
    rankings_total: int | None = None,
) -> LossParts:
    """Loss of a batch of rankings.

    `rankings_total` divides the sum of per-ranking means (default: the rankings in this batch);
    a step split into chunks passes the step's total so the chunks add up to the step's mean.
    """
    margin = scores[better] - scores[worse]
    per_pair = -F.logsigmoid(margin)
    if center_coefficient:
        per_pair = per_pair + center_coefficient * (scores[better] + scores[worse]) ** 2
    weights = 1.0 / pairs_per_ranking.to(scores.device)[pair_ranking]
    denominator = rankings_total if rankings_total is not None else int(pairs_per_ranking.numel())
    loss = (per_pair * weights).sum() / max(1, denominator)
    with torch.no_grad():
        pair_loss_sum = float((-F.logsigmoid(margin)).sum())
        correct = int((margin > 0).sum())
    return LossParts(loss=loss, pair_loss_sum=pair_loss_sum, pairs=int(margin.numel()), correct=correct)
