#!/usr/bin/env python
"""Converse turns as a labeler sees them: time to first token and streamed tokens/s, on the real stack,
against llama.cpp's own streaming of the same prompts in the same run.

It starts what `make run` starts for a conversation, on the embedded defaults (SQLite and the on-disk
broker in a temporary VAR_DIR): gunicorn and a Celery worker on the `live` queue, both as
Procfile.embedded runs them (no beat: nothing periodic is measured). A project with K replies per
turn is seeded with prompts (the first human turns of HH-RLHF's harmless split, or built-in ones).
Each simulated labeler leases a converse task over HTTP, reads its server-sent events with a plain
HTTP client (token auth), submits the turn with a next user turn to go on (a fresh lease once a
conversation reaches its last turn), and so on; the last turn ends its conversation, so no
generation runs after a phase. Labelers do not pause to rank: the worst case for the worker.

Per turn:
- TTFT: from the request that started the turn (the lease, or the previous turn's submission) to the
  first event that carries text;
- streamed tokens/s: the turn's tokens, all K replies together, over the time from that first text
  to the `end` event. Tokens are the model's sampled tokens (each slot's candidate's
  completion_tokens; end-of-generation tokens not counted), the same count as for llama.cpp below.
  The LiveGeneration row's `tokens` (events that carried text) is reported beside it.
- where the time to first token goes, from the row: the web request until the row is queued,
  broker pickup (started_at - queued_at), the model until its first token (first_token_at -
  started_at: prompt evaluation, and loading the model in a cold worker), and the SSE poll
  (first text received - first_token_at).
Raw llama.cpp: after the live phases, in this process, the same model file and thread count as the
worker: create_completion(stream=True) for each turn of the one-labeler phase, on the same prompt
(the conversation so far), sampling and seeds, the K answers one after another.

    .venv/bin/python bench/conversation.py [--turns 6] [--k 4] [--max-tokens 64] [--json OUT]
    .venv/bin/python bench/conversation.py --small --json OUT   # a minute; what `make test` runs
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from queue_load import free_port, percentile, server_stop  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless-dev.jsonl"
GOAL_TTFT_P50_S = 1.0
GOAL_RATIO_TO_RAW = 0.9
# As Procfile.embedded runs them.
WEB_WORKERS, WEB_THREADS, LIVE_CONCURRENCY = 2, 4, 2
SMALL = {"labelers": 2, "turns": 2, "turns_many": 2, "k": 2, "max_tokens": 16, "prompts": 6}
FALLBACK_QUESTIONS = [
    "Write a short poem about the sea.",
    "Explain why the sky is blue to a ten-year-old.",
    "Give me three tips for learning to cook.",
    "Describe how a bicycle works.",
    "What should I pack for a weekend hike?",
    "How do I make my houseplants live longer?",
]
NEXT_USER_TURN = "Tell me more about that."
PRELOADED = "preloaded for live turns"  # what each live pool process logs once its models are loaded


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--labelers", type=int, default=4, help="labelers at once in the second phase")
    parser.add_argument("--turns", type=int, default=6, help="turns of the single labeler (default 6)")
    parser.add_argument("--turns-many", type=int, default=4, help="turns per labeler with many at once")
    parser.add_argument("--k", type=int, default=4, help="replies per turn (default 4)")
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens per reply at most (default 64)")
    parser.add_argument("--max-turns", type=int, default=3, help="turns a conversation may reach")
    parser.add_argument("--prompts", type=int, default=40, help="prompts to seed (default 40)")
    parser.add_argument("--json", "--out", dest="json", type=Path, help="write the results here as JSON")
    parser.add_argument("--small", action="store_true", help="K=2, 16 tokens, 1 and 2 labelers, 2 turns")
    args = parser.parse_args()
    if args.small:
        parser.set_defaults(**SMALL)
        args = parser.parse_args()
    if min(args.labelers, args.turns, args.turns_many, args.k, args.max_tokens, args.max_turns) < 1:
        parser.error("every count must be positive")
    if args.k < 2:
        parser.error("--k must be at least 2: a turn needs two replies to rank")
    return args


def opening_questions(count: int) -> list[str]:
    """The first human turn of each HH-RLHF transcript (see the data README), else built-in questions."""
    questions: list[str] = []
    if DATA.is_file():
        with DATA.open(encoding="utf-8") as lines:
            for line in lines:
                first = json.loads(line)["chosen"].split("\n\nHuman: ", 1)[-1].split("\n\nAssistant:", 1)[0]
                if first.strip() and first.strip() not in questions:
                    questions.append(first.strip())
                if len(questions) == count:
                    break
    while len(questions) < count:
        questions.append(f"{FALLBACK_QUESTIONS[len(questions) % len(FALLBACK_QUESTIONS)]} ({len(questions)})")
    return questions


# ---- the stack --------------------------------------------------------------------------------------
def stack_environment(var_dir: str) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_TASK_ALWAYS_EAGER"):
        env.pop(name, None)  # the embedded defaults: SQLite and the on-disk broker under VAR_DIR
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="0",
        SECRET_KEY="conversation-benchmark-only",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="false",
        VAR_DIR=var_dir,
        LOG_LEVEL="WARNING",
        HF_HUB_OFFLINE="1",
    )
    return env


def seed(args: argparse.Namespace, names: list[str]) -> tuple[int, dict[str, str]]:
    """A converse project with prompts, and labelers with tokens. Returns (project id, {name: token})."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from annotation.models import Membership, Project, Prompt
    from annotation.services.prompts import turns_hash

    project = Project.objects.create(
        name="Conversation benchmark", k=args.k, max_tokens=args.max_tokens, ratings_required=False,
        converse_per_prompt=min(20, len(names)), converse_max_turns=args.max_turns,
    )  # fmt: skip
    users = [get_user_model().objects.create(username=name, password="!") for name in names]
    Membership.objects.bulk_create(Membership(project=project, user=user) for user in users)
    prompts = []
    for question in opening_questions(args.prompts):
        turns = [{"role": "user", "content": question}]
        prompts.append(Prompt(project=project, turns=turns, content_hash=turns_hash(turns=turns)))
    Prompt.objects.bulk_create(prompts)
    return project.pk, {user.username: Token.objects.create(user=user).key for user in users}


def process_start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_until(check: Any, *, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise SystemExit(f"{what} did not start within {seconds:.0f} s")


def stack_start(env: dict[str, str], var_dir: Path, port: int) -> list[subprocess.Popen]:
    import requests

    binaries = Path(sys.executable).parent
    web = process_start(
        [str(binaries / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{port}",
         "--workers", str(WEB_WORKERS), "--threads", str(WEB_THREADS),
         "--control-socket", str(var_dir / "gunicorn.ctl")],
        env, var_dir / "web.log",
    )  # fmt: skip
    live_log = var_dir / "live.log"
    live = process_start(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--queues", "live", "--concurrency",
         str(LIVE_CONCURRENCY), "--hostname", "live@%h", "--loglevel", "INFO"],
        {**env, "LOG_LEVEL": "INFO"}, live_log,
    )  # fmt: skip

    def web_answers() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    wait_until(web_answers, seconds=60, what="gunicorn")
    wait_until(lambda: "ready." in live_log.read_text(errors="replace"), seconds=90, what="the live worker")
    return [web, live]


def live_preload_wait(var_dir: Path, *, seconds: float) -> float | None:
    """Seconds until every live pool process says it preloaded its models (config/celery.py); None
    when they do not within `seconds` (a worker without the hook loads on first use)."""
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        if (var_dir / "live.log").read_text(errors="replace").count(PRELOADED) >= LIVE_CONCURRENCY:
            return time.monotonic() - began
        time.sleep(0.2)
    return None


# ---- one labeler ------------------------------------------------------------------------------------
class Labeler:
    def __init__(self, *, base: str, token: str, project: int) -> None:
        import requests

        self.base, self.project = base, project
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"

    def lease(self) -> int:
        response = self.session.post(
            f"{self.base}/api/labeler/assignments/lease/", json={"kind": "converse", "project": self.project}
        )
        if response.status_code not in (200, 201):
            raise RuntimeError(f"lease answered {response.status_code}: {response.text[:300]}")
        return int(response.json()["id"])

    def follow(self, assignment_id: int) -> dict[str, Any]:
        """Read the turn's events to the end: when the first text arrived, when it ended, its status."""
        first: float | None = None
        events = 0
        while True:  # a stream ends after MAX_STREAM_SECONDS while running; the page reconnects, so do we
            response = self.session.get(
                f"{self.base}/api/labeler/assignments/{assignment_id}/live/stream",
                stream=True,
                timeout=(5, 60),
            )
            response.raise_for_status()
            buffer, state = b"", None
            for chunk in response.iter_content(chunk_size=None):
                buffer += chunk
                while b"\n\n" in buffer:
                    block, buffer = buffer.split(b"\n\n", 1)
                    lines = block.decode().splitlines()
                    name = next((line[7:] for line in lines if line.startswith("event: ")), None)
                    data = json.loads(next((line[6:] for line in lines if line.startswith("data: ")), "null"))
                    events += name in ("snapshot", "delta")
                    texts = (
                        [piece for _, piece in data["slots"]]
                        if name == "delta"
                        else (data or {}).get("texts", [])
                    )
                    if first is None and any(texts):
                        first = time.time()
                    if name == "end":
                        state = data
            response.close()
            if state is None or state["status"] in ("done", "failed", "stalled"):
                ended = time.time()
                return {"first": first, "ended": ended, "status": state and state["status"], "events": events}

    def submit(self, assignment_id: int, *, go_on: bool) -> tuple[int | None, float]:
        """Rank the replies as shown, go on or end; (the next turn's task, when it was asked for)."""
        task = self.session.get(f"{self.base}/api/labeler/assignments/{assignment_id}/").json()
        go_on = go_on and task["conversation"]["can_continue"]
        body = {
            "idempotency_key": uuid.uuid4().hex,
            "order": [[candidate["id"]] for candidate in task["candidates"]],
            "next_user_turn": NEXT_USER_TURN if go_on else "",
        }
        posted = time.time()
        response = self.session.post(f"{self.base}/api/labeler/assignments/{assignment_id}/turn/", json=body)
        if response.status_code != 201:
            raise RuntimeError(f"turn submission answered {response.status_code}: {response.text[:300]}")
        return response.json()["next_assignment"], posted

    def converse(self, *, name: str, turns: int, start: threading.Barrier, rows: list[dict]) -> None:
        start.wait()
        next_turn: int | None = None
        requested = 0.0
        for number in range(turns):
            if next_turn is None:
                requested = time.time()
                next_turn = self.lease()
            assignment_id = next_turn
            seen = self.follow(assignment_id)
            retries = 0
            while seen["status"] != "done" and retries < 2:  # too few distinct replies, or a failure
                retries += 1
                self.session.post(f"{self.base}/api/labeler/assignments/{assignment_id}/live/retry/")
                seen = self.follow(assignment_id)
            rows.append({"labeler": name, "turn": number, "assignment": assignment_id, "requested": requested,
                         "retries": retries, **seen})  # fmt: skip
            next_turn, requested = self.submit(assignment_id, go_on=number < turns - 1)


def phase_run(*, base: str, project: int, tokens: dict[str, str], turns: int) -> tuple[list[dict], float]:
    """Every labeler in `tokens` converses `turns` turns, all starting together; (turn rows, wall seconds)."""
    rows: list[dict] = []
    start = threading.Barrier(len(tokens) + 1)
    errors: list[BaseException] = []

    def run(name: str, token: str) -> None:
        try:
            Labeler(base=base, token=token, project=project).converse(
                name=name, turns=turns, start=start, rows=rows
            )
        except BaseException as error:  # reported after the phase, with the others' numbers
            errors.append(error)

    threads = [threading.Thread(target=run, args=item) for item in tokens.items()]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.time()
    for thread in threads:
        thread.join()
    if errors:
        raise SystemExit(f"a labeler failed: {errors[0]!r}")
    return rows, time.time() - began


def rows_complete(rows: list[dict]) -> None:
    """Add what the worker recorded on each turn's LiveGeneration row: timings and token counts."""
    from annotation.models import Candidate, LiveGeneration

    for row in rows:
        live = LiveGeneration.objects.get(assignment_id=row["assignment"])
        candidates = Candidate.objects.filter(prompt_id=live.prompt_id, seed__isnull=False)
        sampled = {pk: (prompt_tokens, tokens) for pk, prompt_tokens, tokens in
                   candidates.values_list("pk", "prompt_tokens", "completion_tokens")}  # fmt: skip
        row["tokens"] = sum(sampled[pk][1] or 0 for pk in live.candidate_ids if pk in sampled)
        row["prompt_tokens"] = next((value[0] for value in sampled.values()), None)
        row["row_tokens"] = live.tokens
        row["prompt"], row["seeds"] = live.prompt_id, list(live.seeds)
        stamps = [live.queued_at, live.started_at, live.first_token_at, live.finished_at]
        when = [stamp.timestamp() for stamp in stamps if stamp is not None]
        row["ttft_s"] = row["first"] - row["requested"] if row["first"] else None
        row["stream_s"] = row["ended"] - row["first"] if row["first"] else None
        row["tokens_per_s"] = row["tokens"] / row["stream_s"] if row["stream_s"] else 0.0
        if row["retries"] == 0 and len(when) == len(stamps):
            queued, started, first_token, finished = when
            row["web_s"] = queued - row["requested"]
            row["pickup_s"] = started - queued
            row["model_first_token_s"] = first_token - started
            row["sse_s"] = row["first"] - first_token
            row["worker_stream_s"] = finished - first_token


def phase_summary(rows: list[dict], wall: float) -> dict[str, Any]:
    good = [row for row in rows if row["retries"] == 0 and row["ttft_s"] is not None]
    ttft = [row["ttft_s"] for row in good]
    per_labeler = {}
    for name in sorted({row["labeler"] for row in good}):
        mine = [row for row in good if row["labeler"] == name]
        per_labeler[name] = sum(row["tokens"] for row in mine) / sum(row["stream_s"] for row in mine)
    parts = ("web_s", "pickup_s", "model_first_token_s", "sse_s")
    return {
        "labelers": len({row["labeler"] for row in rows}),
        "turns": len(rows),
        "turns_retried": len(rows) - len(good),
        "ttft_p50_s": percentile(ttft, 50),
        "ttft_p95_s": percentile(ttft, 95),
        "turn_tokens_per_s_mean": statistics.fmean(row["tokens_per_s"] for row in good) if good else 0.0,
        "labeler_tokens_per_s_mean": statistics.fmean(per_labeler.values()) if per_labeler else 0.0,
        "aggregate_tokens_per_s": sum(row["tokens"] for row in rows) / wall,
        "tokens": sum(row["tokens"] for row in rows),
        "row_tokens": sum(row["row_tokens"] for row in rows),
        "wall_s": wall,
        "labeler_tokens_per_s": per_labeler,
        "ttft_parts_p50_s": {
            part: percentile([row[part] for row in good if part in row], 50) for part in parts
        },
    }


# ---- raw llama.cpp ---------------------------------------------------------------------------------
def raw_run(rows: list[dict], *, sampling: Any) -> dict[str, Any]:
    """llama.cpp's own streaming of each row's prompt, its K seeds one after another."""
    import llama_cpp
    from django.conf import settings

    from annotation.generation.embedded import (
        CONTEXT_TOKENS,
        REPEAT_PENALTY,
        packaged_model_path,
        thread_count,
    )
    from annotation.generation.formatting import stop_sequences_merge, turns_to_plain_text
    from annotation.models import Prompt

    # The worker's streaming context runs prompt and steps on `threads` (embedded_stream); so does
    # this. Llama's default batch thread count is every CPU, whose spare threads spin on a busy
    # machine: on 2 loaded CPUs that made llama.cpp's first token 1-4 s instead of 0.3 s.
    threads = thread_count(configured=settings.GENERATION_THREADS)
    began = time.perf_counter()
    llama: Any = llama_cpp.Llama(
        model_path=str(packaged_model_path()), n_ctx=CONTEXT_TOKENS, n_threads=threads,
        n_threads_batch=threads, verbose=False,
    )  # fmt: skip
    load_s, sampled = time.perf_counter() - began, [0]
    original_sample = llama.sample

    def counting_sample(*args: Any, **kwargs: Any) -> int:
        # Counts what the model sampled, end-of-generation aside, as the live path's completion_tokens do.
        token = original_sample(*args, **kwargs)
        sampled[0] += not llama_cpp.llama_vocab_is_eog(llama._model.vocab, token)
        return token

    llama.sample = counting_sample
    stop = list(stop_sequences_merge(project_stop=sampling.stop, base_model=True))

    def answers(prompt: str, seeds: list[int], max_tokens: int) -> dict[str, float]:
        sampled[0], started, first = 0, time.perf_counter(), None
        for seed in seeds:
            for chunk in llama.create_completion(
                prompt, max_tokens=max_tokens, temperature=sampling.temperature, top_p=sampling.top_p,
                repeat_penalty=REPEAT_PENALTY, stop=stop, seed=seed, stream=True,
            ):  # fmt: skip
                if first is None and chunk["choices"][0]["text"]:
                    first = time.perf_counter()
        ended = time.perf_counter()
        first = first or ended
        return {"tokens": sampled[0], "first_token_s": first - started, "stream_s": ended - first,
                "total_s": ended - started}  # fmt: skip

    answers("Hi", [1], 4)  # warm: the first call sets up buffers
    runs = []
    for row in rows:
        prompt = turns_to_plain_text(turns=Prompt.objects.get(pk=row["prompt"]).turns)
        llama.reset()  # each turn's prompt evaluated whole, as the live worker does; K answers share it
        run = answers(prompt, row["seeds"], sampling.max_tokens)
        run["tokens_per_s"] = run["tokens"] / run["stream_s"] if run["stream_s"] else 0.0
        runs.append(run)
    llama.close()  # now, while llama.cpp is loaded; at interpreter exit its destructor prints tracebacks
    return {
        "threads": threads,
        "load_s": load_s,
        "turns": len(runs),
        "first_token_p50_s": percentile([run["first_token_s"] for run in runs], 50),
        "turn_tokens_per_s_mean": statistics.fmean(run["tokens_per_s"] for run in runs),
        "tokens_per_s_with_prompt": sum(run["tokens"] for run in runs) / sum(run["total_s"] for run in runs),
        "tokens": sum(run["tokens"] for run in runs),
        "runs": runs,
    }


# ---- main -------------------------------------------------------------------------------------------
def report_print(report: dict[str, Any]) -> None:
    phases, raw, goals = report["phases"], report["raw"], report["goals"]
    print(f"\n{'path':<24}{'turns':>6}{'TTFT p50 s':>11}{'p95 s':>7}{'tok/s turn':>11}{'tok/s labeler':>14}"
          f"{'tok/s all':>10}{'load 1m':>8}")  # fmt: skip
    for count, phase in phases.items():
        print(f"{f'live, {count} labeler(s)':<24}{phase['turns']:>6}{phase['ttft_p50_s']:>11.3f}"
              f"{phase['ttft_p95_s']:>7.3f}{phase['turn_tokens_per_s_mean']:>11.1f}"
              f"{phase['labeler_tokens_per_s_mean']:>14.1f}{phase['aggregate_tokens_per_s']:>10.1f}"
              f"{phase['load_average_1m']:>8.2f}")  # fmt: skip
    print(f"{'raw llama.cpp, K in turn':<24}{raw['turns']:>6}{raw['first_token_p50_s']:>11.3f}{'':>7}"
          f"{raw['turn_tokens_per_s_mean']:>11.1f}{'':>14}{raw['tokens_per_s_with_prompt']:>10.1f}"
          f"{raw['load_average_1m']:>8.2f}")  # fmt: skip
    preload = report["live_preload_s"]
    preloaded = f"{preload:.1f} s after it was ready" if preload is not None else "NOT (loads on first use)"
    print(f"live worker: models preloaded {preloaded}; "
          f"warm-up TTFT, a first turn per pool process: "
          f"{', '.join(f'{value:.2f} s' for value in report['warmup_ttft_s'])}; "
          f"a model load here takes {raw['load_s']:.2f} s; threads {raw['threads']}")  # fmt: skip
    print("TTFT p50 parts, s: web request | broker pickup | model to first token | SSE poll")
    for count, phase in phases.items():
        parts = phase["ttft_parts_p50_s"]
        print(f"  {count} labeler(s): {parts['web_s']:.3f} | {parts['pickup_s']:.3f} | "
              f"{parts['model_first_token_s']:.3f} | {parts['sse_s']:.3f}")  # fmt: skip
    print(f"one labeler, per turn:\n  {'turn':>4}{'prompt tok':>11}{'TTFT s':>8}{'pickup':>8}{'model':>7}"
          f"{'SSE':>7}{'tok/s':>7} | raw {'first s':>8}{'tok/s':>7}")  # fmt: skip
    for row, run in zip(report["rows"]["1"], raw["runs"], strict=True):
        if "model_first_token_s" in row:
            print(f"  {row['turn']:>4}{row['prompt_tokens'] or 0:>11}{row['ttft_s']:>8.2f}"
                  f"{row['pickup_s']:>8.2f}{row['model_first_token_s']:>7.2f}{row['sse_s']:>7.3f}"
                  f"{row['tokens_per_s']:>7.1f} | raw "
                  f"{run['first_token_s']:>8.2f}{run['tokens_per_s']:>7.1f}")  # fmt: skip
    one = phases["1"]
    print(f"tokens: sampled, all K ({one['tokens']} in the one-labeler phase; the row's `tokens`, events "
          f"with text, {one['row_tokens']}); raw llama.cpp {raw['tokens']}")  # fmt: skip
    start, end = report["load_average_start"], report["load_average_end"]
    print(f"load average (1, 5, 15 min) at start {start}, at end {end}, on {report['cpus']} CPUs")
    print(f"goal TTFT p50 < {GOAL_TTFT_P50_S} s with one labeler: "
          f"{'met' if goals['ttft_p50_one_labeler'] else 'NOT met'}")  # fmt: skip
    print(f"ratio_to_raw (goal >= {GOAL_RATIO_TO_RAW}): {report['ratio_to_raw']:.2f} "
          f"{'met' if goals['ratio_to_raw'] else 'NOT met'}")  # fmt: skip


def main() -> int:
    args = parse_args()
    var_dir = Path(tempfile.mkdtemp(prefix="conversation-bench-"))
    env = stack_environment(str(var_dir))
    os.environ.clear()
    os.environ.update(env)  # this process reads the same database, to seed it and read the rows
    sys.path.insert(0, str(ROOT))
    load_start = [round(value, 2) for value in os.getloadavg()]
    migrate = [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"]
    subprocess.run(migrate, cwd=ROOT, env=env, check=True)
    import django

    django.setup()
    from annotation.models import Project
    from annotation.services.generation import generation_sampling_get

    warm_names = [f"warm{index}" for index in range(LIVE_CONCURRENCY)]
    names = [f"labeler{index}" for index in range(args.labelers)]
    project_id, tokens = seed(args, names + warm_names)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    print(f"VAR_DIR {var_dir}; starting gunicorn and the live worker as Procfile.embedded ...", flush=True)
    processes = stack_start(env, var_dir, port)
    preload_s = live_preload_wait(var_dir, seconds=120)
    phases: dict[str, dict[str, Any]] = {}
    all_rows: dict[str, list[dict]] = {}
    try:
        # One turn per worker process at once, so each has the model before anything is timed: what
        # the first labelers after a start wait.
        warm_rows, _ = phase_run(
            base=base, project=project_id, tokens={n: tokens[n] for n in warm_names}, turns=1
        )
        rows_complete(warm_rows)
        plan = [(1, args.turns)] + ([(args.labelers, args.turns_many)] if args.labelers > 1 else [])
        for count, turns in plan:
            load = os.getloadavg()[0]
            labelers = {name: tokens[name] for name in names[:count]}
            rows, wall = phase_run(base=base, project=project_id, tokens=labelers, turns=turns)
            rows_complete(rows)
            phases[str(count)] = {**phase_summary(rows, wall), "load_average_1m": load}
            all_rows[str(count)] = rows
            print(f"{count} labeler(s): {len(rows)} turns in {wall:.1f} s", flush=True)
    finally:
        for process in processes:
            server_stop(process)
    load_raw = os.getloadavg()[0]
    raw = raw_run(all_rows["1"], sampling=generation_sampling_get(project=Project.objects.get(pk=project_id)))
    raw["load_average_1m"] = load_raw

    one = phases["1"]
    ratio = (
        one["turn_tokens_per_s_mean"] / raw["turn_tokens_per_s_mean"]
        if raw["turn_tokens_per_s_mean"]
        else 0.0
    )
    goals = {
        "ttft_p50_one_labeler": one["ttft_p50_s"] < GOAL_TTFT_P50_S,
        "ratio_to_raw": ratio >= GOAL_RATIO_TO_RAW,
    }
    report = {
        "small": args.small, "k": args.k, "max_tokens": args.max_tokens, "threads": raw["threads"],
        "live_concurrency": LIVE_CONCURRENCY, "cpus": os.cpu_count(),
        "load_average_start": load_start, "load_average_end": [round(value, 2) for value in os.getloadavg()],
        "warmup_ttft_s": [row["ttft_s"] for row in warm_rows], "model_load_s": raw["load_s"],
        "live_preload_s": preload_s,
        "phases": phases, "raw": raw, "ratio_to_raw": ratio, "goals": goals, "goal_met": all(goals.values()),
        "rows": {count: [{key: value for key, value in row.items() if key != "seeds"} for row in rows]
                 for count, rows in all_rows.items()},
    }  # fmt: skip
    report_print(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    shutil.rmtree(var_dir, ignore_errors=True)  # kept when the run fails, with the servers' logs
    return 0


if __name__ == "__main__":
    sys.exit(main())
