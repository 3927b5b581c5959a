#!/usr/bin/env python
"""Load on the labeler queue: N simulated labelers lease and submit over HTTP against gunicorn + PostgreSQL.

It creates its own database (dropped at the end unless --keep-db), migrates and seeds it, starts
gunicorn on loopback, runs every labeler in its own thread with a keep-alive connection, looping
lease -> think -> submit -> trivial request, then stops the server and checks the database:
no slot handed out twice, no acknowledged submission missing, nothing stored twice.

    .venv/bin/python bench/queue_load.py --labelers 50 --seconds 30 --json /tmp/queue_load.json
    .venv/bin/python bench/queue_load.py --small --json OUT   # seconds; what `make test` runs

The trivial request (GET /api/labeler/me/: authentication and one JSON body, same server, same run)
is the floor: the latency any request pays on this machine under this load.
Think time: real labelers spend 30 s to minutes per task; the default 1 s (uniform 0.5-1.5 s) between
lease and submit is far faster than people. Each labeler starts at a random point within one think
time, as people do not all click at once. --think-ms 0 saturates the server instead.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import random
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
GOAL_LEASE_P99_MS = 100.0
# --small: a few leases and submissions of both kinds through the real server, in seconds.
SMALL = {"labelers": 2, "seconds": 2.5, "prompts": 20, "think_ms": 100.0, "workers": 1, "threads": 2}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--labelers", type=int, default=50, help="concurrent simulated labelers (default 50)")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the load runs (default 30)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here as JSON")
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rlhf_bench_queue_load"
        ),
        help="PostgreSQL database to create, use and drop (it must not hold anything you need)",
    )
    parser.add_argument(
        "--prompts", type=int, default=3000, help="prompts to seed, 4 candidates each (default 3000)"
    )
    parser.add_argument(
        "--think-ms",
        type=float,
        default=1000.0,
        help="mean think time between lease and submit (default 1000)",
    )
    # Defaults: as the Dockerfile and docker-compose.yml serve the app.
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers (default 3)")
    parser.add_argument(
        "--worker-class", choices=["sync", "gthread"], default="gthread",
        help="gunicorn worker class (default gthread; sync serves one request per process)",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker (default 4)")
    parser.add_argument("--keep-db", action="store_true", help="keep the benchmark database afterwards")
    parser.add_argument(
        "--strategies",
        default="breadth_first",
        help="queue strategies to measure one after the other in this run, comma-separated "
        "(breadth_first, uncertainty, disagreement; default breadth_first); with more than one the "
        "JSON holds each run and each lease p99 over the first's",
    )
    parser.add_argument(
        "--small",
        action="store_true",
        help=f"a smoke run in seconds ({SMALL['labelers']} labelers for {SMALL['seconds']} s, "
        f"{SMALL['prompts']} prompts, one worker, its own database), as `make test` runs it: "
        "it must run and its database checks must pass, its latencies are not judged",
    )
    args = parser.parse_args()
    if args.small:  # the small sizes become the defaults; options given on the command line still win
        parser.set_defaults(**SMALL, database_url=parser.get_default("database_url") + "_small")
        args = parser.parse_args()
    if (
        min(args.labelers, args.prompts, args.workers, args.threads) < 1
        or args.seconds <= 0
        or args.think_ms < 0
    ):
        parser.error(
            "--labelers, --seconds, --prompts, --workers, --threads must be positive; --think-ms >= 0"
        )
    args.strategies = [name.strip() for name in args.strategies.split(",") if name.strip()]
    unknown = set(args.strategies) - {"breadth_first", "uncertainty", "disagreement"}
    if not args.strategies or unknown:
        parser.error(f"--strategies: unknown {sorted(unknown)}" if unknown else "--strategies: name one")
    if not args.database_url.startswith(("postgres://", "postgresql://")):
        parser.error("--database-url must be a postgres:// URL: the benchmark measures PostgreSQL")
    return args


# ---- database ------------------------------------------------------------------------------------
def database_recreate(url: str, *, drop_only: bool = False) -> None:
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    if not name or not name.replace("_", "").isalnum():
        raise SystemExit(f"refusing database name {name!r}: use letters, digits and underscores")
    admin_url = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            connection.execute(f'CREATE DATABASE "{name}"')


def server_environment(args: argparse.Namespace, var_dir: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=args.database_url,
        DEBUG="0",
        SECRET_KEY="queue-load-benchmark-only",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="false",  # plain HTTP on loopback, with DEBUG off
        VAR_DIR=var_dir,
        CELERY_BROKER_URL="filesystem://",
        CONN_MAX_AGE="600",
        LOG_LEVEL="WARNING",
    )
    env.pop("REDIS_URL", None)
    return env


def seed(args: argparse.Namespace, strategy: str = "breadth_first") -> dict[str, str]:
    """Project, labelers with tokens, prompts with 4 candidates each. Returns {username: token}.

    Under a strategy other than breadth-first, an active reward-model version scores every
    candidate (seeded random scores) and the periodic job's order is stored, as in production.
    """
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from annotation.models import Candidate, Membership, Project, Prompt
    from annotation.services.prompts import turns_hash

    project = Project.objects.create(
        name="Queue load", k=4, rankings_per_prompt=2, demonstrations_per_prompt=1,
        min_demonstration_chars=20, lease_seconds=600, queue_strategy=strategy,
    )  # fmt: skip
    users = get_user_model().objects.bulk_create(
        get_user_model()(username=f"load{index:03d}", password="!") for index in range(args.labelers)
    )
    Membership.objects.bulk_create(Membership(project=project, user=user) for user in users)
    tokens = {user.username: Token.objects.create(user=user).key for user in users}
    prompts = []
    for index in range(args.prompts):
        turns = [{"role": "user", "content": f"Load question {index}: explain something useful."}]
        prompts.append(
            Prompt(project=project, turns=turns, content_hash=turns_hash(turns=turns), priority=index % 3)
        )
    prompts = Prompt.objects.bulk_create(prompts, batch_size=2000)
    candidates = []
    for prompt in prompts:
        for number in range(4):
            text = f"Answer {number} to prompt {prompt.pk}. " + "Some words. " * (5 + number * 10)
            candidates.append(
                Candidate(prompt=prompt, text=text, content_hash=hashlib.sha256(text.encode()).hexdigest())
            )
    Candidate.objects.bulk_create(candidates, batch_size=4000)
    if strategy != "breadth_first":
        import random

        from django.utils import timezone

        from rewards.models import CandidateScore, RewardModel
        from rewards.services.queue_order import queue_order_refresh

        model = RewardModel.objects.create(
            project=project,
            version=1,
            status="succeeded",
            trigger="admin",
            is_active=True,
            finished_at=timezone.now(),
        )
        rng = random.Random(0)
        CandidateScore.objects.bulk_create(
            (
                CandidateScore(candidate_id=pk, reward_model=model, score=rng.gauss(0.0, 1.5))
                for pk in Candidate.objects.filter(prompt__project=project).values_list("pk", flat=True)
            ),
            batch_size=4000,
        )
        queue_order_refresh(project=project, seed=0)
    from django.db import connection

    with connection.cursor() as cursor:  # fresh statistics, as a running database has them
        cursor.execute("ANALYZE")
    return tokens


# ---- server ----------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_start(args: argparse.Namespace, env: dict[str, str], port: int) -> subprocess.Popen:
    command = [
        str(Path(sys.executable).parent / "gunicorn"), "config.wsgi:application",
        "--bind", f"127.0.0.1:{port}", "--workers", str(args.workers),
        # gunicorn turns "sync" with more than one thread into gthread: a sync run gets exactly one.
        "--worker-class", args.worker_class, "--threads", str(args.threads if args.worker_class == "gthread" else 1),
        "--keep-alive", "30", "--log-level", "warning", "--timeout", "60", "--preload",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited with {process.returncode} while starting")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return process
        except OSError:
            pass
        time.sleep(0.2)
    server_stop(process)
    raise SystemExit("gunicorn did not answer /healthz within 60 s")


def server_stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# ---- simulated labelers -----------------------------------------------------------------------------
@dataclass
class Results:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    leased: list[tuple[str, int]] = field(
        default_factory=list
    )  # (labeler, assignment id) as first handed out
    acknowledged: list[tuple[str, int, int]] = field(default_factory=list)  # (kind, assignment id, row id)
    replays: int = 0
    replay_mismatches: int = 0
    no_work: int = 0
    errors: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Client:
    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes, float]:
        payload = json.dumps(body).encode() if body is not None else None
        for attempt in (1, 2):
            started = time.perf_counter()
            try:
                self.connection.request(method, path, body=payload, headers=self.headers)
                response = self.connection.getresponse()
                data = response.read()
                return response.status, data, (time.perf_counter() - started) * 1000
            except (http.client.HTTPException, OSError):
                # The server closed an idle keep-alive connection: reconnect once.
                self.connection.close()
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def submission_for(task: dict, rng: random.Random) -> tuple[str, dict]:
    key = f"{task['id']}-{rng.getrandbits(64):x}"
    if task["kind"] == "demonstrate":
        return "demonstration", {"text": "A helpful and complete answer. " * 3, "idempotency_key": key}
    ids = [candidate["id"] for candidate in task["candidates"]]
    rng.shuffle(ids)
    order: list[list[int]] = []
    for candidate_id in ids:  # random order with the occasional tie
        if order and rng.random() < 0.2:
            order[-1].append(candidate_id)
        else:
            order.append([candidate_id])
    items = [{"candidate": cid, "rating": rng.randint(1, 7), "flags": []} for cid in ids]
    return "ranking", {"order": order, "items": items, "comment": "", "idempotency_key": key}


def warm_up(tokens: dict[str, str], port: int) -> None:
    """Every server thread imports its views and opens its database connection before timing starts."""

    def touch(token: str) -> None:
        client = Client(port, token)
        for path in ("/api/labeler/me/", "/api/labeler/work/"):
            client.request("GET", path)

    threads = [threading.Thread(target=touch, args=(token,)) for token in tokens.values()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def labeler_loop(name: str, token: str, port: int, stop_at: float, think_ms: float, results: Results) -> None:
    rng = random.Random(name)
    client = Client(port, token)
    seen: set[int] = set()
    # People do not all click at the same millisecond: spread the first requests over one think time.
    time.sleep(rng.uniform(0, think_ms / 1000))
    while time.monotonic() < stop_at:
        try:
            # Two rankings for each demonstration, as the seeded project needs them.
            kind = rng.choice(["rank", "rank", "demonstrate"])
            status, data, ms = client.request("POST", "/api/labeler/assignments/lease/", {"kind": kind})
            if status == 204:  # none of that kind left: take anything
                status, data, ms = client.request("POST", "/api/labeler/assignments/lease/", {"kind": "any"})
            if status == 204:
                with results.lock:
                    results.no_work += 1
                time.sleep(0.5)
                continue
            if status not in (200, 201):
                with results.lock:
                    results.errors[f"lease {status}"] += 1
                continue
            task = json.loads(data)
            with results.lock:
                results.latencies["lease"].append(ms)
                if task["id"] not in seen:
                    results.leased.append((name, task["id"]))
            seen.add(task["id"])
            if think_ms:
                time.sleep(rng.uniform(0.5, 1.5) * think_ms / 1000)
            endpoint, body = submission_for(task, rng)
            path = f"/api/labeler/assignments/{task['id']}/{endpoint}/"
            status, data, ms = client.request("POST", path, body)
            with results.lock:
                results.latencies["submit"].append(ms)
                if status == 201:
                    results.acknowledged.append((task["kind"], task["id"], json.loads(data)["id"]))
                else:
                    results.errors[f"submit {status}"] += 1
            if (
                status == 201 and rng.random() < 0.1
            ):  # a client retry: same key, same answer, nothing new stored
                replay_status, replay_data, _ = client.request("POST", path, body)
                with results.lock:
                    results.replays += 1
                    results.replay_mismatches += replay_status != 200 or replay_data != data
            status, _, ms = client.request("GET", "/api/labeler/me/")
            with results.lock:
                results.latencies["floor"].append(ms)
        except (OSError, http.client.HTTPException, ValueError) as error:
            with results.lock:
                results.errors[type(error).__name__] += 1


# ---- checks and report -------------------------------------------------------------------------------
def database_checks(results: Results) -> dict[str, int]:
    from django.db.models import Count

    from annotation.models import Assignment, Demonstration, Project, Ranking
    from annotation.models.assignments import AssignmentStatus

    project = Project.objects.get(name="Queue load")
    holders = Counter(assignment_id for _, assignment_id in results.leased)
    double = sum(1 for count in holders.values() if count > 1)  # one assignment handed to two labelers
    capacity = {"rank": project.rankings_per_prompt, "demonstrate": project.demonstrations_per_prompt}
    taken = (
        Assignment.objects.filter(status__in=[AssignmentStatus.LEASED, AssignmentStatus.SUBMITTED])
        .values("prompt_id", "kind")
        .annotate(n=Count("pk"))
    )
    double += sum(max(0, row["n"] - capacity[row["kind"]]) for row in taken)  # more holders than slots
    rankings = set(Ranking.objects.values_list("pk", "assignment_id"))
    demonstrations = set(Demonstration.objects.values_list("pk", "assignment_id"))
    submitted = set(Assignment.objects.filter(status=AssignmentStatus.SUBMITTED).values_list("pk", flat=True))
    lost = 0
    for kind, assignment_id, row_id in results.acknowledged:
        stored = rankings if kind == "rank" else demonstrations
        lost += (row_id, assignment_id) not in stored or assignment_id not in submitted
    return {
        "double_leases": double,
        "lost_submissions": lost,
        "stored_twice": (len(rankings) + len(demonstrations)) - len(results.acknowledged),
        "rankings_stored": len(rankings),
        "demonstrations_stored": len(demonstrations),
    }


def cpu_busy_seconds() -> tuple[float, float, float]:
    """(busy, total, stolen) CPU seconds of the whole machine since boot, from /proc/stat.

    Stolen time is what the hypervisor gave other guests while this machine wanted the CPU:
    on a shared virtual machine it is why the same code can measure differently from run to run.
    """
    fields = [float(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]
    steal = fields[7] if len(fields) > 7 else 0.0
    return (sum(fields) - idle) / ticks, sum(fields) / ticks, steal / ticks


def process_group_cpu_seconds(group: int) -> float:
    """User + system CPU seconds of the live processes in one process group (gunicorn and its workers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        if int(fields[2]) == group:  # fields after the name: state, ppid, pgrp, ...
            total += (float(fields[11]) + float(fields[12])) / ticks
    return total


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1]


def main() -> int:
    args = parse_args()
    reports = {strategy: run(args, strategy) for strategy in args.strategies}
    first = args.strategies[0]
    if len(reports) == 1:
        report = reports[first]
    else:
        report = {
            "runs": reports,
            "ok": all(run_report["ok"] for run_report in reports.values()),
            **{
                f"{strategy}_lease_p99_over_{first}": round(
                    reports[strategy]["lease_p99_ms"] / reports[first]["lease_p99_ms"], 3
                )
                for strategy in args.strategies[1:]
            },
        }
        print()
        print(f"{'strategy':<14} {'lease p50':>10} {'lease p99':>10} {'submit p99':>11} {'ratio p99':>10}")
        for strategy, run_report in reports.items():
            ratio = run_report["lease_p99_ms"] / reports[first]["lease_p99_ms"]
            print(f"{strategy:<14} {run_report['lease_p50_ms']:>10.1f} {run_report['lease_p99_ms']:>10.1f} "
                  f"{run_report['submit_p99_ms']:>11.1f} {ratio:>10.2f}")  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0 if report["ok"] else 1


def run(args: argparse.Namespace, strategy: str) -> dict:
    """One measured run with the project on `strategy`: a fresh database, seed, server, load."""
    var_dir = tempfile.mkdtemp(prefix="queue-load-")
    env = server_environment(args, var_dir)
    os.environ.update({k: env[k] for k in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "DEBUG", "SECRET_KEY",
                                            "ALLOWED_HOSTS", "VAR_DIR", "CELERY_BROKER_URL")})  # fmt: skip
    os.environ.pop("REDIS_URL", None)
    sys.path.insert(0, str(ROOT))
    print(f"creating {urlparse(args.database_url).path.lstrip('/')} and migrating ...", flush=True)
    database_recreate(args.database_url)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    import django

    django.setup()
    started = time.monotonic()
    tokens = seed(args, strategy)
    print(
        f"seeded {args.prompts} prompts x 4 candidates, {args.labelers} labelers in {time.monotonic() - started:.1f} s"
    )
    port = free_port()
    server = server_start(args, env, port)
    results = Results()
    try:
        per_worker = f" x {args.threads} threads" if args.worker_class == "gthread" else ""
        print(f"gunicorn on 127.0.0.1:{port}: {args.workers} {args.worker_class} workers{per_worker}; "
              f"{args.labelers} labelers for {args.seconds:.0f} s, think {args.think_ms:.0f} ms", flush=True)  # fmt: skip
        warm_up(tokens, port)
        stop_at = time.monotonic() + args.seconds
        threads = [
            threading.Thread(target=labeler_loop, args=(name, token, port, stop_at, args.think_ms, results))
            for name, token in tokens.items()
        ]
        load_started = time.monotonic()
        self_before = resource.getrusage(resource.RUSAGE_SELF)
        machine_before = cpu_busy_seconds()
        server_before = process_group_cpu_seconds(server.pid)
        load_average_before = os.getloadavg()[0]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - load_started
        machine_after = cpu_busy_seconds()
        server_cpu = process_group_cpu_seconds(server.pid) - server_before
        self_after = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        server_stop(server)
    client_cpu = (self_after.ru_utime + self_after.ru_stime) - (self_before.ru_utime + self_before.ru_stime)
    busy_cores = (machine_after[0] - machine_before[0]) / elapsed
    steal_cores = (machine_after[2] - machine_before[2]) / elapsed
    from django.db import connections

    checks = database_checks(results)
    connections.close_all()
    if not args.keep_db:
        database_recreate(args.database_url, drop_only=True)

    report: dict = {
        "strategy": strategy,
        "labelers": args.labelers, "seconds": round(elapsed, 2), "think_ms": args.think_ms,
        "gunicorn_workers": args.workers, "gunicorn_worker_class": args.worker_class,
        "gunicorn_threads": args.threads if args.worker_class == "gthread" else 1, "prompts": args.prompts,
        "cpus": os.cpu_count(), "small": args.small,
    }  # fmt: skip
    for name in ("lease", "submit", "floor"):
        values = results.latencies[name]
        report[f"{name}_requests"] = len(values)
        for q in (50, 95, 99):
            report[f"{name}_p{q}_ms"] = round(percentile(values, q), 2)
    report.update(
        submissions=len(results.acknowledged),
        submissions_per_s=round(len(results.acknowledged) / elapsed, 2),
        replays=results.replays,
        replay_mismatches=results.replay_mismatches,
        no_work_answers=results.no_work,
        errors=dict(results.errors),
        goal_lease_p99_ms=GOAL_LEASE_P99_MS,
        **checks,
    )
    requests = sum(len(v) for v in results.latencies.values()) + results.replays
    report.update(
        # Where the CPU went: the machine may be shared, so say how busy it was beyond this benchmark.
        machine_busy_cores=round(busy_cores, 2),
        machine_steal_cores=round(steal_cores, 3),
        load_average_at_start=round(load_average_before, 2),
        gunicorn_cpu_s=round(server_cpu, 2),
        gunicorn_cpu_ms_per_request=round(1000 * server_cpu / max(requests, 1), 2),
        client_cpu_s=round(client_cpu, 2),
    )
    report["goal_met"] = report["lease_p99_ms"] < GOAL_LEASE_P99_MS
    report["ok"] = (
        checks["double_leases"] == 0 and checks["lost_submissions"] == 0 and checks["stored_twice"] == 0
        and results.replay_mismatches == 0 and not results.errors
    )  # fmt: skip

    print()
    print(f"{'request':<8} {'count':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for name in ("lease", "submit", "floor"):
        print(f"{name:<8} {report[name + '_requests']:>7} {report[name + '_p50_ms']:>8.1f} "
              f"{report[name + '_p95_ms']:>8.1f} {report[name + '_p99_ms']:>8.1f}")  # fmt: skip
    print(f"\nsubmissions: {report['submissions']} ({report['submissions_per_s']}/s), replays {results.replays} "
          f"(mismatched {results.replay_mismatches}), no-work answers {results.no_work}, errors {dict(results.errors)}")  # fmt: skip
    print(f"double leases: {checks['double_leases']}, lost submissions: {checks['lost_submissions']}, "
          f"stored twice: {checks['stored_twice']}")  # fmt: skip
    print(f"CPU: machine {busy_cores:.2f} of {os.cpu_count()} cores busy, {steal_cores:.2f} stolen by the host (load average {load_average_before:.1f} at start); "
          f"gunicorn {server_cpu:.1f} s ({report['gunicorn_cpu_ms_per_request']} ms/request), "
          f"load generator {client_cpu:.1f} s")  # fmt: skip
    print(f"goal lease p99 < {GOAL_LEASE_P99_MS:.0f} ms: {'met' if report['goal_met'] else 'NOT met'}"
          + (" (small mode: a smoke run, latencies not judged)" if args.small else ""))  # fmt: skip
    return report


if __name__ == "__main__":
    sys.exit(main())
