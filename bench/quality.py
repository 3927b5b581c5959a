"""Quality control on simulated labelers: reliability-weighted consensus, signals and gold qualification.

    .venv/bin/python bench/quality.py [--data FILE] [--seed 0] [--out OUT.json]
    .venv/bin/python bench/quality.py --small --json OUT    # what `make test` runs

Data: any HH-RLHF or TRL preference JSONL (default ../shared/data/hh-rlhf-harmless-dev.jsonl).
Prompts and truth: every pair P becomes one K=4 prompt with a known true order: P's chosen answer,
P's rejected answer, then the next pair's chosen and rejected answers (off-topic for P's prompt).
On-topic beats off-topic, and within each the HH labelers' choice is taken as the truth; the answers'
texts only matter for the length-bias signal. Candidate ids are shuffled so that no id order leaks it.

Labelers (60; 15 with --small), a share of them bad at 20 %, 40 % and 60 %, the bad split in thirds:
- careful: ranks by the true order plus Gaussian noise, calibrated so that 90 % of pairs are right;
  median 60 s a task.
- random: a uniformly random order, median 15 s (a random clicker does not read K answers).
- adversarial: a careful labeler's order reversed, careful speed.
- position-biased: submits the order as shown 85 % of the time, otherwise careful; median 40 s.
Each prompt is ranked by 5 labelers (the least loaded first), each seeing a fresh random shown order.
Every labeler first does 10 gold tasks (qualification: pairwise accuracy >= 0.7 passes).

Measured, per bad share: pairwise accuracy against the truth (ties count a half) of the unweighted
ranked-pairs consensus (ranking_math) and of the reliability-weighted one (annotation.reliability,
without gold, and with the gold judgments as anchors); Krippendorff's ordinal alpha; the share of bad
labelers caught by the signals or by qualification (caught) and of careful ones flagged by them; the
same with the reliability estimate as a detector too (reliability < 0.7). A separate check runs the
near-duplicate signal on demonstrations: honest writers (distinct HH answers) and copiers (lightly
edited copies of others' answers and of their own).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Hashable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from annotation.labeler_signals import RankingRecord, near_duplicate_signals, ranking_signals  # noqa: E402
from annotation.ranking_math import consensus_from_orders, rank_map  # noqa: E402
from annotation.reliability import (  # noqa: E402
    judgments_from_rankings,
    rankings_krippendorff_alpha,
    reliability_estimate,
)
from rewards.ml.preference_formats import jsonl_records  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless-dev.jsonl"
K = 4
OVERLAP = 5  # rankings per prompt
CAREFUL_ACCURACY = 0.9
POSITION_FOLLOWS_SHOWN = 0.85
GOLD_TASKS = 10
QUALIFICATION_PASS = 0.7  # pairwise accuracy on gold; careful labelers average 0.9, random 0.5
RELIABILITY_FLAG_BELOW = 0.7
BAD_SHARES = (0.2, 0.4, 0.6)
BAD_KINDS = ("random", "adversarial", "position")
MEDIAN_SECONDS = {"careful": 60.0, "adversarial": 60.0, "position": 40.0, "random": 15.0}
FULL = {"pairs": 0, "labelers": 60, "writers": 40, "copiers": 8, "demos": 10}
SMALL = {"pairs": 48, "labelers": 15, "writers": 10, "copiers": 2, "demos": 5}


def careful_noise() -> float:
    """Noise sigma so that a careful labeler orders CAREFUL_ACCURACY of a K=4 ranking's pairs right:
    true scores K-1..0, each plus N(0, sigma); a pair d apart is right with probability
    Phi(d / (sigma * sqrt 2)). Solved by bisection."""
    gaps = [b - a for a in range(K) for b in range(a + 1, K)]

    def accuracy(sigma: float) -> float:
        return statistics.fmean(0.5 * (1 + math.erf(d / (sigma * 2.0))) for d in gaps)

    low, high = 1e-3, 10.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if accuracy(mid) > CAREFUL_ACCURACY else (low, mid)
    return (low + high) / 2


def prompts_build(pairs: list, rng: random.Random) -> list[dict]:
    """Each prompt: truth (candidate ids best first) and the candidates' texts."""
    ids = list(range(1, K * len(pairs) + 1))
    rng.shuffle(ids)
    prompts = []
    for i, own in enumerate(pairs):
        other = pairs[(i + 1) % len(pairs)]
        truth = ids[K * i : K * (i + 1)]
        texts = dict(zip(truth, [own.chosen, own.rejected, other.chosen, other.rejected], strict=True))
        prompts.append({"id": i, "truth": truth, "texts": texts})
    return prompts


def labeler_order(
    kind: str, truth: list[int], shown: list[int], rng: random.Random, sigma: float
) -> list[list[int]]:
    def careful() -> list[int]:
        scores = {cid: (K - 1 - rank) + rng.gauss(0, sigma) for rank, cid in enumerate(truth)}
        return sorted(truth, key=lambda cid: -scores[cid])

    if kind == "random":
        order = list(truth)
        rng.shuffle(order)
    elif kind == "adversarial":
        order = careful()[::-1]
    elif kind == "position" and rng.random() < POSITION_FOLLOWS_SHOWN:
        order = list(shown)
    else:
        order = careful()
    return [[cid] for cid in order]


def pairwise_accuracy(truth: list[int], order: list[list[int]]) -> float:
    ranks = rank_map(order)
    scores = []
    for i, better in enumerate(truth):
        for worse in truth[i + 1 :]:
            a, b = ranks.get(better), ranks.get(worse)
            scores.append(0.5 if a is None or b is None or a == b else float(a < b))
    return statistics.fmean(scores)


def scenario(prompts: list[dict], gold_prompts: list[dict], bad_share: float, size: dict, seed: int) -> dict:
    rng = random.Random(seed)
    sigma = careful_noise()
    count = size["labelers"]
    bad = round(bad_share * count)
    kinds = [BAD_KINDS[i % len(BAD_KINDS)] for i in range(bad)] + ["careful"] * (count - bad)
    rng.shuffle(kinds)

    qualification_failed = {}
    gold_judgments, gold_truth = [], []
    for labeler, kind in enumerate(kinds):
        scores = []
        for prompt in rng.sample(gold_prompts, GOLD_TASKS):
            shown = rng.sample(prompt["truth"], K)
            order = labeler_order(kind, prompt["truth"], shown, rng, sigma)
            scores.append(pairwise_accuracy(prompt["truth"], order))
            gold_judgments += judgments_from_rankings(rankings=[(("gold", prompt["id"]), labeler, order)])
        qualification_failed[labeler] = statistics.fmean(scores) < QUALIFICATION_PASS
    for prompt in gold_prompts:
        truth = prompt["truth"]
        gold_truth += [(("gold", prompt["id"]), a, b) for i, a in enumerate(truth) for b in truth[i + 1 :]]

    load = Counter({labeler: 0 for labeler in range(count)})
    records: list[RankingRecord] = []
    for prompt in prompts:
        chosen = sorted(range(count), key=lambda lab: (load[lab], rng.random()))[:OVERLAP]
        for labeler in chosen:
            load[labeler] += 1
            shown = rng.sample(prompt["truth"], K)
            order = labeler_order(kinds[labeler], prompt["truth"], shown, rng, sigma)
            seconds = MEDIAN_SECONDS[kinds[labeler]] * math.exp(rng.gauss(0, 0.5))
            records.append(RankingRecord(labeler, prompt["id"], order, shown, seconds))

    rows = [(r.prompt_id, r.labeler_id, r.order) for r in records]
    by_prompt: dict[Hashable, list[RankingRecord]] = {}
    for r in records:
        by_prompt.setdefault(r.prompt_id, []).append(r)
    candidates = {p["id"]: p["truth"] for p in prompts}
    judgments = judgments_from_rankings(rankings=rows)
    started = time.perf_counter()
    estimate = reliability_estimate(judgments=judgments, candidates=candidates)
    em_seconds = time.perf_counter() - started
    anchored = reliability_estimate(
        judgments=judgments + gold_judgments, gold=gold_truth, candidates=candidates
    )

    lengths = {cid: len(text) for p in prompts for cid, text in p["texts"].items()}
    signals = ranking_signals(rankings=records, candidate_lengths=lengths)
    detectors: dict[str, set[Hashable]] = {
        name: {lab for lab, by_name in signals.items() if by_name[name].fires}
        for name in ("position_bias", "repeated_order", "speed", "length_bias")
    }
    detectors["qualification"] = {lab for lab, failed in qualification_failed.items() if failed}
    caught = set().union(*detectors.values())
    detectors["reliability"] = {
        lab for lab, rel in estimate.labelers.items() if rel.reliability < RELIABILITY_FLAG_BELOW
    }
    caught_any = caught | detectors["reliability"]

    def accuracy_of(orders: dict) -> float:
        return statistics.fmean(pairwise_accuracy(p["truth"], orders[p["id"]]) for p in prompts)

    unweighted = {
        pid: consensus_from_orders(orders=[r.order for r in rs]).order for pid, rs in by_prompt.items()
    }
    # Unweighted again, without the labelers the signals or qualification caught (all ties if none is left).
    filtered = {
        p["id"]: consensus_from_orders(
            orders=[r.order for r in by_prompt[p["id"]] if r.labeler_id not in caught] or [[p["truth"]]]
        ).order
        for p in prompts
    }
    bad_ids = {lab for lab, kind in enumerate(kinds) if kind != "careful"}
    careful_ids = set(range(count)) - bad_ids

    def share(found: set[Hashable], among: set[int]) -> float:
        return len(found & among) / len(among) if among else 0.0

    return {
        "bad_share": bad_share,
        "labelers": count,
        "bad_labelers": len(bad_ids),
        "unweighted_accuracy": accuracy_of(unweighted),
        "weighted_accuracy": accuracy_of(estimate.consensus),
        "weighted_gold_accuracy": accuracy_of(anchored.consensus),
        "filtered_accuracy": accuracy_of(filtered),
        "alpha_ordinal": rankings_krippendorff_alpha(rankings=rows),
        "bad_caught_share": share(caught, bad_ids),
        "careful_flagged_share": share(caught, careful_ids),
        "bad_caught_share_with_reliability": share(caught_any, bad_ids),
        "careful_flagged_share_with_reliability": share(caught_any, careful_ids),
        "detectors": {
            name: {
                "bad_caught": share(found, bad_ids),
                "careful_flagged": share(found, careful_ids),
                **{kind: share(found, {lab for lab in bad_ids if kinds[lab] == kind}) for kind in BAD_KINDS},
            }
            for name, found in detectors.items()
        },
        "mean_reliability": {
            kind: statistics.fmean(
                estimate.labelers[lab].reliability for lab in range(count) if kinds[lab] == kind
            )
            for kind in ("careful", *BAD_KINDS)
            if kind in kinds
        },
        "adversarial_flagged": sum(
            estimate.labelers[lab].adversarial for lab in range(count) if kinds[lab] == "adversarial"
        ),
        "non_adversarial_flagged_adversarial": sum(
            estimate.labelers[lab].adversarial for lab in range(count) if kinds[lab] != "adversarial"
        ),
        "judgments": len(judgments),
        "em_seconds": em_seconds,
        "em_iterations": estimate.iterations,
    }


def demonstrations_check(pairs: list, size: dict, seed: int) -> dict:
    """Honest writers write distinct HH answers; copiers paste others' (and their own) with a small edit."""
    rng = random.Random(seed)
    answers = sorted({text for p in pairs for text in (p.chosen, p.rejected) if len(text) >= 40})
    rng.shuffle(answers)
    per, copiers = size["demos"], size["copiers"]
    writers = min(size["writers"], len(answers) // per)
    rows, pool = [], answers[: writers * per]
    for writer in range(writers):
        for j in range(per):
            rows.append((f"w{writer}-{j}", f"writer{writer}", pool[writer * per + j]))
    for copier in range(copiers):
        own: list[str] = []
        for j in range(per):
            source = rng.choice(own) if own and rng.random() < 0.3 else rng.choice(pool)
            words = source.split()
            words.insert(rng.randrange(len(words) + 1), rng.choice(["really", "also", "just", "Sure,"]))
            text = " ".join(words)
            own.append(text)
            rows.append((f"c{copier}-{j}", f"copier{copier}", text))
    started = time.perf_counter()
    signals = near_duplicate_signals(demonstrations=rows)
    seconds = time.perf_counter() - started
    fired = {lab for lab, s in signals.items() if s.fires}
    return {
        "demonstrations": len(rows),
        "copiers_caught_share": sum(f"copier{c}" in fired for c in range(copiers)) / copiers,
        "writers_flagged_share": sum(f"writer{w}" in fired for w in range(writers)) / writers,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="HH-RLHF or TRL preference JSONL")
    parser.add_argument("--small", action="store_true", help="a few dozen prompts: a smoke run")
    parser.add_argument("--out", "--json", dest="out", help="write the results here as JSON")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    size = SMALL if args.small else FULL

    pairs = [pair for _, pair, problem in jsonl_records(Path(args.data).read_text(encoding="utf-8")) if pair]
    rng = random.Random(args.seed)
    rng.shuffle(pairs)
    if size["pairs"]:
        pairs = pairs[: size["pairs"]]
    prompts = prompts_build(pairs, rng)
    # Gold prompts: the same construction over the pairs in reverse, so each pairs different answers.
    gold_prompts = prompts_build(pairs[::-1], rng)[: GOLD_TASKS * 3]

    results: dict = {"small": args.small, "data": args.data, "seed": args.seed, "prompts": len(prompts)}
    for bad_share in BAD_SHARES:
        tag = round(bad_share * 100)
        outcome = scenario(prompts, gold_prompts, bad_share, size, args.seed * 1000 + tag)
        results[f"scenario_{tag}"] = outcome
        for key in ("weighted_accuracy", "unweighted_accuracy", "bad_caught_share", "careful_flagged_share"):
            results[f"{key}_{tag}"] = outcome[key]
    results["bad_caught_share"] = results["bad_caught_share_40"]
    results["careful_flagged_share"] = results["careful_flagged_share_40"]
    results["demonstrations"] = demonstrations_check(pairs, size, args.seed)
    results["goal"] = (
        "40 % bad: weighted >= 0.9 and >= unweighted + 0.10; caught >= 0.9, careful flagged <= 0.05"
    )
    results["goal_met"] = (
        results["weighted_accuracy_40"] >= 0.9
        and results["weighted_accuracy_40"] - results["unweighted_accuracy_40"] >= 0.10
        and results["bad_caught_share"] >= 0.9
        and results["careful_flagged_share"] <= 0.05
    )
    table(results)
    if args.small:
        print("small mode: a smoke run, accuracy and catch rates not judged")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2), encoding="utf-8")


def table(results: dict) -> None:
    print(f"prompts {results['prompts']}, K={K}, {OVERLAP} rankings each, gold {GOLD_TASKS} per labeler")
    print(
        f"\n{'bad share':<10}{'unweighted':>11}{'weighted':>10}{'w+gold':>8}{'filtered':>10}"
        f"{'alpha':>7}{'caught':>8}{'careful flagged':>17}{'+reliability':>14}{'EM s':>7}"
    )
    for bad_share in BAD_SHARES:
        s = results[f"scenario_{round(bad_share * 100)}"]
        print(
            f"{bad_share:<10.0%}{s['unweighted_accuracy']:>11.3f}{s['weighted_accuracy']:>10.3f}"
            f"{s['weighted_gold_accuracy']:>8.3f}{s['filtered_accuracy']:>10.3f}{s['alpha_ordinal'] or 0:>7.3f}"
            f"{s['bad_caught_share']:>8.0%}{s['careful_flagged_share']:>17.0%}"
            f"{s['bad_caught_share_with_reliability']:>7.0%}/{s['careful_flagged_share_with_reliability']:<6.0%}"
            f"{s['em_seconds']:>7.2f}"
        )
    s40 = results["scenario_40"]
    print(
        f"\n{'detector (40 % bad)':<22}{'bad caught':>11}{'careful':>9}"
        + "".join(f"{k:>13}" for k in BAD_KINDS)
    )
    for name, d in s40["detectors"].items():
        print(
            f"{name:<22}{d['bad_caught']:>11.0%}{d['careful_flagged']:>9.0%}"
            + "".join(f"{d[k]:>13.0%}" for k in BAD_KINDS)
        )
    print("mean reliability (40 %): " + ", ".join(f"{k} {v:.2f}" for k, v in s40["mean_reliability"].items()))
    print(f"EM: {s40['judgments']} judgments in {s40['em_seconds']:.3f} s, {s40['em_iterations']} iterations")
    d = results["demonstrations"]
    print(
        f"near-duplicates: {d['demonstrations']} demonstrations, copiers caught {d['copiers_caught_share']:.0%}, "
        f"honest writers flagged {d['writers_flagged_share']:.0%}, {d['seconds']:.2f} s"
    )
    print(f"goal_met: {results['goal_met']} ({results['goal']})")


if __name__ == "__main__":
    main()
