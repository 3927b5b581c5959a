"""Uncertainty heads: the fit is the penalised Bradley-Terry optimum, members differ only by their
resample, and their spread shrinks where labels are plentiful (what makes it an uncertainty)."""

from __future__ import annotations

import pytest
import torch

from rewards.acquisition import acquisition_uncertainty
from rewards.ml.ensemble import PENALTY, heads_fit, uncertainty_heads_fit


def _comparisons(
    count: int, *, seed: int, dimension: int = 6, noise: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features of `count` comparisons whose better answer a hidden linear score prefers, each
    labelled the other way with probability `noise` (as labelers err)."""
    generator = torch.Generator().manual_seed(seed)
    truth = torch.linspace(1.0, -1.0, dimension)
    first = torch.randn(count, dimension, generator=generator)
    second = torch.randn(count, dimension, generator=generator)
    flipped = torch.rand(count, generator=generator) < noise
    first_better = ((first @ truth > second @ truth) ^ flipped).unsqueeze(1)
    return torch.where(first_better, first, second), torch.where(first_better, second, first)


def test_each_head_is_the_penalised_bradley_terry_optimum():
    better, worse = _comparisons(40, seed=1)
    differences = (better - worse).double()
    labels = torch.where(torch.arange(40) % 3 == 0, -1.0, 1.0).double()  # some answers flipped
    weights = torch.poisson(
        torch.ones(3, 40, dtype=torch.float64), generator=torch.Generator().manual_seed(2)
    )
    heads = heads_fit(differences, labels, weights, penalty=2.0)

    oriented = differences * labels.unsqueeze(1)
    for member in range(3):
        head = heads[member].clone().requires_grad_(True)
        loss = -(weights[member] * torch.nn.functional.logsigmoid(oriented @ head)).sum() + head.pow(2).sum()
        (gradient,) = torch.autograd.grad(loss, head)
        assert float(gradient.abs().max()) < 1e-6
    # An independent optimiser finds the same minimum.
    free = torch.zeros(differences.shape[1], dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([free], max_iter=500, tolerance_grad=1e-12, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = -(weights[0] * torch.nn.functional.logsigmoid(oriented @ free)).sum() + free.pow(2).sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    assert torch.allclose(free.detach(), heads[0], atol=1e-6)


def test_members_differ_by_their_resample_and_a_seed_repeats_them():
    better, worse = _comparisons(60, seed=3)
    heads = uncertainty_heads_fit(better, worse, members=5, seed=7)
    assert heads.shape == (5, 6) and heads.dtype == torch.float32
    assert torch.equal(heads, uncertainty_heads_fit(better, worse, members=5, seed=7))
    assert not torch.allclose(heads[0], heads[1])
    # Every member learnt the hidden preference: each orders most comparisons the true way.
    assert all(float(((better - worse) @ head > 0).float().mean()) > 0.8 for head in heads)


def test_the_spread_does_not_depend_on_the_features_units():
    better, worse = _comparisons(50, seed=4)
    candidates = torch.randn(4, 6, generator=torch.Generator().manual_seed(5))
    spreads = []
    for unit in (1.0, 37.0):
        heads = uncertainty_heads_fit(better * unit, worse * unit, members=4, seed=1)
        member_scores = (candidates * unit @ heads.T).T.tolist()
        spreads.append(acquisition_uncertainty(member_scores=member_scores))
    assert spreads[0] == pytest.approx(spreads[1], rel=1e-4)


def test_the_spread_is_the_uncertainty_the_labels_leave():
    """On a new comparison, the members' spread of the score difference matches the standard
    deviation the Bradley-Terry posterior gives it (Laplace: the loss's curvature at the fit), pair
    by pair: large where the labels leave the model unsure, small where they pin it down."""
    better, worse = _comparisons(400, seed=10, noise=0.2)
    heads = uncertainty_heads_fit(better, worse, members=64, seed=0).double()
    differences = (better - worse).double()
    scale = differences.pow(2).sum(1).mean().sqrt()  # the fit's own units
    scaled = differences / scale
    p = torch.sigmoid(scaled @ (heads.mean(0) * scale))
    hessian = (scaled * (p * (1 - p)).unsqueeze(1)).T @ scaled + PENALTY * torch.eye(6, dtype=torch.float64)
    covariance = torch.linalg.inv(hessian)

    held_better, held_worse = _comparisons(60, seed=11)
    held = (held_better - held_worse).double()
    laplace = ((held / scale) @ covariance * (held / scale)).sum(1).sqrt()
    spread = (held @ heads.T).std(1)
    ratio = spread / laplace
    # A little under 1 (0.79 to 0.86 over member seeds): a bootstrap resamples the labels, not the
    # penalty, so it sees the data's share of the curvature only.
    assert 0.6 < float(ratio.median()) < 1.2
    ranks = torch.stack([spread.argsort().argsort(), laplace.argsort().argsort()]).double()
    assert float(torch.corrcoef(ranks)[0, 1]) > 0.8  # Spearman: the same pairs come first


@pytest.mark.parametrize(
    ("better", "worse", "members", "message"),
    [
        (torch.zeros(3, 2), torch.zeros(3, 2), 1, "at least two members"),
        (torch.zeros(3, 2), torch.zeros(2, 2), 4, "same n"),
        (torch.zeros(0, 2), torch.zeros(0, 2), 4, "same n"),
    ],
)
def test_wrong_inputs_are_refused_with_a_reason(better, worse, members, message):
    with pytest.raises(ValueError, match=message):
        uncertainty_heads_fit(better, worse, members=members)
