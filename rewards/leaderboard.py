"""Generator leaderboard from human rankings: Davidson-Bradley-Terry strengths, cluster-bootstrap
confidence intervals, win-rate matrix. Pure: no Django, no database; torch for the batched algebra.

Model (Davidson 1970). Generator i has strength theta_i (log scale), ties have one parameter
nu = exp(lambda). For a comparison of i and j:

    P(i wins) = e^theta_i / D,  P(j wins) = e^theta_j / D,  P(tie) = nu * e^((theta_i + theta_j) / 2) / D

Why Davidson and not Rao-Kupper: the strengths depend on the outcomes only through each
generator's points (wins + ties / 2) and the pair counts, as the win rates in the matrix beside
them do, so a tie counts as half a win for each side; and among decisive outcomes P(i wins | not a
tie) is plain Bradley-Terry. Rao-Kupper's threshold model has neither property. With two generators, w wins, l losses and t ties
the maximum-likelihood fit is closed form: theta_a - theta_b = log(w / l), nu = t / sqrt(w * l).

Fit: Newton's method with a backtracking line search on the log posterior, which is concave in
(theta, lambda) jointly (linear terms minus a log-sum-exp of linear terms, plus Gaussian priors).
It converges in about ten steps where Hunter's MM algorithm needs hundreds when strengths are far
apart, and it runs all bootstrap resamples at once as one batch of small linear solves.

Prior: theta_i ~ N(0, prior_sd^2) and lambda ~ N(0, tie_prior_sd^2), both weak. Without it a
generator that never loses has strength +infinity (the maximum-likelihood estimate does not exist),
and data without ties sends nu to 0. The likelihood does not move when every theta moves by the
same amount, and the prior is centred at zero, so the fitted strengths have mean zero (the anchor);
a gauge term (sum theta)^2 / 2 keeps that true, and the Hessian invertible, when the prior is off.

Confidence intervals: percentile bootstrap that resamples clusters (a ranking's C(K, 2) pairs share
one labeler, one prompt, one moment; resampling pairs alone would treat them as independent and
give intervals too narrow), with a seeded generator so the same data give the same intervals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch

# A weak prior: two standard deviations are +-4 on the log-odds scale (a 98 % win rate), far wider
# than the spread between real generators, so with a few dozen comparisons the data dominate.
PRIOR_SD = 2.0
# nu = 1 (a third of equal-strength comparisons tied) at the prior's centre, wide on either side.
TIE_PRIOR_SD = 2.0
RESAMPLES = 1000
# Resamples fitted together: bounds memory (resamples x pairs x (generators + 1)^2 doubles).
RESAMPLE_CHUNK = 256
NEWTON_MAX_STEPS = 100
NEWTON_TOLERANCE = 1e-10  # on the Newton decrement, in log-posterior units

Result = Literal["a", "b", "tie"]


@dataclass(frozen=True)
class Outcome:
    """One human comparison: generator_a against generator_b, from the ranking `cluster_id`."""

    generator_a: str
    generator_b: str
    result: Result
    cluster_id: Hashable


@dataclass(frozen=True)
class GeneratorStanding:
    generator: str
    strength: float  # log scale, mean zero over the generators
    ci_low: float
    ci_high: float
    wins: int
    losses: int
    ties: int
    comparisons: int


@dataclass(frozen=True)
class Leaderboard:
    standings: list[GeneratorStanding]  # strongest first
    generators: list[str]  # the order of the matrices' rows and columns (by name)
    win_rate: list[list[float | None]]  # row's (wins + ties / 2) / comparisons against column
    comparisons: list[list[int]]
    tie_strength: float  # Davidson's nu
    clusters: int
    resamples: int
    confidence: float
    seed: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _PairCounts:
    """Outcomes aggregated over the observed generator pairs (first index < second)."""

    generators: list[str]
    pairs: torch.Tensor  # (P, 2) long
    counts: torch.Tensor  # (P, 3): first wins, second wins, ties
    cluster_counts: torch.Tensor  # (clusters, P, 3)


def _pair_counts(outcomes: Sequence[Outcome]) -> _PairCounts:
    generators = sorted({name for o in outcomes for name in (o.generator_a, o.generator_b)})
    index = {name: position for position, name in enumerate(generators)}
    pair_index: dict[tuple[int, int], int] = {}
    cluster_index: dict[Hashable, int] = {}
    rows: list[tuple[int, int, int]] = []  # (cluster, pair, outcome column)
    for outcome in outcomes:
        if outcome.result not in ("a", "b", "tie"):
            raise ValueError(f"result must be 'a', 'b' or 'tie', not {outcome.result!r}")
        a, b = index[outcome.generator_a], index[outcome.generator_b]
        if a == b:
            raise ValueError(f"{outcome.generator_a!r} compared with itself")
        first, second = min(a, b), max(a, b)
        winner = a if outcome.result == "a" else b
        column = 2 if outcome.result == "tie" else (0 if winner == first else 1)
        pair = pair_index.setdefault((first, second), len(pair_index))
        cluster = cluster_index.setdefault(outcome.cluster_id, len(cluster_index))
        rows.append((cluster, pair, column))
    cluster_counts = torch.zeros(len(cluster_index), len(pair_index), 3, dtype=torch.float64)
    for cluster, pair, column in rows:
        cluster_counts[cluster, pair, column] += 1
    return _PairCounts(
        generators=generators,
        pairs=torch.tensor(list(pair_index), dtype=torch.long).reshape(-1, 2),
        counts=cluster_counts.sum(0),
        cluster_counts=cluster_counts,
    )


def _design(pairs: torch.Tensor, generators: int) -> torch.Tensor:
    """(P, 3, G + 1): each outcome's linear predictor in terms of x = (theta, lambda)."""
    design = torch.zeros(len(pairs), 3, generators + 1, dtype=torch.float64)
    rows = torch.arange(len(pairs))
    design[rows, 0, pairs[:, 0]] = 1.0
    design[rows, 1, pairs[:, 1]] = 1.0
    design[rows, 2, pairs[:, 0]] = 0.5
    design[rows, 2, pairs[:, 1]] = 0.5
    design[:, 2, generators] = 1.0
    return design


def _objective(x, counts, design, prior_precision, tie_precision):
    """Negative log posterior for each of the batch's count tables. x: (B, D), counts: (B, P, 3)."""
    eta = torch.einsum("pkd,bd->bpk", design, x)
    totals = counts.sum(-1)
    log_likelihood = (counts * eta).sum((1, 2)) - (totals * torch.logsumexp(eta, -1)).sum(1)
    theta, lam = x[:, :-1], x[:, -1]
    penalty = 0.5 * prior_precision * (theta**2).sum(1) + 0.5 * tie_precision * lam**2
    return -log_likelihood + penalty + 0.5 * theta.sum(1) ** 2


def davidson_fit(
    *,
    pairs: torch.Tensor,
    counts: torch.Tensor,
    generators: int,
    prior_sd: float | None = PRIOR_SD,
    tie_prior_sd: float | None = TIE_PRIOR_SD,
) -> torch.Tensor:
    """Maximum a posteriori (theta_1..theta_G, lambda) for each table in a batch.

    pairs: (P, 2) generator indices, first < second; counts: (B, P, 3) float64 tables of
    (first wins, second wins, ties). Returns (B, G + 1); theta has mean zero. With a prior set to
    None that part is maximum likelihood, which exists only when every generator has both a win or
    tie and a loss or tie in a connected comparison graph (and, for nu, some ties and some decisive
    outcomes); ValueError when the fit does not converge.
    """
    prior_precision = 0.0 if prior_sd is None else 1.0 / prior_sd**2
    tie_precision = 0.0 if tie_prior_sd is None else 1.0 / tie_prior_sd**2
    batch, dimension = counts.shape[0], generators + 1
    design = _design(pairs, generators)
    # Outer products of the outcome rows, flattened, so the Hessian's first term is one matmul.
    outer = torch.einsum("pkd,pke->pkde", design, design).reshape(-1, dimension * dimension)
    prior_hessian = torch.diag(
        torch.tensor([prior_precision] * generators + [tie_precision], dtype=torch.float64)
    )
    prior_hessian[:generators, :generators] += 1.0  # the gauge term's Hessian, 1 1^T
    totals = counts.sum(-1)
    x = torch.zeros(batch, dimension, dtype=torch.float64)
    value = _objective(x, counts, design, prior_precision, tie_precision)
    for _ in range(NEWTON_MAX_STEPS):
        probabilities = torch.softmax(torch.einsum("pkd,bd->bpk", design, x), -1)
        expected = totals.unsqueeze(-1) * probabilities
        gradient = torch.einsum("bpk,pkd->bd", expected - counts, design)
        gradient[:, :generators] += prior_precision * x[:, :generators] + x[:, :generators].sum(
            1, keepdim=True
        )
        gradient[:, generators] += tie_precision * x[:, generators]
        mean_row = torch.einsum("bpk,pkd->bpd", probabilities, design)
        hessian = (expected.reshape(batch, -1) @ outer).reshape(batch, dimension, dimension)
        hessian -= torch.bmm((totals.unsqueeze(-1) * mean_row).transpose(1, 2), mean_row)
        hessian += prior_hessian
        step = -torch.linalg.solve(hessian, gradient)
        decrement = -(gradient * step).sum(1)  # the Newton decrement squared: >= 0
        if bool((decrement < NEWTON_TOLERANCE).all()):
            return x + step  # near the optimum a full step is exact to second order
        alpha = torch.ones(batch, dtype=torch.float64)
        for _ in range(60):  # Armijo backtracking, each table its own step length
            candidate = x + alpha.unsqueeze(1) * step
            new_value = _objective(candidate, counts, design, prior_precision, tie_precision)
            accepted = (new_value <= value - 1e-4 * alpha * decrement) | (decrement < NEWTON_TOLERANCE)
            if bool(accepted.all()):
                break
            alpha = torch.where(accepted, alpha, alpha / 2)
        x, value = candidate, new_value
    raise ValueError("the Davidson fit did not converge: the maximum-likelihood estimate may not exist")


def leaderboard_compute(
    *,
    outcomes: Sequence[Outcome],
    resamples: int = RESAMPLES,
    seed: int = 0,
    confidence: float = 0.95,
    prior_sd: float | None = PRIOR_SD,
    tie_prior_sd: float | None = TIE_PRIOR_SD,
    progress: Callable[[float], None] | None = None,
) -> Leaderboard:
    """Strengths, `confidence` bootstrap intervals from `resamples` cluster resamples, and matrices.

    Deterministic for given outcomes and seed (whatever the outcomes' order within a cluster).
    resamples=0 gives intervals equal to the point estimate. `progress`, if given, is called with
    the share of the fits done (0 to 1) after the point fit and after each chunk of resamples.
    """
    if not outcomes:
        raise ValueError("no outcomes to rank generators by")
    data = _pair_counts(outcomes)
    count = len(data.generators)
    fit = davidson_fit(
        pairs=data.pairs,
        counts=data.counts.unsqueeze(0),
        generators=count,
        prior_sd=prior_sd,
        tie_prior_sd=tie_prior_sd,
    )[0]
    if progress is not None:
        progress(1.0 / (resamples + 1))
    low, high = fit[:count].clone(), fit[:count].clone()
    if resamples > 0:
        generator = torch.Generator().manual_seed(seed)
        clusters = data.cluster_counts.shape[0]
        flat_clusters = data.cluster_counts.reshape(clusters, -1)
        fitted: list[torch.Tensor] = []
        for start in range(0, resamples, RESAMPLE_CHUNK):
            size = min(RESAMPLE_CHUNK, resamples - start)
            drawn = torch.randint(clusters, (size, clusters), generator=generator)
            multiplicity = torch.zeros(size, clusters, dtype=torch.float64)
            multiplicity.scatter_add_(1, drawn, torch.ones(size, clusters, dtype=torch.float64))
            tables = (multiplicity @ flat_clusters).reshape(size, -1, 3)
            resampled = davidson_fit(
                pairs=data.pairs,
                counts=tables,
                generators=count,
                prior_sd=prior_sd,
                tie_prior_sd=tie_prior_sd,
            )
            fitted.append(resampled[:, :count])
            if progress is not None:
                progress((start + size + 1) / (resamples + 1))
        strengths = torch.cat(fitted)
        tail = (1.0 - confidence) / 2
        low = torch.quantile(strengths, tail, dim=0)
        high = torch.quantile(strengths, 1.0 - tail, dim=0)

    wins = torch.zeros(count, count, dtype=torch.long)
    ties = torch.zeros(count, count, dtype=torch.long)
    for (first, second), (first_wins, second_wins, tied) in zip(
        data.pairs.tolist(), data.counts.long().tolist(), strict=True
    ):
        wins[first, second], wins[second, first] = first_wins, second_wins
        ties[first, second] = ties[second, first] = tied
    comparisons = wins + wins.T + ties
    win_rate: list[list[float | None]] = [
        [
            (wins[i, j].item() + ties[i, j].item() / 2) / comparisons[i, j].item()
            if comparisons[i, j] > 0
            else None
            for j in range(count)
        ]
        for i in range(count)
    ]
    standings = [
        GeneratorStanding(
            generator=name,
            strength=float(fit[i]),
            ci_low=float(low[i]),
            ci_high=float(high[i]),
            wins=int(wins[i].sum()),
            losses=int(wins[:, i].sum()),
            ties=int(ties[i].sum()),
            comparisons=int(comparisons[i].sum()),
        )
        for i, name in enumerate(data.generators)
    ]
    standings.sort(key=lambda standing: (-standing.strength, standing.generator))
    return Leaderboard(
        standings=standings,
        generators=data.generators,
        win_rate=win_rate,
        comparisons=comparisons.tolist(),
        tie_strength=math.exp(float(fit[count])),
        clusters=int(data.cluster_counts.shape[0]),
        resamples=resamples,
        confidence=confidence,
        seed=seed,
    )
