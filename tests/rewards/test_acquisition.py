"""Acquisition scores and queue orders (rewards/acquisition.py), as their docstrings promise."""

from __future__ import annotations

import math
import random

import pytest

from rewards.acquisition import (
    acquisition_disagreement,
    acquisition_mix,
    acquisition_order,
    acquisition_uncertainty,
    pair_probability,
)


def test_uncertainty_is_one_for_coin_flips_and_falls_as_the_order_gets_clear():
    assert acquisition_uncertainty(scores=[0.3, 0.3, 0.3]) == pytest.approx(1.0)
    assert acquisition_uncertainty(scores=[8.0, 0.0, -8.0]) < 0.01
    # Mean of 4 p (1 - p) over the three pairs, by hand.
    p = [1 / (1 + math.exp(-d)) for d in (1.0, 3.0, 2.0)]  # pairs (0,1), (0,2), (1,2)
    expected = sum(4 * q * (1 - q) for q in p) / 3
    assert acquisition_uncertainty(scores=[2.0, 1.0, -1.0]) == pytest.approx(expected)
    # Fewer than two candidates: nothing to order.
    assert acquisition_uncertainty(scores=[1.0]) == 0.0 and acquisition_uncertainty(scores=[]) == 0.0


def test_uncertainty_orders_prompts_from_closest_to_clearest():
    prompts = {"clear": [4.0, -4.0], "close": [0.1, 0.0], "middle": [1.0, -0.5], "unscored": None}
    scores = {
        name: None if values is None else acquisition_uncertainty(scores=values)
        for name, values in prompts.items()
    }
    assert acquisition_order(scores=scores) == ["close", "middle", "clear", "unscored"]


def test_ensemble_spread_raises_uncertainty():
    agreed = acquisition_uncertainty(scores=[2.0, -2.0], spreads=[0.0, 0.0])
    assert agreed == pytest.approx(acquisition_uncertainty(scores=[2.0, -2.0]))
    spread = acquisition_uncertainty(scores=[2.0, -2.0], spreads=[3.0, 3.0])
    assert agreed < spread < 1.0
    with pytest.raises(ValueError):
        acquisition_uncertainty(scores=[1.0, 2.0], spreads=[0.1])


@pytest.mark.parametrize(("difference", "variance"), [(0.0, 4.0), (1.5, 1.0), (-2.0, 9.0), (3.0, 0.25)])
def test_pair_probability_is_the_expected_sigmoid(difference, variance):
    rng = random.Random(0)
    samples = [rng.gauss(difference, math.sqrt(variance)) for _ in range(40000)]
    monte_carlo = sum(1 / (1 + math.exp(-d)) for d in samples) / len(samples)
    # MacKay's approximation is within about 0.02 of the expectation.
    assert pair_probability(difference=difference, variance=variance) == pytest.approx(monte_carlo, abs=0.02)


def test_disagreement_counts_differing_pair_outcomes_across_rankings():
    assert acquisition_disagreement(rankings=[]) == 0.0
    assert acquisition_disagreement(rankings=[[["a"], ["b"], ["c"]]]) == 0.0
    same = [[["a"], ["b", "c"]], [["a"], ["b", "c"]]]
    assert acquisition_disagreement(rankings=same) == 0.0
    # Two rankings of a, b, c: (a,b) agree, (a,c) agree, (b,c) b>c against a tie -> 1 of 3.
    assert acquisition_disagreement(rankings=[[["a"], ["b"], ["c"]], [["a"], ["b", "c"]]]) == pytest.approx(
        1 / 3
    )
    # Three rankings; the third reverses all: ranking pairs (1,2) 1/3, (1,3) 3/3, (2,3) 3/3 -> 7/9.
    three = [[["a"], ["b"], ["c"]], [["a"], ["b", "c"]], [["c"], ["b"], ["a"]]]
    assert acquisition_disagreement(rankings=three) == pytest.approx(7 / 9)
    # Only candidates both rankings hold are compared.
    assert acquisition_disagreement(rankings=[[["a"], ["b"]], [["b"], ["z"]]]) == 0.0


def test_disagreement_orders_prompts_most_disputed_first():
    rankings = {
        "settled": [[["a"], ["b"]], [["a"], ["b"]], [["a"], ["b"]]],
        "split": [[["a"], ["b"]], [["b"], ["a"]]],
        "one": [[["a"], ["b"]]],
        "tie": [[["a"], ["b"]], [["a", "b"]], [["a"], ["b"]]],
    }
    scores = {name: acquisition_disagreement(rankings=value) for name, value in rankings.items()}
    assert acquisition_order(scores=scores) == ["split", "tie", "settled", "one"]  # ties keep input order


def test_order_keeps_input_order_for_equal_scores():
    assert acquisition_order(scores={"p1": 0.5, "p2": 0.9, "p3": 0.5, "p4": None, "p5": 0.9}) == [
        "p2",
        "p5",
        "p1",
        "p3",
        "p4",
    ]


def explored(order: list[int], mixed: list[int]) -> list[bool]:
    """For each position of `mixed`, whether it did not take the strategy's next unplaced prompt."""
    placed: set[int] = set()
    pointer, flags = 0, []
    for key in mixed:
        while order[pointer] in placed:
            pointer += 1
        flags.append(key != order[pointer])
        placed.add(key)
    return flags


@pytest.mark.parametrize("share", [0.1, 0.25, 0.5])
def test_mix_holds_the_exploration_share_in_every_prefix(share):
    order = list(range(2000))
    mixed = acquisition_mix(order=order, exploration_share=share, seed=7)
    assert sorted(mixed) == order  # a permutation: every prompt once
    flags = explored(order, mixed)
    # An exploration draw can land on the strategy's own next prompt (1 in the number left), so the
    # observed share may fall a little short; every prefix must hold share * n give or take a few.
    for n in (20, 100, 500, 2000):
        assert abs(sum(flags[:n]) - share * n) <= 2 + 0.02 * n, (n, sum(flags[:n]))


def test_mix_extremes_and_seeding():
    order = [f"p{i}" for i in range(300)]
    assert acquisition_mix(order=order, exploration_share=0.0, seed=1) == order
    shuffled = acquisition_mix(order=order, exploration_share=1.0, seed=1)
    assert sorted(shuffled) == sorted(order) and shuffled != order
    first = acquisition_mix(order=order, exploration_share=0.2, seed=3)
    assert first == acquisition_mix(order=order, exploration_share=0.2, seed=3)
    assert first != acquisition_mix(order=order, exploration_share=0.2, seed=4)
    # Exploration reaches the bottom of the strategy's order: the top 60 places hold later prompts.
    assert max(order.index(key) for key in first[:60]) > 100
    with pytest.raises(ValueError):
        acquisition_mix(order=order, exploration_share=1.5, seed=0)
    with pytest.raises(ValueError):
        acquisition_mix(order=["a", "a"], exploration_share=0.5, seed=0)
