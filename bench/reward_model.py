"""Reward-model training: ours (rewards/ml) against TRL's RewardTrainer, same backbone and data.

    .venv/bin/python bench/reward_model.py [--train FILE --eval FILE] [--epochs 1] [--max-length 256]
        [--lr 1e-4] [--k4-rankings 96] [--limit N] [--json OUT]
    .venv/bin/python bench/reward_model.py --small [--train FILE] --json OUT   # what `make test` runs

Data: HH-RLHF or TRL preference JSONL. Default: ../shared/data/hh-rlhf-harmless-dev.jsonl, lines
that are not valid preference pairs dropped (the same for both), shuffled with a fixed seed, 80 %
to train and 20 % to evaluate. Both trainers start from the packaged all-MiniLM-L6-v2 with the same
epochs, learning rate, maximum length and batch (TRL: 16 pairs; ours: a token budget of about 16
pairs), and each runs in its own processes (one for the pairs run, one for the K=4 run) so that
its peak memory (ru_maxrss) is its own; peak_rss_mb is the pairs run's, k4_peak_rss_mb the other's.

Measured for each: eval_accuracy (held-out pairs ordered correctly, every eval pair, inputs cut to
max length from the left), pairs_per_s (pairs trained / training-loop seconds), train_seconds,
k4_comparisons_per_s (K=4 rankings built from the training pairs: the prompt's chosen and rejected
answers above two answers from another prompt; TRL gets their C(4,2)=6 pairs), peak_rss_mb.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless-dev.jsonl"
SEED = 1234
# --small: one batch of 16 pairs (one optimiser step on each side) and a few K=4 rankings. The
# maximum length stays: TRL drops every pair longer than it, and HH-RLHF conversations are long.
SMALL = {"limit": 16, "k4_rankings": 4}


def pairs_load(path: Path) -> tuple[list, int]:
    from rewards.ml.preference_formats import jsonl_records

    pairs, dropped = [], 0
    for _, pair, problem in jsonl_records(path.read_text(encoding="utf-8")):
        if pair is None or problem:
            dropped += 1
        else:
            pairs.append(pair)
    return pairs, dropped


def hh_prompt_text(turns: list[dict]) -> str:
    """The conversation as HH-RLHF text, ending with the open assistant turn: what TRL trains on."""
    names = {"user": "Human", "assistant": "Assistant", "system": "System"}
    return "".join(f"\n\n{names[t['role']]}: {t['content']}" for t in turns) + "\n\nAssistant:"


def k4_rankings(pairs: list, count: int) -> list[tuple[list[dict], list[str]]]:
    """(turns, answers best first): a prompt's chosen and rejected, then another prompt's two."""
    rankings = []
    for index in range(min(count, len(pairs))):
        own, other = pairs[index], pairs[(index + len(pairs) // 2) % len(pairs)]
        rankings.append((own.turns, [own.chosen, own.rejected, other.chosen, other.rejected]))
    return rankings


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --------------------------------------------------------------------------------------- ours
def run_ours_worker(args, train_pairs, eval_pairs) -> dict:
    import torch

    from rewards.ml.config import TrainConfig
    from rewards.ml.data import RankingExample, SequenceBuilder
    from rewards.ml.train import train

    config = TrainConfig(
        epochs=args.epochs,
        max_length=args.max_length,
        learning_rate=args.lr,
        validation_fraction=0.0,
        seed=SEED,
    )
    examples = [
        RankingExample(prompt_key=str(i), turns=p.turns, answers=[p.chosen, p.rejected], order=[[0], [1]])
        for i, p in enumerate(train_pairs)
    ]
    result = train(examples, config=config, validation=[])
    train_seconds = result.metrics["train_seconds"]
    rss_after_train = peak_rss_mb()
    builder = SequenceBuilder(
        result.tokenizer, max_length=args.max_length, min_prompt_tokens=config.min_prompt_tokens
    )
    with torch.inference_mode():
        chosen = result.model.score_sequences(
            builder.build_many([(p.turns, p.chosen) for p in eval_pairs]), chunk_tokens=2048
        )
        rejected = result.model.score_sequences(
            builder.build_many([(p.turns, p.rejected) for p in eval_pairs]), chunk_tokens=2048
        )
    accuracy = float((chosen > rejected).float().mean())
    pairs = len(train_pairs) * args.epochs
    return {
        "eval_accuracy": accuracy,
        "pairs_trained": pairs,
        "train_seconds": train_seconds,
        "pairs_per_s": pairs / train_seconds,
        "peak_rss_mb_after_pairs_training": rss_after_train,
    }


def run_ours_k4_worker(args, train_pairs, eval_pairs) -> dict:
    from rewards.ml.config import TrainConfig
    from rewards.ml.data import RankingExample
    from rewards.ml.train import train

    config = TrainConfig(
        epochs=1, max_length=args.max_length, learning_rate=args.lr, validation_fraction=0.0, seed=SEED
    )
    k4_examples = [
        RankingExample(prompt_key=str(i), turns=turns, answers=answers, order=[[0], [1], [2], [3]])
        for i, (turns, answers) in enumerate(k4_rankings(train_pairs, args.k4_rankings))
    ]
    k4 = train(k4_examples, config=config, validation=[])
    comparisons = 6 * len(k4_examples)
    return {
        "k4_comparisons": comparisons,
        "k4_train_seconds": k4.metrics["train_seconds"],
        "k4_comparisons_per_s": comparisons / k4.metrics["train_seconds"],
    }


# ---------------------------------------------------------------------------------------- TRL
def trl_dataset(pairs):
    from datasets import Dataset

    return Dataset.from_list(
        [
            {"prompt": hh_prompt_text(p.turns), "chosen": " " + p.chosen, "rejected": " " + p.rejected}
            for p in pairs
        ]
    )


def trl_train(args, dataset, model_path: str, output_dir: str):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed
    from trl import RewardConfig, RewardTrainer

    from rewards.ml.config import TrainConfig
    from rewards.ml.train import bf16_wanted, device_pick

    bf16 = bf16_wanted(TrainConfig().bf16, device_pick())
    tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    # The classifier head is initialised when the model is built, before the trainer seeds
    # anything: seed first, or every run starts from a different head.
    set_seed(SEED)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_path, num_labels=1, local_files_only=True
    )
    config = RewardConfig(
        output_dir=output_dir,
        per_device_train_batch_size=16,
        num_train_epochs=args.epochs,
        learning_rate=args.lr,
        max_length=args.max_length,
        eos_token=tokenizer.sep_token,  # BERT tokenizers have no EOS; TRL appends one to plain-text data
        # TRL's default bf16=True needs use_cpu=True on a CPU. Both sides use bf16 autocast exactly
        # where ours does (a CPU with native bf16, or CUDA), float32 elsewhere.
        bf16=bf16,
        use_cpu=not torch.cuda.is_available(),
        gradient_checkpointing=args.trl_gradient_checkpointing,
        seed=SEED,
        report_to="none",
        save_strategy="no",
        logging_steps=10,
        disable_tqdm=True,
    )
    trainer = RewardTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer)
    pairs = len(trainer.train_dataset)  # type: ignore[arg-type]
    started = time.perf_counter()
    trainer.train()
    return trainer, tokenizer, pairs, time.perf_counter() - started


def run_trl_worker(args, train_pairs, eval_pairs) -> dict:
    import torch

    from rewards.ml.config import default_backbone_path

    model_path = default_backbone_path()
    with tempfile.TemporaryDirectory() as output_dir:
        trainer, tokenizer, pairs, seconds = trl_train(args, trl_dataset(train_pairs), model_path, output_dir)
        model = trainer.model.eval()
        # Every eval pair, cut to max length from the left (TRL itself would drop the long ones).
        tokenizer.truncation_side = "left"

        def scores(model, texts):
            out = []
            order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
            with torch.inference_mode():
                for start in range(0, len(order), 32):
                    chunk = [texts[i] for i in order[start : start + 32]]
                    encoded = tokenizer(
                        chunk, truncation=True, max_length=args.max_length, padding=True, return_tensors="pt"
                    )
                    logits = model(**encoded).logits.squeeze(-1).float().tolist()
                    out.extend(zip(order[start : start + 32], logits, strict=True))
            return [score for _, score in sorted(out)]

        chosen = scores(
            model, [hh_prompt_text(p.turns) + " " + p.chosen + tokenizer.sep_token for p in eval_pairs]
        )
        rejected = scores(
            model, [hh_prompt_text(p.turns) + " " + p.rejected + tokenizer.sep_token for p in eval_pairs]
        )
        accuracy = sum(c > r for c, r in zip(chosen, rejected, strict=True)) / len(eval_pairs)
    return {
        "eval_accuracy": accuracy,
        "pairs_trained": pairs * args.epochs,
        "pairs_dropped_as_too_long": len(train_pairs) - pairs,
        "train_seconds": seconds,
        "pairs_per_s": pairs * args.epochs / seconds,
    }


def run_trl_k4_worker(args, train_pairs, eval_pairs) -> dict:
    from rewards.ml.config import default_backbone_path

    model_path = default_backbone_path()
    with tempfile.TemporaryDirectory() as output_dir:
        rankings = k4_rankings(train_pairs, args.k4_rankings)
        k4_rows: list[dict[str, Any]] = []
        for turns, answers in rankings:
            for better in range(4):
                for worse in range(better + 1, 4):
                    k4_rows.append({"turns": turns, "better": answers[better], "worse": answers[worse]})
        from datasets import Dataset

        k4_dataset = Dataset.from_list(
            [
                {
                    "prompt": hh_prompt_text(r["turns"]),
                    "chosen": " " + r["better"],
                    "rejected": " " + r["worse"],
                }
                for r in k4_rows
            ]
        )
        k4_args = argparse.Namespace(**{**vars(args), "epochs": 1})
        _, _, k4_pairs, k4_seconds = trl_train(k4_args, k4_dataset, model_path, output_dir)
    return {
        "k4_comparisons": k4_pairs,
        "k4_train_seconds": k4_seconds,
        "k4_comparisons_per_s": k4_pairs / k4_seconds,
    }


# ------------------------------------------------------------------------------------- driver
def split_files(args, workdir: Path) -> tuple[Path, Path, dict]:
    if args.train:
        return Path(args.train), Path(args.eval or args.train), {"split": "given files"}
    pairs, dropped = pairs_load(DEFAULT_DATA)
    lines = [
        json.dumps(
            {
                "prompt": p.turns,
                "chosen": [{"role": "assistant", "content": p.chosen}],
                "rejected": [{"role": "assistant", "content": p.rejected}],
            }
        )
        for p in pairs
    ]
    random.Random(SEED).shuffle(lines)
    cut = int(len(lines) * 0.8)
    train_path, eval_path = workdir / "train.jsonl", workdir / "eval.jsonl"
    train_path.write_text("\n".join(lines[:cut]) + "\n", encoding="utf-8")
    eval_path.write_text("\n".join(lines[cut:]) + "\n", encoding="utf-8")
    return train_path, eval_path, {"split": "80/20 seed 1234", "invalid_lines_dropped": dropped}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train", help="training pairs (HH-RLHF or TRL preference JSONL)")
    parser.add_argument("--eval", help="evaluation pairs (default with --train: the same file)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-4, help="learning rate for both (TRL's default)")
    parser.add_argument("--k4-rankings", type=int, default=96, help="K=4 rankings for comparisons/s")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N train and N/4 eval pairs")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument(
        "--trl-gradient-checkpointing",
        type=lambda value: value.lower() in ("1", "true", "yes"),
        default=True,
        help="TRL's RewardConfig default (true) trades speed for memory; false shows TRL's speed without it",
    )
    parser.add_argument("--only", choices=["ours", "trl"], help="run one side only")
    parser.add_argument("--worker", choices=["ours", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--phase", choices=["pairs", "k4"], default="pairs", help=argparse.SUPPRESS)
    parser.add_argument(
        "--small",
        action="store_true",
        help=f"a smoke run ({SMALL['limit']} pairs: one training step each side, {SMALL['k4_rankings']} "
        "K=4 rankings), as `make test` runs it: it must run, "
        "its speed and accuracy are not judged",
    )
    args = parser.parse_args()
    if args.small:  # the small sizes become the defaults; options given on the command line still win
        parser.set_defaults(**SMALL)
        args = parser.parse_args()

    if args.worker:
        train_pairs, _ = pairs_load(Path(args.train))
        eval_pairs, _ = pairs_load(Path(args.eval))
        if args.limit:
            train_pairs, eval_pairs = train_pairs[: args.limit], eval_pairs[: max(8, args.limit // 4)]
        run = {
            ("ours", "pairs"): run_ours_worker,
            ("ours", "k4"): run_ours_k4_worker,
            ("trl", "pairs"): run_trl_worker,
            ("trl", "k4"): run_trl_k4_worker,
        }[(args.worker, args.phase)]
        result = run(args, train_pairs, eval_pairs)
        result["train_pairs"], result["eval_pairs"] = len(train_pairs), len(eval_pairs)
        result["peak_rss_mb" if args.phase == "pairs" else "k4_peak_rss_mb"] = peak_rss_mb()
        Path(args.result).write_text(json.dumps(result), encoding="utf-8")
        return

    with tempfile.TemporaryDirectory() as workdir:
        train_path, eval_path, data_note = split_files(args, Path(workdir))
        results: dict = {
            "config": {
                **data_note,
                "epochs": args.epochs,
                "max_length": args.max_length,
                "lr": args.lr,
                "batch": 16,
                "k4_rankings": args.k4_rankings,
                "limit": args.limit,
                "cpus": os.cpu_count(),
                "small": args.small,
            }
        }
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONPATH": str(ROOT),
        }
        if args.small:
            # One thread a process: on a busy machine, torch's spinning threads made a step of a
            # few seconds take ten times as long.
            env.setdefault("OMP_NUM_THREADS", "1")
        common = [
            "--train", str(train_path), "--eval", str(eval_path), "--epochs", str(args.epochs),
            "--max-length", str(args.max_length), "--lr", str(args.lr), "--k4-rankings", str(args.k4_rankings),
            "--limit", str(args.limit), "--trl-gradient-checkpointing", str(args.trl_gradient_checkpointing),
        ]  # fmt: skip
        for side in [args.only] if args.only else ["ours", "trl"]:
            results[side] = {}
            # The pairs run and the K=4 run each get a fresh process: peak memory is the pairs run's.
            for phase in ("pairs", "k4"):
                result_path = Path(workdir) / f"{side}-{phase}.json"
                command = [sys.executable, __file__, "--worker", side, "--phase", phase, *common]
                started = time.perf_counter()
                subprocess.run([*command, "--result", str(result_path)], check=True, env=env)
                results[side].update(json.loads(result_path.read_text(encoding="utf-8")))
                results[side][f"{phase}_process_seconds"] = time.perf_counter() - started
    table(results)
    if args.small:
        print("small mode: a smoke run, speed and accuracy not judged")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")


def table(results: dict) -> None:
    rows = [
        ("eval_accuracy", "{:.3f}"),
        ("pairs_per_s", "{:.2f}"),
        ("k4_comparisons_per_s", "{:.2f}"),
        ("peak_rss_mb", "{:.0f}"),
        ("train_seconds", "{:.1f}"),
    ]
    sides = [side for side in ("ours", "trl") if side in results]
    print(
        f"\n{'metric':<24}"
        + "".join(f"{side:>12}" for side in sides)
        + ("       ratio" if len(sides) == 2 else "")
    )
    for key, fmt in rows:
        values = [results[side][key] for side in sides]
        line = f"{key:<24}" + "".join(f"{fmt.format(v):>12}" for v in values)
        if len(sides) == 2 and values[1]:
            line += f"{values[0] / values[1]:>12.2f}"
        print(line)
    print(json.dumps(results["config"]))


if __name__ == "__main__":
    main()
