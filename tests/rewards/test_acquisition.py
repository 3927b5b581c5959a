"""Acquisition scores and queue orders (rewards/acquisition.py), as their docstrings promise."""

from __future__ import annotations

import math

import pytest

from rewards.acquisition import (
    acquisition_closeness,
    acquisition_disagreement,
    acquisition_information,
    acquisition_mix,
    acquisition_order,
    acquisition_uncertainty,
)


def test_closeness_is_one_for_coin_flips_and_falls_as_the_order_gets_clear():
    assert acquisition_closeness(scores=[0.3, 0.3, 0.3]) == pytest.approx(1.0)
    assert acquisition_closeness(scores=[8.0, 0.0, -8.0]) < 0.01
    # Mean of 4 p (1 - p) over the three pairs, by hand.
    p = [1 / (1 + math.exp(-d)) for d in (1.0, 3.0, 2.0)]  # pairs (0,1), (0,2), (1,2)
    expected = sum(4 * q * (1 - q) for q in p) / 3
    assert acquisition_closeness(scores=[2.0, 1.0, -1.0]) == pytest.approx(expected)
    # Fewer than two candidates: nothing to order.
    assert acquisition_closeness(scores=[1.0]) == 0.0 and acquisition_closeness(scores=[]) == 0.0


def test_uncertainty_is_the_members_spread_of_each_pair_difference():
    # One pair, differences 1, 3, 2 across three members: sample standard deviation 1.
    assert acquisition_uncertainty(member_scores=[[1.0, 0.0], [3.0, 0.0], [2.0, 0.0]]) == pytest.approx(1.0)
    # Members that shift every candidate by the same amount agree on every order.
    assert acquisition_uncertainty(member_scores=[[1.0, 0.0, -2.0], [5.0, 4.0, 2.0]]) == pytest.approx(0.0)
    # Three candidates: pair differences (a-b, a-c, b-c) are (0, 2, 2) and (2, 2, 0) -> spreads
    # sqrt(2), 0, sqrt(2), mean 2 sqrt(2) / 3.
    assert acquisition_uncertainty(member_scores=[[2.0, 2.0, 0.0], [2.0, 0.0, 0.0]]) == pytest.approx(
        2 * math.sqrt(2) / 3
    )
    assert acquisition_uncertainty(member_scores=[[1.0], [2.0]]) == 0.0
    with pytest.raises(ValueError):
        acquisition_uncertainty(member_scores=[[1.0, 2.0]])  # one model: pass scores
    with pytest.raises(ValueError):
        acquisition_uncertainty(member_scores=[[1.0, 2.0], [1.0]])


def test_uncertainty_of_one_model_is_its_closeness():
    assert acquisition_uncertainty(scores=[2.0, 1.0, -1.0]) == acquisition_closeness(scores=[2.0, 1.0, -1.0])
    with pytest.raises(ValueError):
        acquisition_uncertainty(scores=[1.0, 2.0], member_scores=[[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError):
        acquisition_uncertainty()


def test_information_ignores_agreed_coin_flips_where_closeness_does_not():
    agreed_coin_flip = [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]
    assert acquisition_information(member_scores=agreed_coin_flip) == pytest.approx(0.0)
    assert acquisition_closeness(scores=[0.0, 0.0]) == 1.0
    # Members sure of opposite orders: the mean is a coin flip, each member is certain -> ln 2.
    assert acquisition_information(member_scores=[[30.0, 0.0], [0.0, 30.0]]) == pytest.approx(math.log(2))
    # By hand for differences 1 and -2.
    p = [1 / (1 + math.exp(-1.0)), 1 / (1 + math.exp(2.0))]

    def entropy(q: float) -> float:
        return -q * math.log(q) - (1 - q) * math.log(1 - q)

    expected = entropy(sum(p) / 2) - (entropy(p[0]) + entropy(p[1])) / 2
    assert acquisition_information(member_scores=[[1.0, 0.0], [0.0, 2.0]]) == pytest.approx(expected)


def test_uncertainty_orders_prompts_most_disputed_first():
    members = {
        "agreed": [[2.0, 0.0], [2.1, 0.0], [1.9, 0.0]],
        "disputed": [[2.0, 0.0], [-2.0, 0.0], [0.5, 0.0]],
        "agreed_coin_flip": [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]],
        "unscored": None,
    }
    scores = {
        name: None if value is None else acquisition_uncertainty(member_scores=value)
        for name, value in members.items()
    }
    assert acquisition_order(scores=scores) == ["disputed", "agreed", "agreed_coin_flip", "unscored"]


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
