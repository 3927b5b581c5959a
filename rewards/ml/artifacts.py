"""Save and load a trained reward model as plain files: never pickles.

<folder>/reward_model.json   format, pooling, max length, score offset, training config and metrics
<folder>/backbone/           the Hugging Face folder: config.json, model.safetensors, tokenizer files
<folder>/head.safetensors    the scalar head (weight, bias, offset)
<folder>/uncertainty_heads.safetensors   the uncertainty heads (rewards.ml.ensemble), where fitted:
                             versions saved before them, or trained with none, have no such file
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from rewards.ml.config import TrainConfig
from rewards.ml.data import SequenceBuilder
from rewards.ml.model import RewardNet, backbone_load

FORMAT = "rlhf-platform-reward-model"
FORMAT_VERSION = 1
META_FILE = "reward_model.json"
HEAD_FILE = "head.safetensors"
UNCERTAINTY_HEADS_FILE = "uncertainty_heads.safetensors"
BACKBONE_DIR = "backbone"


class ArtifactError(ValueError):
    """The folder is not a reward model this code can load."""


@dataclass
class LoadedRewardModel:
    model: RewardNet
    tokenizer: Any
    config: TrainConfig
    meta: dict[str, Any]
    uncertainty_heads: torch.Tensor | None = None  # (members, hidden)

    def builder(self) -> SequenceBuilder:
        return SequenceBuilder(
            self.tokenizer, max_length=self.config.max_length, min_prompt_tokens=self.config.min_prompt_tokens
        )


def artifact_save(
    *,
    model: RewardNet,
    tokenizer: Any,
    config: TrainConfig,
    metrics: dict[str, Any],
    folder: Path,
    uncertainty_heads: torch.Tensor | None = None,
) -> Path:
    """Write the model to `folder` (which must not exist yet), atomically: a crash leaves no half folder."""
    folder = Path(folder)
    if folder.exists():
        raise ArtifactError(f"{folder} already exists")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        model.backbone.save_pretrained(staging / BACKBONE_DIR, safe_serialization=True)
        tokenizer.save_pretrained(staging / BACKBONE_DIR)
        head = {name: tensor.detach().cpu().contiguous() for name, tensor in model.head.state_dict().items()}
        save_file(head, str(staging / HEAD_FILE))
        if uncertainty_heads is not None:
            save_file(
                {"weight": uncertainty_heads.detach().cpu().float().contiguous()},
                str(staging / UNCERTAINTY_HEADS_FILE),
            )
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "pooling": model.pooling,
            "pad_id": model.pad_id,
            "score_offset": model.head.offset_value,
            "train_config": config.as_dict(),
            "metrics": metrics,
        }
        (staging / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def artifact_load(folder: Path | str, *, device: torch.device | None = None) -> LoadedRewardModel:
    """Load a folder written by artifact_save, in eval mode, on `device` (default CPU)."""
    folder = Path(folder)
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise ArtifactError(f"{folder} holds no {META_FILE}")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{folder} is not a version {FORMAT_VERSION} {FORMAT} artifact")
    config = TrainConfig.from_overrides(meta["train_config"])
    backbone, tokenizer = backbone_load(str(folder / BACKBONE_DIR))
    model = RewardNet(
        backbone, pooling=meta["pooling"], pad_id=meta["pad_id"], pad_multiple=config.pad_to_multiple
    )
    model.head.load_state_dict(load_file(str(folder / HEAD_FILE)))
    model.to(device or torch.device("cpu")).eval()
    heads = None
    if (folder / UNCERTAINTY_HEADS_FILE).is_file():
        heads = load_file(str(folder / UNCERTAINTY_HEADS_FILE))["weight"].to(device or torch.device("cpu"))
        hidden = model.head.linear.in_features
        if heads.dim() != 2 or heads.shape[0] < 2 or heads.shape[1] != hidden:
            raise ArtifactError(
                f"{folder}'s uncertainty heads are {tuple(heads.shape)}, not (members >= 2, {hidden})"
            )
    return LoadedRewardModel(
        model=model, tokenizer=tokenizer, config=config, meta=meta, uncertainty_heads=heads
    )
