"""Ranking math, pure: order validation, comparisons (checked against the reward model's own pair
expansion), agreement on a hand-checked case, and consensus with cycles."""

from __future__ import annotations

import math
import random

import pytest

from annotation.ranking_math import (
    comparisons_from_order,
    consensus_from_orders,
    consensus_ranked_pairs,
    kendall_tau_b,
    order_validate,
    orders_agreement,
    rank_map,
)
from config.errors import ValidationFailed
from rewards.ml.data import order_pairs

ALICE = [[0], [1], [2], [3]]
BOB = [[1], [0], [2], [3]]  # swaps the top two
CAROL = [[0, 1], [2], [3]]  # ties the top two

# By hand, over candidates 0-3 (6 pairs):
# alice-bob: both order all 6, agree on 5 -> 5/6; tau = (5 - 1) / 6 = 2/3
# alice-carol: carol orders 5 (not 0-1), all agree -> 5/5; tau-b = 5 / sqrt(6 * 5)
# bob-carol: likewise 5/5 and 5 / sqrt(30)
TAU_TIE = 5 / math.sqrt(30)


def test_pure_agreement_hand_checked():
    tally = orders_agreement([ALICE, BOB, CAROL])
    assert (tally.agreed, tally.compared) == (15, 16)
    assert tally.agreement == pytest.approx(15 / 16)
    assert tally.tau == pytest.approx((2 / 3 + 2 * TAU_TIE) / 3)
    assert kendall_tau_b(rank_map(ALICE), rank_map(BOB)) == pytest.approx(2 / 3)
    assert kendall_tau_b(rank_map(ALICE), rank_map(list(reversed(ALICE)))) == pytest.approx(-1.0)
    assert kendall_tau_b(rank_map([[0, 1, 2, 3]]), rank_map(ALICE)) is None
    assert orders_agreement([ALICE]).agreement is None


def test_consensus_breaks_a_cycle_at_its_weakest_majority():
    a, b, c = 1, 2, 3
    orders = [[[a], [b], [c]]] * 4 + [[[b], [c], [a]]] * 3 + [[[c], [a], [b]]] * 2
    # Margins: a>b by 3, b>c by 5, c>a by 1: a cycle. Lock b>c, then a>b; c>a would close the cycle.
    consensus = consensus_from_orders(orders=orders)
    assert consensus.order == [[a], [b], [c]]
    assert consensus.dropped == [(c, a)]
    assert sorted(consensus.pairs) == [(a, b), (a, c), (b, c)]


def test_consensus_of_an_even_cycle_is_deterministic_and_ties_nothing_unsupported():
    a, b, c = 1, 2, 3
    orders = [[[a], [b], [c]], [[b], [c], [a]], [[c], [a], [b]]]
    first = consensus_from_orders(orders=orders)
    assert first == consensus_from_orders(orders=list(reversed(orders)))
    assert len(first.dropped) == 1 and len(first.pairs) == 3
    assert consensus_ranked_pairs(candidate_ids=[a, b, c], pairs=[]).order == [[a, b, c]]


def _random_order(rng: random.Random, k: int) -> list[list[int]]:
    ids = rng.sample(range(100, 200), k)
    order: list[list[int]] = []
    for candidate in ids:
        if order and rng.random() < 0.3:
            order[-1].append(candidate)  # tied with the one before
        else:
            order.append([candidate])
    return order


def test_comparisons_match_the_reward_models_pair_expansion():
    """What annotation stores as comparisons is what rewards.ml trains on, pair for pair, in order."""
    rng = random.Random(5)
    for _ in range(300):
        order = _random_order(rng, rng.randint(2, 9))
        pairs = comparisons_from_order(order=order)
        assert pairs == order_pairs(order)
        ties = sum(len(group) * (len(group) - 1) // 2 for group in order)
        k = sum(len(group) for group in order)
        assert len(pairs) == k * (k - 1) // 2 - ties
    assert comparisons_from_order(order=[[3], [1, 4], [2]]) == [(3, 1), (3, 4), (3, 2), (1, 2), (4, 2)]


@pytest.mark.parametrize(
    ("order", "code"),
    [
        ([], "invalid_order"),
        ("1,2,3", "invalid_order"),
        ([[1, 2], []], "invalid_order"),
        ([[1], 2, [3]], "invalid_order"),
        ([[1], [2], [9]], "unknown_candidate"),
        ([[1], [True], [2, 3]], "unknown_candidate"),
        ([[1], [2], [2, 3]], "repeated_candidate"),
        ([[1], [2]], "missing_candidate"),
    ],
)
def test_order_validation_names_what_is_wrong(order, code):
    with pytest.raises(ValidationFailed) as raised:
        order_validate(order=order, candidate_ids=[1, 2, 3])
    assert raised.value.code == code


def test_a_valid_order_comes_back_as_tie_groups_of_ints():
    assert order_validate(order=[[2, 1], [3]], candidate_ids=[1, 2, 3]) == [[2, 1], [3]]
