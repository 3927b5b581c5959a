"""The training loop: one visible loop whose phases read top to bottom.

batch (rankings of similar length, up to a token budget) -> forward each unique answer once ->
ranking loss -> backward -> clip -> step -> evaluate on held-out prompts each epoch -> report.
"""

from __future__ import annotations

import ctypes
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from rewards.ml.config import TrainConfig
from rewards.ml.data import (
    RankingExample,
    SequenceBuilder,
    TokenizedRanking,
    batch_collate,
    batches_plan,
    rankings_tokenize,
    split_by_prompt,
)
from rewards.ml.ensemble import uncertainty_heads_fit
from rewards.ml.loss import ranking_loss
from rewards.ml.model import RewardNet, backbone_load

ProgressCallback = Callable[[float, str], None]

# The per-step loss curve keeps at most this many points so the stored metrics stay small.
MAX_CURVE_POINTS = 200


class NoTrainingData(ValueError):
    """Nothing to learn from: no ranking orders two answers differently."""


@dataclass
class TrainResult:
    model: RewardNet
    tokenizer: Any
    config: TrainConfig
    metrics: dict[str, Any] = field(default_factory=dict)
    validation_accuracy: float | None = None
    uncertainty_heads: torch.Tensor | None = None  # (members, hidden), rewards.ml.ensemble


@dataclass
class Evaluation:
    loss: float | None
    accuracy: float | None
    pairs: int


class _Allocator:
    """glibc malloc hands freed memory back to the OS only reluctantly: activations of varying
    shapes fragment its arenas and the process grows step after step. Trimming after each step
    keeps peak memory near what is live (a no-op where glibc is absent)."""

    def __init__(self) -> None:
        self._libc: ctypes.CDLL | None
        try:
            self._libc = ctypes.CDLL("libc.so.6")
            self._libc.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            self._libc = None

    def trim(self) -> None:
        if self._libc is not None:
            self._libc.malloc_trim(0)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def device_pick() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: the CPU multiplies bf16 in hardware (Zen 4, Sapphire Rapids and later)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as cpuinfo:
            flags = next((line for line in cpuinfo if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def bf16_wanted(setting: str, device: torch.device) -> bool:
    if setting == "off":
        return False
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return setting == "on" or (device.type == "cpu" and cpu_has_native_bf16())


def model_build(config: TrainConfig, device: torch.device) -> tuple[RewardNet, Any]:
    backbone, tokenizer = backbone_load(config.backbone_path)
    model = RewardNet(
        backbone, pooling=config.pooling, pad_id=tokenizer.pad_token_id, pad_multiple=config.pad_to_multiple
    ).to(device)
    if config.freeze_embeddings:
        embeddings = backbone.get_input_embeddings()
        embeddings.weight.requires_grad_(False)
    return model, tokenizer


def evaluate(
    model: RewardNet, rankings: Sequence[TokenizedRanking], *, config: TrainConfig, autocast_bf16: bool
) -> Evaluation:
    """Loss (without the centering term) and the fraction of held-out pairs ordered correctly."""
    if not rankings:
        return Evaluation(loss=None, accuracy=None, pairs=0)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        batch = batch_collate(rankings)
        scores = model.score_sequences(
            batch.sequences, chunk_tokens=chunk_size(config) * 4, autocast_bf16=autocast_bf16
        )
        parts = ranking_loss(
            scores,
            better=batch.better,
            worse=batch.worse,
            pair_ranking=batch.pair_ranking,
            pairs_per_ranking=batch.pairs_per_ranking,
        )
    model.train(was_training)
    return Evaluation(loss=float(parts.loss), accuracy=parts.correct / parts.pairs, pairs=parts.pairs)


def chunk_size(config: TrainConfig) -> int:
    """Tokens per forward chunk; never less than one full-length sequence."""
    return max(config.chunk_tokens, config.max_length)


def lr_lambda(total_steps: int, warmup_fraction: float) -> Callable[[int], float]:
    warmup = max(1, int(total_steps * warmup_fraction)) if warmup_fraction > 0 else 0

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


def train(
    examples: Sequence[RankingExample],
    *,
    config: TrainConfig,
    validation: Sequence[RankingExample] | None = None,
    normalise_on: Sequence[tuple[list[dict[str, str]], str]] = (),
    progress: ProgressCallback | None = None,
) -> TrainResult:
    """Train a reward model on rankings.

    Validation holds out whole prompts from `examples` (config.validation_fraction) unless
    `validation` is given. `normalise_on` are (conversation, demonstration) pairs: afterwards the
    head's offset makes their mean score 0 (InstructGPT). `progress(fraction, message)` is called
    after every step; it may raise to stop training.
    """
    report = progress or (lambda fraction, message: None)
    seed_everything(config.seed)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    device = device_pick()
    autocast_bf16 = bf16_wanted(config.bf16, device)

    report(0.0, "loading the backbone")
    model, tokenizer = model_build(config, device)
    builder = SequenceBuilder(
        tokenizer, max_length=config.max_length, min_prompt_tokens=config.min_prompt_tokens
    )
    report(0.0, "tokenizing")
    tokenized = rankings_tokenize(examples, builder)
    if validation is None:
        train_set, validation_set = split_by_prompt(
            tokenized, validation_fraction=config.validation_fraction, seed=config.seed
        )
    else:
        train_set, validation_set = tokenized, rankings_tokenize(validation, builder)
    if not train_set:
        raise NoTrainingData("no ranking with two differently ranked answers to train on")

    rng = random.Random(config.seed)
    plans = [batches_plan(train_set, step_tokens=config.step_tokens, rng=rng) for _ in range(config.epochs)]
    total_steps = sum(len(plan) for plan in plans)
    allocator = _Allocator()
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(
        trainable, lr=config.learning_rate, weight_decay=config.weight_decay, fused=device.type != "mps"
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(total_steps, config.warmup_fraction))

    epochs: list[dict[str, Any]] = []
    curve: list[dict[str, float]] = []
    curve_every = max(1, math.ceil(total_steps / MAX_CURVE_POINTS))
    step = 0
    started = time.perf_counter()
    sequences_seen = tokens_seen = pairs_seen = 0
    model.train()
    for epoch_index, plan in enumerate(plans):
        epoch_started = time.perf_counter()
        loss_sum = pairs_sum = correct_sum = 0.0
        for step_indices in plan:
            step_rankings = [train_set[index] for index in step_indices]
            optimizer.zero_grad(set_to_none=True)
            # Micro-batches of whole rankings bound activation memory; their losses add up to the step's.
            for micro_indices in batches_plan(step_rankings, step_tokens=chunk_size(config), rng=None):
                batch = batch_collate([step_rankings[index] for index in micro_indices])
                scores = model.score_sequences(
                    batch.sequences, chunk_tokens=chunk_size(config), autocast_bf16=autocast_bf16
                )
                parts = ranking_loss(
                    scores,
                    better=batch.better,
                    worse=batch.worse,
                    pair_ranking=batch.pair_ranking,
                    pairs_per_ranking=batch.pairs_per_ranking,
                    center_coefficient=config.center_rewards_coefficient,
                    rankings_total=len(step_rankings),
                )
                parts.loss.backward()
                loss_sum += parts.pair_loss_sum
                pairs_sum += parts.pairs
                correct_sum += parts.correct
                sequences_seen += len(batch.sequences)
                tokens_seen += sum(len(sequence) for sequence in batch.sequences)
                pairs_seen += parts.pairs
            torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            allocator.trim()
            step += 1
            if step % curve_every == 0 or step == total_steps:
                curve.append({"step": step, "train_loss": round(loss_sum / max(1, pairs_sum), 5)})
            report(
                min(step / total_steps, 0.99),
                f"epoch {epoch_index + 1}/{config.epochs}, step {step}/{total_steps}, "
                f"loss {loss_sum / max(1, pairs_sum):.4f}",
            )
        # Evaluation and normalisation in float32, as the saved model will score.
        evaluation = evaluate(model, validation_set, config=config, autocast_bf16=False)
        epochs.append(
            {
                "epoch": epoch_index + 1,
                "train_loss": loss_sum / max(1, pairs_sum),
                "train_accuracy": correct_sum / max(1, pairs_sum),
                "val_loss": evaluation.loss,
                "val_accuracy": evaluation.accuracy,
                "seconds": round(time.perf_counter() - epoch_started, 3),
            }
        )
    train_seconds = time.perf_counter() - started

    report(0.99, "normalising scores on demonstrations")
    offset = normalisation_offset(model, builder, normalise_on, config=config, autocast_bf16=False)
    model.head.offset_set(offset)
    model.eval()
    report(0.99, "fitting the uncertainty heads")
    heads_started = time.perf_counter()
    heads, heads_comparisons = uncertainty_heads_train(model, train_set, config=config)
    final = epochs[-1]
    metrics = {
        "epochs": epochs,
        "curve": curve,
        "train_rankings": len(train_set),
        "train_pairs": sum(len(example.pairs) for example in train_set),
        "validation_rankings": len(validation_set),
        "validation_pairs": sum(len(example.pairs) for example in validation_set),
        "validation_prompts": len({example.prompt_key for example in validation_set}),
        "train_seconds": round(train_seconds, 3),
        "sequences_per_second": round(sequences_seen / max(train_seconds, 1e-9), 3),
        "tokens_per_second": round(tokens_seen / max(train_seconds, 1e-9), 1),
        "pairs_per_second": round(pairs_seen / max(train_seconds, 1e-9), 3),
        "score_offset": offset,
        "demonstrations_used": len(normalise_on),
        "uncertainty_heads": 0 if heads is None else int(heads.shape[0]),
        "uncertainty_comparisons": heads_comparisons,
        "uncertainty_seconds": round(time.perf_counter() - heads_started, 3),
        "device": device.type,
        "bf16_autocast": autocast_bf16,
    }
    return TrainResult(
        model=model,
        tokenizer=tokenizer,
        config=config,
        metrics=metrics,
        validation_accuracy=final["val_accuracy"],
        uncertainty_heads=heads,
    )


def uncertainty_heads_train(
    model: RewardNet, rankings: Sequence[TokenizedRanking], *, config: TrainConfig
) -> tuple[torch.Tensor | None, int]:
    """The version's uncertainty heads (rewards.ml.ensemble) and the comparisons they were fitted on:
    the trained model's pooled features, frozen, of up to config.uncertainty_comparisons training
    comparisons (whole rankings in a seeded random order). (None, 0) when config asks for none."""
    if config.uncertainty_heads == 0:
        return None, 0
    shuffled = list(rankings)
    random.Random(config.seed).shuffle(shuffled)
    taken: list[TokenizedRanking] = []
    comparisons = 0
    for ranking in shuffled:
        if comparisons >= config.uncertainty_comparisons:
            break
        taken.append(ranking)
        comparisons += len(ranking.pairs)
    batch = batch_collate(taken)
    model.eval()
    with torch.inference_mode():
        features = model.features_sequences(batch.sequences, chunk_tokens=chunk_size(config) * 4)
    heads = uncertainty_heads_fit(
        features[batch.better], features[batch.worse], members=config.uncertainty_heads, seed=config.seed
    )
    return heads, comparisons


def normalisation_offset(
    model: RewardNet,
    builder: SequenceBuilder,
    pairs: Sequence[tuple[list[dict[str, str]], str]],
    *,
    config: TrainConfig,
    autocast_bf16: bool,
) -> float:
    """Minus the mean raw score of the demonstrations (0 when there are none)."""
    if not pairs:
        return 0.0
    model.eval()
    with torch.inference_mode():
        model.head.offset_set(0.0)
        sequences = builder.build_many(list(pairs))
        scores = model.score_sequences(
            sequences, chunk_tokens=chunk_size(config) * 4, autocast_bf16=autocast_bf16
        )
    return -float(scores.float().mean())
