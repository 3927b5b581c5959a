"""Active learning for the rank queue: does ranking what the reward model is unsure of first need
fewer human labels than the breadth-first (here: random) order?

    .venv/bin/python bench/active_learning.py [--pool FILE --eval FILE] [--seeds 40] [--noise 0.1]
        [--seed-labels 20] [--batch 20] [--rounds 10] [--strategies breadth_first,uncertainty,...]
        [--json OUT] [--plot PNG]
    .venv/bin/python bench/active_learning.py --small --json OUT   # what `make test` runs

Data: HH-format JSONL (`{"chosen", "rejected"}` transcripts) or TRL preference JSONL. Default: the
pool is ../shared/data/hh-rlhf-harmless-dev.jsonl, split by prompt for each seed, 20 % held out
for evaluation; with --eval the two files are used as given. Each pair is one prompt with K = 2
candidates, so one label (a ranking) is one comparison.

Simulation, per seed: a simulated labeler answers a pair with the data's ground truth (chosen
better than rejected), flipped with probability --noise (drawn once per pair, so every strategy
gets the same answer for the same pair). Every strategy starts from the same random seed set;
then rounds of train -> score the unlabeled pool -> label the next --batch pairs the strategy
ranks first. Held-out accuracy (ground truth, no noise) after each round.

Reward model: for speed, an ensemble of --members linear Bradley-Terry heads, score(x) = w . phi(x),
on frozen all-MiniLM-L6-v2 embeddings (mean pooled, the packaged model, as rewards/ml loads it):
phi = [embedding of conversation + answer (last 256 tokens), embedding of the answer alone],
projected on the pool's top 128 principal components. Each member is fitted by Newton's method to
the Bradley-Terry loss plus an L2 penalty on a Poisson bootstrap of the labels (the members differ
only in their resample: that is what makes their disagreement an uncertainty). Accuracy is the
ensemble mean's. Embeddings are computed once per run (and cached on disk under --cache-dir).

Strategies: breadth_first (random order); uncertainty (rewards.acquisition.acquisition_uncertainty:
ensemble spread of the pair's score difference), and the variants tried: closeness (4 p (1 - p) of
the ensemble mean), bald (rewards.acquisition.acquisition_information), uncertainty_mix
(uncertainty with a 25 % exploration share, rewards.acquisition.acquisition_mix).

labels_ratio: on the curves averaged over seeds, the labels (interpolated between rounds) the
uncertainty strategy needs to reach breadth_first's final accuracy, over breadth_first's final
labels. Goal <= 0.70; null when it never gets there.

Measured (defaults, 40 seeds, 2 loaded cores, embeddings cached: about 4 min): labels_ratio 0.40
(uncertainty 0.610 at 100 labels; breadth_first 0.602 at 220); bald 0.40, uncertainty_mix 0.59,
closeness not reached (0.600 at 220). Noise 0: 0.60 (40 seeds; 0.84 with 20, so the ratio moves
by +-0.2 between seed sets). With a budget near half the pool (--seed-labels 40 --batch 40, 440
of 920 labels, 20 seeds) no strategy reached breadth_first's final 0.622: the ensemble orders lead
by up to 0.03 until about 200 labels, then stall near 0.61 while breadth_first keeps climbing.
Tried and no better: sign-flip probability, spread per unit of difference length, spread top-4x
then farthest-point diversity, greedy Laplace-posterior (D-optimal) batches.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless-dev.jsonl"
# The heads' fit, ensemble size and L2 penalty are the product's own (rewards.ml.ensemble): what this
# measures is what the queue's uncertainty strategy runs on, but on frozen MiniLM features.
from rewards.ml.ensemble import MEMBERS, PENALTY, heads_fit  # noqa: E402

GOAL = 0.70
EVAL_SHARE = 0.2  # held out per seed when no --eval: the pool stays large beside the label budget
COMPONENTS = 128  # principal components: the heads fit 128 weights, not 768, with a few hundred labels
MAX_LENGTH, ANSWER_LENGTH = 256, 128
STRATEGIES = ("breadth_first", "uncertainty", "closeness", "bald", "uncertainty_mix")
EXPLORATION_SHARE = 0.25
SMALL = {"limit": 60, "seeds": 2, "seed_labels": 10, "batch": 10, "rounds": 2, "members": 3}


def pairs_load(path: Path, limit: int = 0) -> list:
    from rewards.ml.preference_formats import jsonl_records

    pairs = [
        pair for _, pair, problem in jsonl_records(path.read_text(encoding="utf-8")) if pair and not problem
    ]
    return pairs[:limit] if limit else pairs


def conversation_text(turns: list[dict]) -> str:
    names = {"user": "Human", "assistant": "Assistant", "system": "System"}
    return "".join(f"\n\n{names[t['role']]}: {t['content']}" for t in turns) + "\n\nAssistant: "


def embed(texts: list[str], *, max_length: int) -> torch.Tensor:
    """Mean-pooled, L2-normalised MiniLM sentence embeddings (as sentence-transformers computes
    them for this model); texts longer than max_length tokens keep their end (the answer)."""
    from rewards.ml.config import default_backbone_path
    from rewards.ml.model import backbone_load

    backbone, tokenizer = backbone_load(default_backbone_path())
    backbone.eval()
    tokenizer.truncation_side = "left"
    out = torch.zeros(len(texts), int(backbone.config.hidden_size))
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths, little padding
    with torch.inference_mode():
        for start in range(0, len(order), 32):
            chunk = order[start : start + 32]
            batch = tokenizer(
                [texts[i] for i in chunk],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            hidden = backbone(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out[chunk] = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    return out


def candidate_embeddings(pairs: list, cache_dir: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen, rejected) features per pair: [conversation + answer, answer alone] embeddings."""
    texts = []
    for pair in pairs:
        for answer in (pair.chosen, pair.rejected):
            texts.append((conversation_text(pair.turns) + answer, answer))
    key = hashlib.sha256(json.dumps([MAX_LENGTH, ANSWER_LENGTH, texts]).encode()).hexdigest()[:24]
    cached = Path(cache_dir) / f"active-learning-{key}.pt" if cache_dir else None
    if cached and cached.is_file():
        features = torch.load(cached, weights_only=True)
    else:
        features = torch.cat(
            [
                embed([t[0] for t in texts], max_length=MAX_LENGTH),
                embed([t[1] for t in texts], max_length=ANSWER_LENGTH),
            ],
            dim=1,
        )
        if cached:
            cached.parent.mkdir(parents=True, exist_ok=True)
            torch.save(features, cached)
    features = features.double().reshape(len(pairs), 2, -1)
    return features[:, 0], features[:, 1]


def project(chosen, rejected, pool, components):
    """Per-candidate features centred and projected on the pool's principal components (no labels
    used), scaled so a pool pair's difference has mean squared norm 1."""
    pool_candidates = torch.cat([chosen[pool], rejected[pool]])
    mean = pool_candidates.mean(0)
    _, _, basis = torch.linalg.svd(pool_candidates - mean, full_matrices=False)
    basis = basis[: min(components, basis.shape[0])].T
    chosen, rejected = (chosen - mean) @ basis, (rejected - mean) @ basis
    scale = (chosen[pool] - rejected[pool]).pow(2).sum(1).mean().sqrt()
    return chosen / scale, rejected / scale


def acquisition_scores(strategy, heads, chosen, rejected, candidates, generator) -> list[float]:
    from rewards.acquisition import acquisition_closeness, acquisition_information, acquisition_uncertainty

    if strategy == "breadth_first":
        return torch.rand(len(candidates), generator=generator).tolist()
    # Each member's scores of the prompt's two candidates, as the queue would read them from storage.
    first = (chosen[candidates] @ heads.T).tolist()  # (pairs, members)
    second = (rejected[candidates] @ heads.T).tolist()
    scores = []
    for a, b in zip(first, second, strict=True):
        member_scores = [[x, y] for x, y in zip(a, b, strict=True)]
        if strategy == "closeness":
            scores.append(acquisition_closeness(scores=[sum(a) / len(a), sum(b) / len(b)]))
        elif strategy == "bald":
            scores.append(acquisition_information(member_scores=member_scores))
        else:
            scores.append(acquisition_uncertainty(member_scores=member_scores))
    return scores


def batch_pick(strategy, scores, candidates, batch, seed) -> list[int]:
    from rewards.acquisition import acquisition_mix, acquisition_order

    order = acquisition_order(scores=dict(zip(candidates, scores, strict=True)))
    if strategy == "uncertainty_mix":
        order = acquisition_mix(order=order, exploration_share=EXPLORATION_SHARE, seed=seed)
    return order[:batch]


def simulate(args, chosen_all, rejected_all, split, seed) -> dict[str, list[float]]:
    pool, held_out = split
    chosen, rejected = project(chosen_all, rejected_all, pool, COMPONENTS)
    generator = torch.Generator().manual_seed(seed)
    answers = torch.where(torch.rand(len(chosen), generator=generator) < args.noise, -1.0, 1.0).double()
    seed_set = pool[torch.randperm(len(pool), generator=generator)[: args.seed_labels]].tolist()
    evaluation = chosen[held_out] - rejected[held_out]
    curves = {}
    for strategy in args.strategies:
        # Each strategy gets the same bootstrap draws; breadth_first's order has its own generator.
        rng = torch.Generator().manual_seed(seed * 1000 + 7)
        order_rng = torch.Generator().manual_seed(seed * 1000 + 8)
        labeled, heads, curve = list(seed_set), None, []
        for round_index in range(args.rounds + 1):
            index = torch.tensor(labeled)
            weights = torch.poisson(torch.ones(args.members, len(index), dtype=torch.float64), generator=rng)
            heads = heads_fit(
                chosen[index] - rejected[index], answers[index], weights, penalty=PENALTY, start=heads
            )
            curve.append(float(((evaluation @ heads.mean(0)) > 0).double().mean()))
            if round_index == args.rounds:
                break
            taken = set(labeled)
            candidates = [i for i in pool.tolist() if i not in taken]
            scores = acquisition_scores(strategy, heads, chosen, rejected, candidates, order_rng)
            labeled += batch_pick(strategy, scores, candidates, args.batch, seed * 100 + round_index)
        curves[strategy] = curve
    return curves


def labels_to_reach(curve: list[float], labels: list[int], target: float) -> float | None:
    """Labels at which `curve` first reaches `target`, linear between rounds; None if never."""
    for index, accuracy in enumerate(curve):
        if accuracy >= target - 1e-12:
            if index == 0:
                return float(labels[0])
            before = curve[index - 1]
            fraction = (target - before) / (accuracy - before)
            return labels[index - 1] + fraction * (labels[index] - labels[index - 1])
    return None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pool", default=str(DEFAULT_DATA), help="pairs to label (HH or TRL JSONL)")
    parser.add_argument("--eval", help="held-out pairs; default: EVAL_SHARE of --pool, by prompt, per seed")
    parser.add_argument(
        "--seeds", type=int, default=40, help="simulations averaged (different splits, seed sets, noise)"
    )
    parser.add_argument("--noise", type=float, default=0.1, help="probability a simulated label is flipped")
    # 20 + 10 x 20 = 220 labels, a quarter of the default pool: the queue picks from many more
    # waiting prompts than a retraining's worth of labels (the docstring has 40 + 10 x 40 too).
    parser.add_argument("--seed-labels", type=int, default=20, help="labels every strategy starts from")
    parser.add_argument("--batch", type=int, default=20, help="labels per round (one retraining)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--members", type=int, default=MEMBERS, help="heads in the ensemble")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--limit", type=int, default=0, help="use only the first N pairs of each file")
    parser.add_argument("--cache-dir", default=str(ROOT / "var" / "bench_cache"), help="'' for none")
    parser.add_argument("--json", "--out", dest="json", help="write the results here")
    parser.add_argument("--plot", help="PNG of accuracy against labels (default: beside --json)")
    parser.add_argument(
        "--small", action="store_true", help=f"a smoke run {SMALL}, no disk cache; not judged"
    )
    args = parser.parse_args()
    if args.small:  # the small sizes become the defaults; options given on the command line still win
        parser.set_defaults(**SMALL, cache_dir="")
        args = parser.parse_args()
    args.strategies = [s for s in args.strategies.split(",") if s]
    unknown = set(args.strategies) - set(STRATEGIES)
    if unknown or args.strategies[:2] != ["breadth_first", "uncertainty"]:
        parser.error(f"--strategies must start with breadth_first,uncertainty; choose from {STRATEGIES}")
    torch.set_num_threads(min(4, os.cpu_count() or 1))

    started = time.perf_counter()
    pool_pairs = pairs_load(Path(args.pool), args.limit)
    eval_pairs = pairs_load(Path(args.eval), args.limit) if args.eval else []
    chosen, rejected = candidate_embeddings(pool_pairs + eval_pairs, args.cache_dir)
    embed_seconds = time.perf_counter() - started
    total = len(pool_pairs) + len(eval_pairs)
    runs = []
    for seed in range(args.seeds):
        if args.eval:
            split = (torch.arange(len(pool_pairs)), torch.arange(len(pool_pairs), total))
        else:  # every pair has its own prompt, so a split of pairs is a split by prompt
            shuffled = torch.randperm(total, generator=torch.Generator().manual_seed(10_000 + seed))
            held = round(total * EVAL_SHARE)
            split = (shuffled[held:], shuffled[:held])
        runs.append(simulate(args, chosen, rejected, split, seed))
        print(f"seed {seed + 1}/{args.seeds} done, {time.perf_counter() - started:.0f} s", file=sys.stderr)

    labels = [args.seed_labels + args.batch * r for r in range(args.rounds + 1)]
    mean = {
        s: [sum(run[s][r] for run in runs) / len(runs) for r in range(len(labels))] for s in args.strategies
    }
    target = mean["breadth_first"][-1]
    ratios = {}
    for strategy in args.strategies[1:]:
        needed = labels_to_reach(mean[strategy], labels, target)
        ratios[strategy] = None if needed is None else needed / labels[-1]
    result = {
        "labels_ratio": ratios["uncertainty"],
        "labels_ratio_by_strategy": ratios,
        "goal": GOAL,
        "goal_met": ratios["uncertainty"] is not None and ratios["uncertainty"] <= GOAL,
        "breadth_first_final_accuracy": target,
        "labels": labels,
        "mean_accuracy": mean,
        "accuracy_by_seed": {s: [run[s] for run in runs] for s in args.strategies},
        "config": {
            "pool": args.pool,
            "eval": args.eval or f"{EVAL_SHARE:.0%} of pool per seed",
            "pairs": total,
            "seeds": args.seeds,
            "noise": args.noise,
            "seed_labels": args.seed_labels,
            "batch": args.batch,
            "rounds": args.rounds,
            "members": args.members,
            "penalty": PENALTY,
            "components": COMPONENTS,
            "exploration_share": EXPLORATION_SHARE,
            "small": args.small,
        },  # fmt: skip
        "embed_seconds": embed_seconds,
        "seconds": time.perf_counter() - started,
        "small": args.small,
    }
    table(result, args.strategies)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2), encoding="utf-8")
    plot = args.plot or (str(Path(args.json).with_suffix(".png")) if args.json else None)
    if plot:
        from png_plot import line_chart_png

        line_chart_png(
            path=Path(plot),
            series={s: list(zip(labels, mean[s], strict=True)) for s in args.strategies},
            title=f"held-out accuracy vs labels, mean of {args.seeds} seeds, noise {args.noise}",
            x_label="labels",
            y_label="accuracy",
        )
        print(f"plot: {plot}")


def table(result: dict, strategies: list[str]) -> None:
    labels = result["labels"]
    print(f"\n{'strategy':<16}" + "".join(f"{n:>7}" for n in labels) + "   labels_ratio")
    for strategy in strategies:
        ratio = result["labels_ratio_by_strategy"].get(strategy)
        note = "" if strategy == "breadth_first" else ("not reached" if ratio is None else f"{ratio:.2f}")
        accuracies = "".join(f"{a:>7.3f}" for a in result["mean_accuracy"][strategy])
        print(f"{strategy:<16}{accuracies}   {note}")
    ratio = result["labels_ratio"]
    shown = "not reached" if ratio is None else f"{ratio:.2f}"
    print(f"labels_ratio (goal <= {GOAL:.2f}): {shown}, goal_met={result['goal_met']}")
    if result["small"]:
        print("small mode: a smoke run, accuracy not judged")


if __name__ == "__main__":
    main()
