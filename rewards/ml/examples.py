"""The training element, kept free of torch so the web process can build examples without loading it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RankingExample:
    """One ranking: a conversation, its answers, and the order as tie groups of answer indices."""

    prompt_key: str  # what validation holds out together (a prompt id or hash)
    turns: list[dict[str, str]]
    answers: list[str]
    order: list[list[int]]  # best group first; indices into `answers`
