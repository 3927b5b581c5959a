"""The generator leaderboard (rewards/leaderboard.py): Davidson fit, bootstrap intervals, matrices.

The expected strengths are computed here independently of the module's Newton solver: in closed
form for two generators, and by maximising the log posterior written outcome by outcome (autograd
and L-BFGS) for a small fixture. Coverage is checked on data simulated from known strengths.
"""

from __future__ import annotations

import math
import random

import pytest
import torch

from rewards.leaderboard import PRIOR_SD, TIE_PRIOR_SD, Outcome, leaderboard_compute


def outcomes_from(rows: list[tuple[str, str, str, int]]) -> list[Outcome]:
    return [Outcome(generator_a=a, generator_b=b, result=r, cluster_id=c) for a, b, r, c in rows]  # type: ignore[arg-type]


def strengths(board) -> dict[str, float]:
    return {standing.generator: standing.strength for standing in board.standings}


def test_two_generators_match_the_closed_form_maximum_likelihood():
    # Davidson's MLE for one pair fits the three outcome frequencies exactly:
    # theta_a - theta_b = log(w / l) and nu = t / sqrt(w l).
    wins, losses, ties = 7, 3, 4
    rows = [("A", "B", "a", i) for i in range(wins)]
    rows += [("B", "A", "a", 100 + i) for i in range(losses)]  # A listed second: B beat A
    rows += [("A", "B", "tie", 200 + i) for i in range(ties)]
    board = leaderboard_compute(outcomes=outcomes_from(rows), resamples=0, prior_sd=None, tie_prior_sd=None)

    fitted = strengths(board)
    assert fitted["A"] - fitted["B"] == pytest.approx(math.log(wins / losses), abs=1e-9)
    assert fitted["A"] + fitted["B"] == pytest.approx(0.0, abs=1e-9)  # anchored at mean zero
    assert board.tie_strength == pytest.approx(ties / math.sqrt(wins * losses), rel=1e-8)
    top = board.standings[0]
    assert (top.generator, top.wins, top.losses, top.ties, top.comparisons) == ("A", 7, 3, 4, 14)


FIXTURE = [
    # (a, b, result, cluster): four generators, rankings of up to three pairs, ties, one unplayed pair.
    ("gemma", "llama", "a", 1), ("gemma", "human", "b", 1), ("llama", "human", "b", 1),
    ("gemma", "llama", "tie", 2), ("gemma", "human", "b", 2), ("llama", "human", "tie", 2),
    ("gemma", "llama", "a", 3), ("gemma", "human", "a", 3), ("llama", "human", "b", 3),
    ("gemma", "edit", "b", 4), ("llama", "edit", "b", 4),
    ("gemma", "edit", "tie", 5), ("llama", "edit", "b", 5),
    ("gemma", "llama", "b", 6), ("human", "gemma", "a", 7), ("edit", "llama", "a", 8),
]  # fmt: skip


def independent_posterior_fit(rows, prior_sd, tie_prior_sd):
    """Maximise the Davidson log posterior written outcome by outcome, by L-BFGS on autograd."""
    names = sorted({name for row in rows for name in row[:2]})
    index = {name: i for i, name in enumerate(names)}
    theta = torch.zeros(len(names), dtype=torch.float64, requires_grad=True)
    log_nu = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [theta, log_nu], lr=1, max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-15,
        line_search_fn="strong_wolfe",
    )  # fmt: skip

    def negative_log_posterior():
        optimizer.zero_grad()
        total = torch.zeros((), dtype=torch.float64)
        for a, b, result, _ in rows:
            pi_a, pi_b = torch.exp(theta[index[a]]), torch.exp(theta[index[b]])
            tie = torch.exp(log_nu) * torch.sqrt(pi_a * pi_b)
            numerator = {"a": pi_a, "b": pi_b, "tie": tie}[result]
            total = total - torch.log(numerator / (pi_a + pi_b + tie))
        total = total + (theta**2).sum() / (2 * prior_sd**2) + log_nu**2 / (2 * tie_prior_sd**2)
        total.backward()
        return total

    optimizer.step(negative_log_posterior)
    return dict(zip(names, theta.detach().tolist(), strict=True)), math.exp(log_nu.item())


def test_fixture_matches_an_independent_maximisation_of_the_posterior():
    board = leaderboard_compute(outcomes=outcomes_from(FIXTURE), resamples=0)
    expected, expected_nu = independent_posterior_fit(FIXTURE, PRIOR_SD, TIE_PRIOR_SD)

    fitted = strengths(board)
    for name, value in expected.items():
        assert fitted[name] == pytest.approx(value, abs=1e-6), name
    assert board.tie_strength == pytest.approx(expected_nu, rel=1e-6)
    # The posterior's optimum has mean zero (the prior is centred there, the likelihood shift-free).
    assert sum(fitted.values()) == pytest.approx(0.0, abs=1e-9)
    assert [s.generator for s in board.standings] == sorted(fitted, key=lambda name: -fitted[name])


def test_counts_and_win_rate_matrix():
    board = leaderboard_compute(outcomes=outcomes_from(FIXTURE), resamples=0)
    i = {name: position for position, name in enumerate(board.generators)}
    assert board.generators == ["edit", "gemma", "human", "llama"]
    # gemma vs llama: gemma won in rankings 1 and 3, tied in 2, lost in 6 -> (2 + 1/2) / 4.
    assert board.comparisons[i["gemma"]][i["llama"]] == 4
    assert board.win_rate[i["gemma"]][i["llama"]] == pytest.approx(2.5 / 4)
    assert board.win_rate[i["llama"]][i["gemma"]] == pytest.approx(1.5 / 4)
    # edit and human never met; nobody plays itself.
    assert board.comparisons[i["edit"]][i["human"]] == 0 and board.win_rate[i["edit"]][i["human"]] is None
    assert all(board.win_rate[k][k] is None for k in range(4))
    by_name = {s.generator: s for s in board.standings}
    assert (by_name["edit"].wins, by_name["edit"].losses, by_name["edit"].ties) == (4, 0, 1)
    assert (by_name["human"].wins, by_name["human"].losses, by_name["human"].ties) == (5, 1, 1)
    assert sum(s.comparisons for s in board.standings) == 2 * len(FIXTURE)
    assert board.clusters == 8


def test_a_generator_that_never_loses_stays_finite_and_first():
    board = leaderboard_compute(outcomes=outcomes_from(FIXTURE), resamples=200, seed=3)
    edit = board.standings[0]
    assert edit.generator == "edit" and edit.losses == 0
    assert all(math.isfinite(v) for v in (edit.strength, edit.ci_low, edit.ci_high))
    assert edit.ci_low <= edit.strength <= edit.ci_high


def test_bootstrap_is_seeded_and_independent_of_outcome_order():
    shuffled = list(FIXTURE)
    random.Random(5).shuffle(shuffled)
    first = leaderboard_compute(outcomes=outcomes_from(FIXTURE), resamples=300, seed=11)
    again = leaderboard_compute(outcomes=outcomes_from(FIXTURE), resamples=300, seed=11)
    other = leaderboard_compute(outcomes=outcomes_from(FIXTURE), resamples=300, seed=12)
    assert first == again
    assert first.as_dict()["standings"] != other.as_dict()["standings"]
    # Clusters are numbered in order of appearance, so shuffling changes which draw picks which
    # cluster; the point estimates must not move.
    reordered = leaderboard_compute(outcomes=outcomes_from(shuffled), resamples=0)
    assert strengths(reordered) == pytest.approx(strengths(first), abs=1e-9)


def test_bootstrap_resamples_clusters_not_pairs():
    # The same outcomes, each written twice inside its cluster (perfectly correlated pairs) or as
    # two clusters: resampling clusters must see half the information in the first case.
    base = [("x", "y", "a", i) for i in range(12)] + [("x", "y", "b", 100 + i) for i in range(8)]
    doubled_in_cluster = base + base
    doubled_as_clusters = base + [(a, b, r, c + 1000) for a, b, r, c in base]

    def width(rows):
        board = leaderboard_compute(outcomes=outcomes_from(rows), resamples=400, seed=0)
        top = board.standings[0]
        return top.ci_high - top.ci_low

    assert width(doubled_in_cluster) > 1.25 * width(doubled_as_clusters)


def simulate(rng: random.Random, truth: list[float], nu: float, clusters: int, per_cluster: int):
    rows = []
    for cluster in range(clusters):
        for _ in range(per_cluster):
            a, b = rng.sample(range(len(truth)), 2)
            pi_a, pi_b = math.exp(truth[a]), math.exp(truth[b])
            tie = nu * math.sqrt(pi_a * pi_b)
            u = rng.random() * (pi_a + pi_b + tie)
            result = "a" if u < pi_a else ("b" if u < pi_a + pi_b else "tie")
            rows.append((f"g{a}", f"g{b}", result, cluster))
    return rows


def test_bootstrap_intervals_cover_the_true_strengths_at_about_the_nominal_rate():
    truth = [-0.9, -0.2, 0.3, 0.8]  # mean zero, like the fitted strengths
    rng = random.Random(2024)
    covered = checked = 0
    for simulation in range(100):
        rows = simulate(rng, truth, nu=0.6, clusters=40, per_cluster=3)
        board = leaderboard_compute(outcomes=outcomes_from(rows), resamples=200, seed=simulation)
        for standing in board.standings:
            true_strength = truth[int(standing.generator[1:])]
            covered += standing.ci_low <= true_strength <= standing.ci_high
            checked += 1
    coverage = covered / checked
    assert 0.85 <= coverage <= 0.99, coverage


def test_rejects_bad_input():
    with pytest.raises(ValueError):
        leaderboard_compute(outcomes=[])
    with pytest.raises(ValueError):
        leaderboard_compute(outcomes=outcomes_from([("a", "a", "a", 1)]))
    with pytest.raises(ValueError):
        leaderboard_compute(outcomes=outcomes_from([("a", "b", "win", 1)]))
