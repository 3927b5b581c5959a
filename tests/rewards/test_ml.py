"""rewards/ml without Django: the loss against the paper, pairs from ties, sequences, batching."""

from __future__ import annotations

import math
import random

import pytest
import torch

from rewards.ml.config import TrainConfig
from rewards.ml.data import (
    RankingExample,
    SequenceBuilder,
    TokenizedRanking,
    batch_collate,
    batches_plan,
    order_pairs,
    rankings_tokenize,
    split_by_prompt,
)
from rewards.ml.loss import ranking_loss


def test_k4_ranking_with_a_tie_yields_exactly_the_expected_pairs():
    # Answers 0..3; 1 and 2 tied in the middle: C(4,2) = 6 pairs minus the tie.
    assert order_pairs([[3], [1, 2], [0]]) == [(3, 1), (3, 2), (3, 0), (1, 0), (2, 0)]
    assert order_pairs([[0], [1], [2], [3]]) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert order_pairs([[0, 1, 2, 3]]) == []


def test_loss_equals_the_paper_formula_on_a_hand_checked_case():
    # Two rankings in one batch. Ranking A: K=3 with scores a0=2, a1=0.5, a2=-1, order [[0],[1],[2]].
    # Ranking B: K=2, scores b0=0, b1=1, order [[0],[1]] (the model gets it wrong).
    scores = torch.tensor([2.0, 0.5, -1.0, 0.0, 1.0])
    batch = batch_collate(
        [
            TokenizedRanking(prompt_key="a", sequences=[(1,), (2,), (3,)], pairs=[(0, 1), (0, 2), (1, 2)]),
            TokenizedRanking(prompt_key="b", sequences=[(4,), (5,)], pairs=[(0, 1)]),
        ]
    )

    def neg_log_sigmoid(x: float) -> float:
        return -math.log(1.0 / (1.0 + math.exp(-x)))

    # InstructGPT eq. 1: -1/C(K,2) * sum log sigmoid(r_w - r_l), per ranking, then averaged.
    ranking_a = (neg_log_sigmoid(1.5) + neg_log_sigmoid(3.0) + neg_log_sigmoid(1.5)) / 3
    ranking_b = neg_log_sigmoid(-1.0)
    expected = (ranking_a + ranking_b) / 2
    parts = ranking_loss(
        scores,
        better=batch.better,
        worse=batch.worse,
        pair_ranking=batch.pair_ranking,
        pairs_per_ranking=batch.pairs_per_ranking,
    )
    assert parts.loss.item() == pytest.approx(expected, rel=1e-6)
    assert round(expected, 4) == 0.7319  # by hand: A (0.2014+0.0486+0.2014)/3 = 0.1505, B 1.3133
    assert parts.pairs == 4 and parts.correct == 3

    # The centering term adds coefficient * (r_better + r_worse)^2 with the same averaging.
    with_center = ranking_loss(
        scores,
        better=batch.better,
        worse=batch.worse,
        pair_ranking=batch.pair_ranking,
        pairs_per_ranking=batch.pairs_per_ranking,
        center_coefficient=0.01,
    )
    center = ((2.5**2 + 1.0**2 + (-0.5) ** 2) / 3 + 1.0**2) / 2 * 0.01
    assert with_center.loss.item() == pytest.approx(expected + center, rel=1e-6)


def test_a_shared_answer_goes_through_the_model_once():
    shared = (7, 8, 9)
    batch = batch_collate(
        [
            TokenizedRanking(prompt_key="p", sequences=[shared, (1,)], pairs=[(0, 1)]),
            TokenizedRanking(prompt_key="p", sequences=[(1,), shared], pairs=[(1, 0)]),
        ]
    )
    assert batch.sequences == [shared, (1,)]
    assert batch.better.tolist() == [0, 0] and batch.worse.tolist() == [1, 1]


def test_long_inputs_keep_the_end_of_the_conversation_and_the_whole_answer(tiny_backbone):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_backbone)
    builder = SequenceBuilder(tokenizer, max_length=32, min_prompt_tokens=4)
    turns = [
        {"role": "user", "content": "apple " * 50 + "the final question"},
    ]
    [sequence] = builder.build_many([(turns, "a short answer")])
    assert len(sequence) == 32
    text = tokenizer.decode(sequence)
    assert text.startswith("[CLS]") and text.endswith("[SEP] a short answer [SEP]")
    assert "the final question" in text and text.count("apple") < 50
    # An answer longer than everything keeps its beginning and a little of the conversation.
    [long_answer] = builder.build_many([(turns, "word " * 100)])
    assert len(long_answer) == 32 and "question" in tokenizer.decode(long_answer)


def test_validation_holds_out_whole_prompts_and_batches_respect_the_token_budget(tiny_backbone):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_backbone)
    builder = SequenceBuilder(tokenizer, max_length=64, min_prompt_tokens=8)
    examples = [
        RankingExample(
            prompt_key=str(index % 10),
            turns=[{"role": "user", "content": f"question {index} " + "x " * (index % 7)}],
            answers=["yes " * (index % 5 + 1), "no", "maybe " * (index % 3 + 1)],
            order=[[0], [1, 2]],
        )
        for index in range(40)
    ]
    tokenized = rankings_tokenize(examples, builder)
    train, validation = split_by_prompt(tokenized, validation_fraction=0.2, seed=1)
    assert {e.prompt_key for e in train}.isdisjoint({e.prompt_key for e in validation})
    assert len({e.prompt_key for e in validation}) == 2
    plan = batches_plan(train, step_tokens=300, rng=random.Random(0))
    assert sorted(index for step in plan for index in step) == list(range(len(train)))
    for step in plan:
        members = [train[index] for index in step]
        padded = sum(len(m.sequences) for m in members) * max(m.padded_length for m in members)
        assert padded <= 300 or len(step) == 1
    # Same seed, same plan: training is deterministic.
    assert plan == batches_plan(train, step_tokens=300, rng=random.Random(0))


def test_config_overrides_are_checked():
    assert TrainConfig.from_overrides({"epochs": 2, "max_grad_norm": 2}).max_grad_norm == 2.0
    with pytest.raises(ValueError, match="unknown reward-model setting"):
        TrainConfig.from_overrides({"epochz": 2})
    with pytest.raises(ValueError, match="epochs must be int"):
        TrainConfig.from_overrides({"epochs": "two"})
    with pytest.raises(ValueError, match="pooling"):
        TrainConfig.from_overrides({"pooling": "max"})
    for name in ("num_threads", "seed", "min_prompt_tokens"):
        with pytest.raises(ValueError, match=f"{name} must be a non-negative integer"):
            TrainConfig.from_overrides({name: -1})
    with pytest.raises(ValueError, match="min_prompt_tokens must be smaller"):
        TrainConfig.from_overrides({"max_length": 64, "min_prompt_tokens": 64})


def test_rankings_of_one_prompt_share_a_step_so_shared_answers_run_once():
    examples = []
    for prompt in range(30):
        answers = [(prompt, 1, 2, 3), (prompt, 4, 5), (prompt, 6)]
        # Two labelers ranked the same three answers of every prompt.
        examples += [
            TokenizedRanking(prompt_key=str(prompt), sequences=answers, pairs=[(0, 1), (0, 2)]),
            TokenizedRanking(prompt_key=str(prompt), sequences=answers, pairs=[(1, 0), (1, 2)]),
        ]
    plan = batches_plan(examples, step_tokens=48, rng=random.Random(3))
    for step in plan:
        assert len({examples[index].prompt_key for index in step}) * 2 == len(step)
        assert len(batch_collate([examples[index] for index in step]).sequences) == 3 * len(step) // 2
