"""From rankings to token sequences to batches.

A ranking of K answers to one conversation is one training element: its K sequences go through
the model once each and every (better, worse) pair its tie groups imply enters the loss.
Batches are filled up to a token budget (padding counted) from rankings of similar length, so
little compute goes to padding; inside a step, sequences are sorted by length into chunks.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from rewards.ml.examples import RankingExample


@dataclass
class TokenizedRanking:
    prompt_key: str
    sequences: list[tuple[int, ...]]  # one per answer
    pairs: list[tuple[int, int]]  # (better, worse) indices into `sequences`

    @property
    def padded_length(self) -> int:
        return max(len(sequence) for sequence in self.sequences)


@dataclass
class Batch:
    """Unique sequences of a group of rankings, and the pairs between them."""

    sequences: list[tuple[int, ...]]
    better: torch.Tensor  # index into sequences, one per pair
    worse: torch.Tensor
    pair_ranking: torch.Tensor  # which ranking (0..rankings-1) each pair belongs to
    rankings: int
    pairs_per_ranking: torch.Tensor = field(default_factory=lambda: torch.zeros(0))


def order_pairs(order: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    """Every (better, worse) pair implied by tie groups, best first; tied items form no pair.

    [[0], [1, 2], [3]] -> (0,1) (0,2) (0,3) (1,3) (2,3): C(4,2) = 6 pairs minus the one tie.
    """
    pairs: list[tuple[int, int]] = []
    for group_index, group in enumerate(order):
        for better in group:
            for later_group in order[group_index + 1 :]:
                pairs.extend((better, worse) for worse in later_group)
    return pairs


def conversation_text(turns: Sequence[dict[str, str]]) -> str:
    """The conversation as plain text with role labels, one turn per line."""
    return "\n".join(f"{turn['role']}: {turn['content']}" for turn in turns)


class SequenceBuilder:
    """Turns (conversation, answer) into token ids that fit max_length.

    Long inputs keep the end of the conversation (the turns the answer replies to) and the whole
    answer; an answer too long even for that keeps its beginning and `min_prompt_tokens` of context.
    Each distinct text is tokenized once.
    """

    def __init__(self, tokenizer, *, max_length: int, min_prompt_tokens: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.min_prompt_tokens = min_prompt_tokens
        self.prefix, self.middle, self.suffix = special_tokens_template(tokenizer)
        self.special = len(self.prefix) + len(self.middle) + len(self.suffix)
        self._cache: dict[str, list[int]] = {}

    def _encode_many(self, texts: Sequence[str]) -> None:
        missing = list(dict.fromkeys(text for text in texts if text not in self._cache))
        if missing:
            encoded = self.tokenizer(missing, add_special_tokens=False, truncation=False)["input_ids"]
            self._cache.update(zip(missing, encoded, strict=True))

    def build_many(self, items: Sequence[tuple[Sequence[dict[str, str]], str]]) -> list[tuple[int, ...]]:
        prompts = [conversation_text(turns) for turns, _ in items]
        self._encode_many(prompts + [answer for _, answer in items])
        return [
            self._join(self._cache[prompt], self._cache[answer])
            for prompt, (_, answer) in zip(prompts, items, strict=True)
        ]

    def _join(self, prompt_ids: list[int], answer_ids: list[int]) -> tuple[int, ...]:
        budget = self.max_length - self.special
        answer_budget = max(1, budget - min(len(prompt_ids), self.min_prompt_tokens))
        answer_ids = answer_ids[:answer_budget]
        prompt_budget = budget - len(answer_ids)
        prompt_ids = prompt_ids[-prompt_budget:] if prompt_budget > 0 else []
        return (*self.prefix, *prompt_ids, *self.middle, *answer_ids, *self.suffix)


def special_tokens_template(tokenizer) -> tuple[list[int], list[int], list[int]]:
    """The special tokens the tokenizer puts around a text pair: ([CLS]), ([SEP]), ([SEP]) for BERT.

    Found by encoding a pair of marker words, so any tokenizer's own template is respected.
    """
    first = tokenizer("alpha", add_special_tokens=False)["input_ids"]
    second = tokenizer("omega", add_special_tokens=False)["input_ids"]
    both = tokenizer("alpha", "omega", add_special_tokens=True)["input_ids"]
    for start in range(len(both) - len(first) + 1):
        if both[start : start + len(first)] != first:
            continue
        for middle_end in range(start + len(first), len(both) - len(second) + 1):
            if both[middle_end : middle_end + len(second)] == second:
                return (
                    list(both[:start]),
                    list(both[start + len(first) : middle_end]),
                    list(both[middle_end + len(second) :]),
                )
    return [], [], []


def rankings_tokenize(examples: Sequence[RankingExample], builder: SequenceBuilder) -> list[TokenizedRanking]:
    """Tokenize rankings; rankings that imply no pair (all tied) are dropped, they teach nothing."""
    items = [(example.turns, answer) for example in examples for answer in example.answers]
    sequences = builder.build_many(items)
    tokenized: list[TokenizedRanking] = []
    cursor = 0
    for example in examples:
        own = sequences[cursor : cursor + len(example.answers)]
        cursor += len(example.answers)
        pairs = order_pairs(example.order)
        if pairs:
            tokenized.append(TokenizedRanking(prompt_key=example.prompt_key, sequences=own, pairs=pairs))
    return tokenized


def split_by_prompt(
    examples: Sequence[TokenizedRanking], *, validation_fraction: float, seed: int
) -> tuple[list[TokenizedRanking], list[TokenizedRanking]]:
    """Hold out whole prompts: ceil(fraction x prompts), at least one when there are two or more.

    The choice hashes each prompt key with the seed, so it is stable as data grows.
    """
    keys = sorted({example.prompt_key for example in examples})
    if validation_fraction <= 0 or len(keys) < 2:
        return list(examples), []
    count = min(len(keys) - 1, max(1, math.ceil(validation_fraction * len(keys))))
    ranked = sorted(keys, key=lambda key: hashlib.sha256(f"{seed}:{key}".encode()).hexdigest())
    held_out = set(ranked[:count])
    train = [example for example in examples if example.prompt_key not in held_out]
    validation = [example for example in examples if example.prompt_key in held_out]
    return train, validation


def batches_plan(
    examples: Sequence[TokenizedRanking], *, step_tokens: int, rng: random.Random | None
) -> list[list[int]]:
    """Group ranking indices into steps of at most `step_tokens` padded tokens.

    With an rng: shuffle the prompts, cut them into windows of ~50 steps, sort each window by
    length (neighbours have similar length: little padding), then shuffle the steps. Rankings of
    one prompt stay together, so answers that several labelers ranked share a step and go through
    the model once. Without an rng: plain length order (evaluation, micro-batches).
    A ranking larger than the budget gets a step of its own.
    """
    indices = list(range(len(examples)))
    if rng is None:
        indices.sort(key=lambda index: examples[index].padded_length)
        windows = [indices]
    else:
        rng.shuffle(indices)
        prompts = sorted({example.prompt_key for example in examples})
        rng.shuffle(prompts)
        prompt_rank = {key: rank for rank, key in enumerate(prompts)}
        indices.sort(key=lambda index: prompt_rank[examples[index].prompt_key])
        average = sum(len(e.sequences) * e.padded_length for e in examples) / max(1, len(examples))
        window = max(1, int(50 * step_tokens / max(1.0, average)))
        windows = [
            sorted(
                indices[start : start + window],
                key=lambda index: (examples[index].padded_length, prompt_rank[examples[index].prompt_key]),
            )
            for start in range(0, len(indices), window)
        ]
    steps: list[list[int]] = []
    for ordered in windows:
        current: list[int] = []
        sequences = 0
        longest = 0
        for index in ordered:
            example = examples[index]
            new_sequences = sequences + len(example.sequences)
            new_longest = max(longest, example.padded_length)
            if current and new_sequences * new_longest > step_tokens:
                steps.append(current)
                current, new_sequences, new_longest = [], len(example.sequences), example.padded_length
            current.append(index)
            sequences, longest = new_sequences, new_longest
        if current:
            steps.append(current)
    if rng is not None:
        rng.shuffle(steps)
    return steps


def batch_collate(examples: Sequence[TokenizedRanking]) -> Batch:
    """Unique sequences (an answer shared by two rankings goes through the model once) and pair indices."""
    position: dict[tuple[int, ...], int] = {}
    sequences: list[tuple[int, ...]] = []
    better: list[int] = []
    worse: list[int] = []
    pair_ranking: list[int] = []
    counts: list[int] = []
    for ranking_index, example in enumerate(examples):
        local: list[int] = []
        for sequence in example.sequences:
            if sequence not in position:
                position[sequence] = len(sequences)
                sequences.append(sequence)
            local.append(position[sequence])
        for better_index, worse_index in example.pairs:
            better.append(local[better_index])
            worse.append(local[worse_index])
            pair_ranking.append(ranking_index)
        counts.append(len(example.pairs))
    return Batch(
        sequences=sequences,
        better=torch.tensor(better, dtype=torch.long),
        worse=torch.tensor(worse, dtype=torch.long),
        pair_ranking=torch.tensor(pair_ranking, dtype=torch.long),
        rankings=len(examples),
        pairs_per_ranking=torch.tensor(counts, dtype=torch.float32),
    )


def chunks_by_length(lengths: Sequence[int], *, chunk_tokens: int) -> list[list[int]]:
    """Indices sorted by length and cut into chunks of at most `chunk_tokens` padded tokens."""
    order = sorted(range(len(lengths)), key=lambda index: lengths[index])
    chunks: list[list[int]] = []
    current: list[int] = []
    for index in order:
        # Sorted ascending, so the newest item is the longest in the chunk.
        if current and (len(current) + 1) * lengths[index] > chunk_tokens:
            chunks.append(current)
            current = []
        current.append(index)
    if current:
        chunks.append(current)
    return chunks


def pad_sequences(
    sequences: Sequence[Sequence[int]], *, pad_id: int, multiple: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest sequence, rounded up to `multiple`: (input_ids, attention_mask)."""
    longest = max(len(sequence) for sequence in sequences)
    longest = -(-longest // multiple) * multiple
    input_ids = torch.full((len(sequences), longest), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), longest), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        input_ids[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
        attention_mask[row, : len(sequence)] = 1
    return input_ids, attention_mask
