"""Candidate generation through the worker path against llama.cpp's own raw generation rate.

For each of a few new prompts: create the prompt, run the periodic top-up (Celery in eager mode, so
the generation task it enqueues runs in this process on commit), and time until the prompt has K
ready candidates. Then replay exactly those samples (same model instance, prompt text, sampling
settings and seeds) straight through llama-cpp-python, with no Django, Celery or database, from
the same cold cache the worker started from.

Each prompt runs `--repeats` times (a tagged copy of the question, since a project holds a prompt
once) and each path's best run per prompt counts, as timeit takes the minimum: other programs on a
shared machine only ever add time. `ratio_to_raw` is the worker path's tokens/s over the raw rate,
both from those best runs (goal: at least 0.9); the ratio over all runs and over CPU time are
printed beside it. It runs against a throwaway SQLite database in a temporary folder and touches
nothing else.

    .venv/bin/python bench/generation.py [--prompts 6] [--repeats 2] [--k 4] [--max-tokens 96] [--json OUT]
    .venv/bin/python bench/generation.py --small --json OUT   # seconds; what `make test` runs
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# --small: one prompt through the whole worker path and its raw replay, a few tokens per candidate.
SMALL = {"prompts": 1, "repeats": 1, "k": 2, "max_tokens": 8}

QUESTIONS = [
    "Explain why the sky is blue to a ten-year-old.",
    "Write a short poem about the sea.",
    "Give me three tips for learning to cook.",
    "What should I pack for a weekend hiking trip?",
    "Describe how a bicycle works.",
    "Why do cats purr?",
    "Write a polite email asking a neighbour to turn down their music.",
    "What are the pros and cons of working from home?",
    "How do I make a good cup of tea?",
    "Summarise the plot of Romeo and Juliet in a few sentences.",
]


class Clock:
    """Wall time and this process's CPU time (all its threads) since creation, until stop()."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def stop(self) -> Clock:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu
        return self


def _django_setup(workdir: Path) -> None:
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'bench.sqlite3'}"
    os.environ["VAR_DIR"] = str(workdir)
    os.environ["CELERY_BROKER_URL"] = "memory://"
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "1"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    # DEBUG is off by default: a throwaway database still needs the production variables.
    os.environ.setdefault("SECRET_KEY", "generation-benchmark-only")
    os.environ.setdefault("ALLOWED_HOSTS", "localhost")
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def run(
    *, prompts: int, repeats: int, k: int, max_tokens: int, temperature: float, model: str, threads: int
) -> dict[str, Any]:
    from django.conf import settings

    from annotation.generation.embedded import REPEAT_PENALTY, EmbeddedBackend, model_load, thread_count
    from annotation.generation.formatting import stop_sequences_merge, turns_to_plain_text
    from annotation.models import Project
    from annotation.services.candidates import candidates_top_up
    from annotation.services.prompts import prompt_create

    project = Project.objects.create(
        name="Generation bench",
        k=k,
        max_tokens=max_tokens,
        temperature=temperature,
        generation_model=model,
        # Large, so that every top-up enqueues the new prompt whatever the pool holds.
        low_water_mark=10_000,
    )
    if threads:
        settings.GENERATION_THREADS = threads  # the worker path reads it when it builds its backend
    backend = EmbeddedBackend(model_path=model or None, threads=threads)
    started = time.perf_counter()
    # Loaded once per process and path, so the worker path below runs on this same model.
    loaded = model_load(path=backend.model_path, threads=backend.threads)
    load_seconds = time.perf_counter() - started
    llama = loaded.llama
    stop = list(stop_sequences_merge(project_stop=[], base_model=True))

    def raw_replay(turns: list[dict[str, str]], seeds: list[int]) -> tuple[Clock, int, list[str]]:
        text = turns_to_plain_text(turns=turns)
        tokens, texts = 0, []
        clock = Clock()
        for seed in seeds:
            out = llama.create_completion(
                text,
                max_tokens=max_tokens,
                temperature=temperature,
                top_p=project.top_p,
                repeat_penalty=REPEAT_PENALTY,
                stop=stop,
                seed=seed,
            )
            tokens += out["usage"]["completion_tokens"]
            texts.append(out["choices"][0]["text"].strip())
        return clock.stop(), tokens, texts

    # Warm-up outside the timings: the first decode allocates buffers in llama.cpp.
    raw_replay([{"role": "user", "content": "Hello?"}], [1])

    rows: list[dict[str, Any]] = []
    for repeat in range(repeats):
        for index in range(prompts):
            question = QUESTIONS[index % len(QUESTIONS)] + (f" ({index})" if index >= len(QUESTIONS) else "")
            # A prompt is unique per project, so a repeat asks the same question with a tag.
            turns = [{"role": "user", "content": question + (f" (run {repeat + 1})" if repeat else "")}]

            llama.reset()  # both paths start from an empty cache, so they sample the very same tokens
            worker = Clock()
            prompt = prompt_create(project=project, turns=turns)
            candidates_top_up()  # enqueues on commit; eager Celery runs the task right there
            worker.stop()
            candidates = list(prompt.candidates.filter(source="model"))
            if len(candidates) != k:
                raise SystemExit(
                    f"prompt {prompt.pk} got {len(candidates)} candidates, not {k}: {prompt.generation_error}"
                )
            llama.reset()
            raw, raw_tokens, raw_texts = raw_replay(turns, [c.seed or 0 for c in candidates])
            rows.append(
                {
                    "prompt": question[:40],
                    "index": index,
                    "repeat": repeat,
                    "worker_seconds": worker.wall,
                    "worker_cpu_seconds": worker.cpu,
                    "worker_tokens": sum(c.completion_tokens or 0 for c in candidates),
                    "raw_seconds": raw.wall,
                    "raw_cpu_seconds": raw.cpu,
                    "raw_tokens": raw_tokens,
                    "same_text": sum(c.text == t for c, t in zip(candidates, raw_texts, strict=True)),
                }
            )

    def rate(chosen: list[dict[str, Any]], path: str, clock: str = "seconds") -> float:
        return sum(row[f"{path}_tokens"] for row in chosen) / sum(row[f"{path}_{clock}"] for row in chosen)

    def best(path: str) -> list[dict[str, Any]]:
        # Per prompt, the repeat where this path ran fastest: other programs only ever add time.
        return [
            max(
                (row for row in rows if row["index"] == index),
                key=lambda row: row[f"{path}_tokens"] / row[f"{path}_seconds"],
            )
            for index in range(prompts)
        ]

    tokens_per_s, raw_tokens_per_s = rate(best("worker"), "worker"), rate(best("raw"), "raw")
    worker_seconds = [row["worker_seconds"] for row in rows]
    sampled = prompts * repeats * k
    return {
        "rows": rows,
        "model": backend.model_name,
        "threads": thread_count(configured=threads),
        "prompts": prompts,
        "repeats": repeats,
        "k": k,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "model_load_seconds": round(load_seconds, 3),
        "completion_tokens": sum(row["worker_tokens"] for row in rows),
        "raw_completion_tokens": sum(row["raw_tokens"] for row in rows),
        "identical_samples": f"{sum(row['same_text'] for row in rows)}/{sampled}",
        "tokens_per_s": round(tokens_per_s, 2),
        "raw_tokens_per_s": round(raw_tokens_per_s, 2),
        "ratio_to_raw": round(tokens_per_s / raw_tokens_per_s, 3),
        "tokens_per_s_all_runs": round(rate(rows, "worker"), 2),
        "raw_tokens_per_s_all_runs": round(rate(rows, "raw"), 2),
        "ratio_to_raw_all_runs": round(rate(rows, "worker") / rate(rows, "raw"), 3),
        "ratio_to_raw_cpu_time": round(
            rate(rows, "worker", "cpu_seconds") / rate(rows, "raw", "cpu_seconds"), 3
        ),
        "candidates_per_s": round(sampled / sum(worker_seconds), 3),
        "raw_candidates_per_s": round(sampled / sum(row["raw_seconds"] for row in rows), 3),
        "seconds_to_k_candidates": round(statistics.median(worker_seconds), 3),
        "seconds_to_k_candidates_best": round(min(worker_seconds), 3),
        "seconds_to_k_candidates_max": round(max(worker_seconds), 3),
    }


def table(result: dict[str, Any]) -> str:
    lines = [
        f"model {result['model']}, {result['threads']} thread(s), K={result['k']}, "
        f"max_tokens={result['max_tokens']}, temperature={result['temperature']}, "
        f"model load {result['model_load_seconds']} s, load average {result['load_average_1min']} "
        f"on {result['cpus']} CPUs",
        "",
        f"{'prompt':42} {'run':>3} {'worker s':>9} {'raw s':>7} {'tokens':>7} {'same':>5} {'ratio':>6}",
    ]
    for row in result["rows"]:
        lines.append(
            f"{row['prompt']:42} {row['repeat'] + 1:3d} {row['worker_seconds']:9.2f} {row['raw_seconds']:7.2f} "
            f"{row['worker_tokens']:7d} {row['same_text']:5d} {row['raw_seconds'] / row['worker_seconds']:6.3f}"
        )
    lines += [
        "",
        f"{'metric':36} {'worker path':>12} {'raw llama.cpp':>14} {'ratio':>7}",
        f"{'tokens/s, best run per prompt':36} {result['tokens_per_s']:12.2f} "
        f"{result['raw_tokens_per_s']:14.2f} {result['ratio_to_raw']:7.3f}",
        f"{'tokens/s, all runs':36} {result['tokens_per_s_all_runs']:12.2f} "
        f"{result['raw_tokens_per_s_all_runs']:14.2f} {result['ratio_to_raw_all_runs']:7.3f}",
        f"{'tokens per CPU-second, all runs':36} {'':12} {'':14} {result['ratio_to_raw_cpu_time']:7.3f}",
        f"{'candidates/s, all runs':36} {result['candidates_per_s']:12.3f} {result['raw_candidates_per_s']:14.3f}",
        f"{'s from new prompt to K: median':36} {result['seconds_to_k_candidates']:12.2f}",
        f"{'s from new prompt to K: best, worst':36} {result['seconds_to_k_candidates_best']:12.2f} "
        f"{result['seconds_to_k_candidates_max']:14.2f}",
        "",
        f"ratio_to_raw (goal >= 0.9): {result['ratio_to_raw']}",
        f"identical samples on replay: {result['identical_samples']}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompts", type=int, default=6, help="new prompts to fill (default 6)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per prompt; the best counts (default 2)")
    parser.add_argument("--k", type=int, default=4, help="candidates per prompt, 2-9 (default 4)")
    parser.add_argument("--max-tokens", type=int, default=96, help="per candidate (default 96)")
    parser.add_argument("--temperature", type=float, default=0.9)
    parser.add_argument("--model", default="", help="a GGUF path (default: the packaged Gemma 3 270M)")
    parser.add_argument(
        "--threads", type=int, default=0, help="llama.cpp threads (default: as a worker picks)"
    )
    parser.add_argument("--json", dest="json_out", help="write the results to this JSON file")
    parser.add_argument(
        "--small",
        action="store_true",
        help=f"a smoke run in seconds ({SMALL['prompts']} prompt, K={SMALL['k']}, "
        f"{SMALL['max_tokens']} tokens each), as `make test` runs it: it must run, its speed is not judged",
    )
    args = parser.parse_args()
    if args.small:  # the small sizes become the defaults; options given on the command line still win
        parser.set_defaults(**SMALL)
        args = parser.parse_args()
    if not 2 <= args.k <= 9 or min(args.prompts, args.repeats, args.max_tokens) < 1:
        parser.error("--k must be 2-9; --prompts, --repeats and --max-tokens at least 1")

    with tempfile.TemporaryDirectory(prefix="bench-generation-") as workdir:
        _django_setup(Path(workdir))
        result = run(
            prompts=args.prompts,
            repeats=args.repeats,
            k=args.k,
            max_tokens=args.max_tokens,
            temperature=args.temperature,
            model=args.model,
            threads=args.threads,
        )
    result["small"] = args.small
    print(table(result))
    if args.small:
        print("small mode: a smoke run, speed not judged")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json_out}")


if __name__ == "__main__":
    main()
