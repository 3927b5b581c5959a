"""Reliability EM, reliability-weighted consensus and Krippendorff's alpha, pure (no database).

Simulated labelers with a known truth: careful ones right on about 90 % of pairs, random ones, and
adversarial ones who reverse what they believe. Alpha is checked against the worked example of
Krippendorff (2011), "Computing Krippendorff's alpha-reliability".
"""

from __future__ import annotations

import random

import pytest

from annotation.ranking_math import consensus_from_orders, consensus_ranked_pairs, consensus_weighted_pairs
from annotation.reliability import (
    PRIOR_RELIABILITY,
    judgments_from_rankings,
    krippendorff_alpha,
    midranks,
    rankings_krippendorff_alpha,
    reliability_estimate,
)

K = 4


def noisy_order(truth: list[int], rng: random.Random, noise: float) -> list[list[int]]:
    # noise 0.7 orders about 90 % of a K=4 ranking's pairs right.
    scores = {cid: (len(truth) - rank) + rng.gauss(0, noise) for rank, cid in enumerate(truth)}
    return [[cid] for cid in sorted(truth, key=lambda cid: -scores[cid])]


def simulate(kinds: dict[str, str], prompts: int, per_prompt: int, seed: int = 7):
    """(truths, rankings as (prompt, labeler, order)); each prompt ranked by `per_prompt` labelers."""
    rng = random.Random(seed)
    truths, rankings = {}, []
    names = sorted(kinds)
    for prompt in range(prompts):
        truth = list(range(prompt * K, prompt * K + K))
        rng.shuffle(truth)
        truths[prompt] = truth
        for labeler in rng.sample(names, per_prompt):
            kind = kinds[labeler]
            if kind == "random":
                order = [[cid] for cid in rng.sample(truth, K)]
            elif kind == "adversarial":
                order = noisy_order(truth, rng, 0.7)[::-1]
            else:
                order = noisy_order(truth, rng, 0.7 if kind == "careful" else 1.5)
            rankings.append((prompt, labeler, order))
    return truths, rankings


def accuracy(truths: dict[int, list[int]], orders: dict) -> float:
    right = total = 0
    for prompt, truth in truths.items():
        rank = {cid: index for index, group in enumerate(orders[prompt]) for cid in group}
        for i, better in enumerate(truth):
            for worse in truth[i + 1 :]:
                total += 1
                right += rank[better] < rank[worse]
    return right / total


def test_em_recovers_the_truth_and_ranks_labelers_by_quality():
    kinds = {f"careful{i}": "careful" for i in range(6)}
    kinds |= {f"sloppy{i}": "sloppy" for i in range(3)}
    kinds |= {f"random{i}": "random" for i in range(3)}
    kinds |= {f"adversarial{i}": "adversarial" for i in range(3)}
    truths, rankings = simulate(kinds, prompts=300, per_prompt=5)

    result = reliability_estimate(judgments=judgments_from_rankings(rankings=rankings))

    assert result.converged
    reliability = {name: result.labelers[name].reliability for name in kinds}
    by_kind = {
        kind: [reliability[name] for name in kinds if kinds[name] == kind]
        for kind in ("careful", "sloppy", "random", "adversarial")
    }
    assert all(0.83 < r < 0.97 for r in by_kind["careful"]), by_kind
    assert min(by_kind["careful"]) > max(by_kind["sloppy"]) > max(by_kind["random"])
    assert all(0.4 < r < 0.6 for r in by_kind["random"])
    assert max(by_kind["adversarial"]) < 0.2
    # Adversarial: below 0.5, flagged, and their votes weigh negatively (flipped); random is not.
    assert all(result.labelers[n].adversarial and result.labelers[n].weight < 0 for n in kinds if "adv" in n)
    assert not any(result.labelers[n].adversarial for n in kinds if "adv" not in n)

    unweighted = {
        p: consensus_from_orders(orders=[o for q, _, o in rankings if q == p]).order for p in truths
    }
    assert accuracy(truths, result.consensus) > 0.95
    assert accuracy(truths, result.consensus) > accuracy(truths, unweighted) + 0.1


def test_flipped_votes_win_a_prompt_where_adversarial_labelers_are_the_majority():
    """Careful labelers are known from the other prompts; on prompt 0 two adversarial labelers outvote
    one careful one. Their votes, flipped, agree with the careful one."""
    kinds = {"a": "careful", "b": "careful", "c": "careful", "x": "adversarial", "y": "adversarial"}
    truths, rankings = simulate(kinds, prompts=120, per_prompt=5, seed=3)
    truths[999] = [9990, 9991, 9992, 9993]
    reversed_truth = [[cid] for cid in truths[999][::-1]]
    rankings += [
        (999, "a", [[cid] for cid in truths[999]]),
        (999, "x", reversed_truth),
        (999, "y", reversed_truth),
    ]

    result = reliability_estimate(judgments=judgments_from_rankings(rankings=rankings))

    assert consensus_from_orders(orders=[o for p, _, o in rankings if p == 999]).order == reversed_truth
    assert result.consensus[999] == [[cid] for cid in truths[999]]


def test_gold_pairs_identify_labelers_even_when_adversarial_labelers_are_everywhere_the_majority():
    # Without an anchor the flipped world (x, y, z careful; a, b adversarial) explains the votes as well.
    kinds = {"a": "careful", "b": "careful", "x": "adversarial", "y": "adversarial", "z": "adversarial"}
    truths, rankings = simulate(kinds, prompts=60, per_prompt=5, seed=5)
    judgments = judgments_from_rankings(rankings=rankings)
    gold = [(p, truths[p][i], truths[p][j]) for p in range(10) for i in range(K) for j in range(i + 1, K)]

    unanchored = reliability_estimate(judgments=judgments)
    anchored = reliability_estimate(judgments=judgments, gold=gold)

    assert unanchored.labelers["a"].reliability < 0.5 < unanchored.labelers["x"].reliability
    assert anchored.labelers["a"].reliability > 0.8 and anchored.labelers["x"].reliability < 0.2
    assert accuracy(truths, anchored.consensus) > 0.95


def test_few_judgments_are_shrunk_towards_the_prior_and_the_result_ignores_input_order():
    kinds = {f"careful{i}": "careful" for i in range(5)}
    truths, rankings = simulate(kinds, prompts=80, per_prompt=4)
    # A newcomer with a single pair, against everyone: one pair is not evidence enough to call them adversarial.
    prompt = 0
    worst, best = truths[prompt][-1], truths[prompt][0]
    judgments = judgments_from_rankings(rankings=rankings) + [(prompt, "newcomer", worst, best)]

    result = reliability_estimate(judgments=judgments)
    shuffled = list(judgments)
    random.Random(1).shuffle(shuffled)
    again = reliability_estimate(judgments=shuffled)

    newcomer = result.labelers["newcomer"]
    assert (
        newcomer.judgments == 1
        and 0.6 < newcomer.reliability < PRIOR_RELIABILITY
        and not newcomer.adversarial
    )
    assert again.labelers == result.labelers and again.consensus == result.consensus


def test_ties_give_no_judgments_and_uncompared_candidates_stay_in_the_consensus():
    rankings = [(1, "a", [[10, 11], [12]]), (1, "b", [[10], [11, 12]])]
    judgments = judgments_from_rankings(rankings=rankings)
    assert sorted(judgments) == sorted(
        [(1, "a", 10, 12), (1, "a", 11, 12), (1, "b", 10, 11), (1, "b", 10, 12)]
    )

    result = reliability_estimate(judgments=judgments, candidates={1: [10, 11, 12, 13], 2: [20, 21]})

    assert result.consensus[1] == [[10, 13], [11], [12]]  # 13 was never compared: no majority places it
    assert result.consensus[2] == [[20, 21]]
    assert reliability_estimate(judgments=[]).consensus == {}


def test_weighted_ranked_pairs_with_unit_weights_is_ranked_pairs():
    rng = random.Random(11)
    for _ in range(50):
        pairs = [tuple(rng.sample(range(5), 2)) for _ in range(rng.randrange(1, 15))]
        counts: dict[tuple[int, int], float] = {}
        for pair in pairs:
            counts[pair] = counts.get(pair, 0) + 1.0
        assert consensus_weighted_pairs(candidate_ids=range(5), weights=counts) == consensus_ranked_pairs(
            candidate_ids=range(5), pairs=pairs
        )


# Krippendorff (2011), section C: four observers, twelve units, values 1-5, some missing.
OBSERVERS = {
    "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
}


@pytest.mark.parametrize(
    ("metric", "expected"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)]
)
def test_alpha_matches_krippendorffs_worked_example(metric, expected):
    units = [{coder: values[u] for coder, values in OBSERVERS.items()} for u in range(12)]
    assert krippendorff_alpha(units=units, metric=metric) == pytest.approx(expected, abs=5e-4)


def test_alpha_of_rankings_uses_midranks_for_ties_and_skips_missing_labelers():
    assert midranks([[3], [1, 4], [2]]) == {3: 1.0, 1: 2.5, 4: 2.5, 2: 4.0}
    same = [
        (1, "a", [[1], [2], [3]]),
        (1, "b", [[1], [2], [3]]),
        (2, "a", [[5], [6, 7]]),
        (2, "c", [[5], [6, 7]]),
    ]
    assert rankings_krippendorff_alpha(rankings=same) == pytest.approx(1.0)

    opposed = [(1, "a", [[1], [2], [3]]), (1, "b", [[3], [2], [1]])]
    assert rankings_krippendorff_alpha(rankings=opposed) < 0

    # A tie halfway between two strict orders agrees better with both than they agree with each other.
    split = [(1, "a", [[1], [2], [3]]), (1, "b", [[2], [1], [3]])]
    with_tie = [*split, (1, "c", [[1, 2], [3]])]
    assert rankings_krippendorff_alpha(rankings=with_tie) > rankings_krippendorff_alpha(rankings=split)

    # One ranking per prompt: nothing pairable. Every value equal: alpha is undefined.
    assert rankings_krippendorff_alpha(rankings=[(1, "a", [[1], [2]])]) is None
    assert krippendorff_alpha(units=[{"a": 1, "b": 1}, {"a": 1, "b": 1}]) is None
    with pytest.raises(ValueError):
        krippendorff_alpha(units=[{"a": 1, "b": 2}], metric="cosine")
