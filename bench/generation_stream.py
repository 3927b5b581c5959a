"""The embedded backend's batched stream (K answers in one llama_decode per step) against llama.cpp's
own streaming of one answer, and of K answers one after another.

For each prompt and repeat, three runs on the packaged model, all with the project's sampling and
the same seeds:
- `batched`: EmbeddedBackend.stream with K seeds, all answers sampled together;
- `single`: llama-cpp-python's create_completion(stream=True) for the first seed only;
- `sequential`: the same for each of the K seeds in turn (what a stream without batching costs).
Each reports generated tokens over wall time, and the time to the first shown piece. The best run
per prompt counts, as timeit takes the minimum (other programs on a shared machine only add time).
`batched_over_single` is the batched rate over the single-answer rate: how many times as many
tokens per second K answers together give as one answer alone.

    .venv/bin/python bench/generation_stream.py [--prompts 3] [--repeats 2] [--k 4] [--max-tokens 96] [--json OUT]
    .venv/bin/python bench/generation_stream.py --small --json OUT   # seconds; what `make test` runs
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from annotation.generation.base import SamplingParams  # noqa: E402
from annotation.generation.embedded import (  # noqa: E402
    REPEAT_PENALTY,
    EmbeddedBackend,
    model_load,
)
from annotation.generation.formatting import stop_sequences_merge, turns_to_plain_text  # noqa: E402

# --small: one prompt, two short answers: checks that every path runs, in seconds.
SMALL = {"prompts": 1, "repeats": 1, "k": 2, "max_tokens": 8}
QUESTIONS = [
    "Write a short poem about the sea.",
    "Explain why the sky is blue to a ten-year-old.",
    "Give me three tips for learning to cook.",
    "Describe how a bicycle works.",
]
# The project defaults (annotation/models/projects.py).
TEMPERATURE, TOP_P = 0.9, 0.95


def run_batched(
    backend: EmbeddedBackend, *, turns: list[dict[str, str]], sampling: SamplingParams, seeds: list[int]
) -> dict[str, float]:
    started = time.perf_counter()
    first = None
    tokens = 0
    for event in backend.stream(turns=turns, sampling=sampling, seeds=seeds):
        if event.text and first is None:
            first = time.perf_counter() - started
        if event.done and event.completion is not None:
            tokens += event.completion.completion_tokens or 0
    seconds = time.perf_counter() - started
    return {"tokens": tokens, "seconds": seconds, "first_piece_s": first or seconds}


def run_llama_stream(
    llama: Any, *, prompt: str, sampling: SamplingParams, seeds: list[int]
) -> dict[str, float]:
    """create_completion(stream=True) for each seed in turn, as generate() samples them."""
    from llama_cpp import StoppingCriteriaList

    stop = list(stop_sequences_merge(project_stop=sampling.stop, base_model=True))
    started = time.perf_counter()
    first = None
    tokens = 0

    def count(_input_ids: Any, _logits: Any) -> bool:
        # Called once per sampled token: a stream's chunks are not one per token. It counts an
        # end-of-generation token too, which the batched count leaves out: this favours llama.cpp.
        nonlocal tokens
        tokens += 1
        return False

    for seed in seeds:
        for chunk in llama.create_completion(
            prompt,
            max_tokens=sampling.max_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            repeat_penalty=REPEAT_PENALTY,
            stop=stop,
            seed=seed,
            stream=True,
            stopping_criteria=StoppingCriteriaList([count]),
        ):
            if chunk["choices"][0]["text"] and first is None:
                first = time.perf_counter() - started
    seconds = time.perf_counter() - started
    return {"tokens": tokens, "seconds": seconds, "first_piece_s": first or seconds}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompts", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--threads", type=int, default=0, help="llama.cpp threads (0: half the CPUs)")
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.small:
        for name, value in SMALL.items():
            setattr(args, name, value)

    backend = EmbeddedBackend(threads=args.threads)
    loaded = model_load(path=backend.model_path, threads=args.threads)
    sampling = SamplingParams(temperature=TEMPERATURE, top_p=TOP_P, max_tokens=args.max_tokens)
    seeds = [101 + slot for slot in range(args.k)]
    # Warm both contexts (the stream's is made on first use) so no run pays for setting up.
    warm_up = [{"role": "user", "content": "Hi"}]
    run_batched(backend, turns=warm_up, sampling=sampling, seeds=seeds[:1])
    with loaded.lock:
        run_llama_stream(
            loaded.llama, prompt=turns_to_plain_text(turns=warm_up), sampling=sampling, seeds=seeds[:1]
        )

    rows: list[dict[str, Any]] = []
    print(f"{'prompt':<8}{'path':<12}{'run':>4}{'tokens':>8}{'seconds':>9}{'tokens/s':>10}{'first s':>9}")
    for number, question in enumerate(QUESTIONS[: args.prompts]):
        turns = [{"role": "user", "content": question}]
        prompt = turns_to_plain_text(turns=turns)
        for repeat in range(args.repeats):
            runs = {
                "batched": run_batched(backend, turns=turns, sampling=sampling, seeds=seeds),
            }
            with loaded.lock:
                runs["single"] = run_llama_stream(
                    loaded.llama, prompt=prompt, sampling=sampling, seeds=seeds[:1]
                )
                runs["sequential"] = run_llama_stream(
                    loaded.llama, prompt=prompt, sampling=sampling, seeds=seeds
                )
            for path, run in runs.items():
                rate = run["tokens"] / run["seconds"] if run["seconds"] else 0.0
                rows.append({"prompt": number, "path": path, "repeat": repeat, **run, "tokens_per_s": rate})
                print(
                    f"{number:<8}{path:<12}{repeat:>4}{run['tokens']:>8}{run['seconds']:>9.2f}"
                    f"{rate:>10.1f}{run['first_piece_s']:>9.3f}"
                )

    def best_rate(path: str) -> float:
        """Tokens over seconds of each prompt's fastest run of `path`, summed over the prompts."""
        best = [
            min(
                (row for row in rows if row["path"] == path and row["prompt"] == number),
                key=lambda row: row["seconds"],
            )
            for number in range(args.prompts)
        ]
        return sum(row["tokens"] for row in best) / sum(row["seconds"] for row in best)

    rates = {path: best_rate(path) for path in ("batched", "single", "sequential")}
    result = {
        "small": args.small,
        "k": args.k,
        "max_tokens": args.max_tokens,
        "threads": loaded.llama.n_threads,
        "model": backend.model_name,
        "batched_tokens_per_s": rates["batched"],
        "single_tokens_per_s": rates["single"],
        "sequential_tokens_per_s": rates["sequential"],
        "batched_over_single": rates["batched"] / rates["single"] if rates["single"] else 0.0,
        "rows": rows,
    }
    print(
        f"tokens/s, best run per prompt: batched K={args.k} {rates['batched']:.1f}, single "
        f"{rates['single']:.1f}, sequential K={args.k} {rates['sequential']:.1f}"
    )
    print(f"batched_over_single: {result['batched_over_single']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
