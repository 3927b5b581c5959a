"""Scores for (conversation, answer) pairs with a trained model, gradient-free."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rewards.ml.artifacts import LoadedRewardModel

# Tokens per forward chunk when scoring: no activations are kept, so this only bounds the
# transient memory of one forward pass.
SCORE_CHUNK_TOKENS = 2048


def texts_score(
    loaded: LoadedRewardModel,
    items: Sequence[tuple[list[dict[str, str]], str]],
    *,
    chunk_tokens: int = SCORE_CHUNK_TOKENS,
) -> list[float]:
    """One score per (turns, answer), in order. Demonstrations average 0 when the run had any."""
    if not items:
        return []
    sequences = loaded.builder().build_many(list(items))
    chunk_tokens = max(chunk_tokens, loaded.config.max_length)
    with torch.inference_mode():
        scores = loaded.model.score_sequences(sequences, chunk_tokens=chunk_tokens)
    return [float(score) for score in scores.float().cpu()]


def texts_score_members(
    loaded: LoadedRewardModel,
    items: Sequence[tuple[list[dict[str, str]], str]],
    *,
    chunk_tokens: int = SCORE_CHUNK_TOKENS,
) -> tuple[list[float], list[list[float]] | None]:
    """texts_score's scores, and each text's score by every uncertainty head (rewards.ml.ensemble)
    from the same forward pass; None for the latter when the version has no heads."""
    if loaded.uncertainty_heads is None:
        return texts_score(loaded, items, chunk_tokens=chunk_tokens), None
    if not items:
        return [], []
    sequences = loaded.builder().build_many(list(items))
    chunk_tokens = max(chunk_tokens, loaded.config.max_length)
    with torch.inference_mode():
        features = loaded.model.features_sequences(sequences, chunk_tokens=chunk_tokens)
        scores = loaded.model.head(features)
        members = features @ loaded.uncertainty_heads.T
    return [float(score) for score in scores.float().cpu()], members.float().cpu().tolist()
