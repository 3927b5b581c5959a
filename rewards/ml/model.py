"""A Hugging Face backbone plus a scalar head: r(conversation, answer) -> one number."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from rewards.ml.data import chunks_by_length, pad_sequences


def backbone_load(path: str, *, dropout_off: bool = True):
    """Load an encoder or decoder folder offline (no network, safetensors only) and its tokenizer.

    Dropout is switched off: a reward model's scores must not depend on a random mask, and
    TRL's reward trainer disables it for the same reason.
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    config = AutoConfig.from_pretrained(path, local_files_only=True)
    if dropout_off:
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout", "attention_dropout"):
            if hasattr(config, name):
                setattr(config, name, 0.0)
    backbone = AutoModel.from_pretrained(path, config=config, local_files_only=True, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return backbone, tokenizer


class ScalarHead(nn.Module):
    """Pooled hidden state -> score. `offset` is the bias that makes demonstrations average 0."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden_size, 1)
        nn.init.normal_(self.linear.weight, std=1.0 / (hidden_size**0.5 * 10))
        nn.init.zeros_(self.linear.bias)
        self.register_buffer("offset", torch.zeros(()))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.linear(pooled).squeeze(-1) + self.offset

    @property
    def offset_value(self) -> float:
        return float(self.get_buffer("offset"))

    def offset_set(self, value: float) -> None:
        self.get_buffer("offset").fill_(value)


class RewardNet(nn.Module):
    def __init__(self, backbone: nn.Module, *, pooling: str, pad_id: int, pad_multiple: int = 1) -> None:
        super().__init__()
        self.backbone: Any = backbone  # a transformers PreTrainedModel
        self.pooling = pooling
        self.pad_id = pad_id
        self.pad_multiple = pad_multiple
        self.head = ScalarHead(int(getattr(backbone, "config").hidden_size))  # noqa: B009

    def pool(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(batch, hidden) float32 pooled features: what the head, and the uncertainty heads, read."""
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == "mean":
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        elif self.pooling == "cls":
            pooled = hidden[:, 0]
        else:  # last real token (right padding)
            last = attention_mask.sum(1) - 1
            pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        return pooled.float()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(input_ids, attention_mask))

    def score_sequences(
        self, sequences: Sequence[Sequence[int]], *, chunk_tokens: int, autocast_bf16: bool = False
    ) -> torch.Tensor:
        """Scores in input order; sequences are sorted by length into chunks so padding stays small."""
        return self._by_chunks(self, sequences, chunk_tokens=chunk_tokens, autocast_bf16=autocast_bf16)

    def features_sequences(
        self, sequences: Sequence[Sequence[int]], *, chunk_tokens: int, autocast_bf16: bool = False
    ) -> torch.Tensor:
        """(len(sequences), hidden) pooled features in input order; `self.head(features)` scores them."""
        return self._by_chunks(self.pool, sequences, chunk_tokens=chunk_tokens, autocast_bf16=autocast_bf16)

    def _by_chunks(
        self,
        function: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        sequences: Sequence[Sequence[int]],
        *,
        chunk_tokens: int,
        autocast_bf16: bool,
    ) -> torch.Tensor:
        device = next(self.parameters()).device
        chunks = chunks_by_length([len(sequence) for sequence in sequences], chunk_tokens=chunk_tokens)
        parts: list[torch.Tensor] = []
        positions: list[int] = []
        for chunk in chunks:
            input_ids, attention_mask = pad_sequences(
                [sequences[i] for i in chunk], pad_id=self.pad_id, multiple=self.pad_multiple
            )
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast_bf16):
                parts.append(function(input_ids.to(device), attention_mask.to(device)))
            positions.extend(chunk)
        results = torch.cat(parts)
        inverse = torch.empty(len(positions), dtype=torch.long, device=results.device)
        inverse[torch.tensor(positions, device=results.device)] = torch.arange(
            len(positions), device=results.device
        )
        return results[inverse]
