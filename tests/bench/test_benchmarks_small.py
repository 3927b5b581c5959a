"""Every benchmark runs end to end in its small mode, so none can stop working unnoticed.

Each test runs one benchmark as a subprocess with `--small --json OUT`, in this process's
environment, and checks that it exits 0, prints its table and writes the JSON keys it promises.
Speed is not judged here; the full runs (README, "Benchmarks") measure it. The benchmarks that
measure PostgreSQL are marked `postgres` (skipped without it, failing under REQUIRE_SERVICES=1,
see tests/conftest.py) and get a database of their own beside the test database, which they create
and drop.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Well under pytest's 900 s: a hung benchmark fails its own test with its output, rather than the suite.
BENCH_TIMEOUT_SECONDS = 300


def _process_tree(root: int) -> list[int]:
    """`root` and every process below it, found before any is killed (orphans move to init)."""
    children: dict[int, list[int]] = defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
        children[parent].append(int(stat.parent.name))
    found, queue = [], [root]
    while queue:
        pid = queue.pop()
        found.append(pid)
        queue.extend(children[pid])
    return found


def _kill_tree(process: subprocess.Popen) -> None:
    # The benchmark's own process group, and what left it: queue_load starts gunicorn in a session
    # of its own, which killing the group alone would leave serving.
    tree = _process_tree(process.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    for pid in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def run_benchmark(script: str, *arguments: str, json_out: Path) -> tuple[dict, str]:
    """Run bench/<script> --small --json json_out; return (the JSON it wrote, its stdout and stderr)."""
    command = [sys.executable, str(ROOT / "bench" / script), "--small", "--json", str(json_out), *arguments]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, so a timeout can end all of it
    )
    try:
        output, _ = process.communicate(timeout=BENCH_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        _kill_tree(process)
        output, _ = process.communicate()
        pytest.fail(f"{script} --small ran past {BENCH_TIMEOUT_SECONDS} s:\n{output[-6000:]}", pytrace=False)
    assert process.returncode == 0, f"{script} --small exited {process.returncode}:\n{output[-6000:]}"
    assert json_out.is_file(), f"{script} --small wrote no {json_out}:\n{output[-3000:]}"
    return json.loads(json_out.read_text()), output


def assert_keys(result: dict, keys: set[str], where: str) -> None:
    missing = keys - result.keys()
    assert not missing, f"{where} lacks {sorted(missing)}"


def assert_printed(output: str, *patterns: str) -> None:
    for pattern in patterns:
        assert re.search(pattern, output, re.MULTILINE), (
            f"table line {pattern!r} not printed:\n{output[-3000:]}"
        )


def _admin_url(url: str) -> str:
    return urlparse(url)._replace(path="/postgres").geturl()


def database_exists(url: str) -> bool:
    import psycopg

    with psycopg.connect(_admin_url(url), autocommit=True) as connection:
        query = "SELECT 1 FROM pg_database WHERE datname = %s"
        return bool(connection.execute(query, [urlparse(url).path.lstrip("/")]).fetchone())


@pytest.fixture
def bench_database(request):
    """The URL of a database beside the test database, on the same server, for one benchmark to
    create and drop; dropped here too if a failed run left it."""
    import psycopg

    url = urlparse(os.environ["DATABASE_URL"])
    purpose = request.node.name.removeprefix("test_").removesuffix("_small")
    name = re.sub(r"\W", "_", f"{url.path.lstrip('/')}_bench_{purpose}")[-63:]  # PostgreSQL's limit
    database_url = url._replace(path=f"/{name}").geturl()
    yield database_url
    with psycopg.connect(_admin_url(database_url), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgres
def test_queue_load_small(tmp_path, bench_database):
    result, output = run_benchmark(
        "queue_load.py", "--database-url", bench_database, json_out=tmp_path / "out.json"
    )

    assert_printed(output, r"^request\s+count\s+p50 ms", r"^lease\s+\d+", r"^submit\s+\d+", r"^floor\s+\d+")
    assert_keys(
        result,
        {
            "labelers",
            "seconds",
            "small",
            "ok",
            "goal_met",
            "submissions",
            "submissions_per_s",
            "double_leases",
            "lost_submissions",
            "stored_twice",
            "machine_busy_cores",
            "gunicorn_cpu_ms_per_request",
            *(
                f"{name}_{stat}"
                for name in ("lease", "submit", "floor")
                for stat in ("requests", "p50_ms", "p95_ms", "p99_ms")
            ),
        },
        "queue_load JSON",
    )

    assert result["small"] is True
    assert result["submissions"] > 0 and result["lease_requests"] > 0
    assert (result["ok"], result["double_leases"], result["lost_submissions"], result["stored_twice"]) == (
        True,
        0,
        0,
        0,
    )
    assert not database_exists(bench_database), "queue_load left its database behind"


@pytest.mark.postgres
def test_queue_load_small_measures_the_uncertainty_strategy_beside_breadth_first(tmp_path, bench_database):
    result, output = run_benchmark(
        "queue_load.py",
        "--database-url",
        bench_database,
        "--strategies",
        "breadth_first,uncertainty",
        json_out=tmp_path / "out.json",
    )

    assert_printed(output, r"^strategy\s+lease p50\s+lease p99", r"^uncertainty\s+\d")
    assert_keys(
        result, {"runs", "ok", "uncertainty_lease_p99_over_breadth_first"}, "queue_load strategies JSON"
    )
    assert result["ok"] and set(result["runs"]) == {"breadth_first", "uncertainty"}
    assert result["runs"]["uncertainty"]["strategy"] == "uncertainty"


@pytest.mark.postgres
def test_export_small(tmp_path, bench_database):
    result, output = run_benchmark(
        "export.py", "--database-url", bench_database, json_out=tmp_path / "out.json"
    )

    assert_printed(
        output,
        r"^phase\s+rows\s+seconds\s+rows/s",
        r"^COPY of the same rows \(floor\)\s+\d+",
        r"^app export, pairs JSONL\s+\d+",
        r"^app export, pairs Parquet\s+\d+",
        r"^slowdown vs COPY: ",
    )
    assert_keys(
        result,
        {
            "rows",
            "rows_per_s",
            "copy_rows_per_s",
            "copy_ordered_rows_per_s",
            "copy_bare_rows_per_s",
            "slowdown_vs_copy",
            "peak_rss_mb",
            "baseline_rss_mb",
            "goal",
            "goal_met",
            "small",
            "phases",
        },
        "export JSON",
    )
    phases = result["phases"]
    assert_keys(
        phases,
        {
            "django_baseline",
            "copy_joined",
            "copy_joined_ordered",
            "copy_bare",
            "export_jsonl",
            "export_parquet",
        },
        "export JSON phases",
    )
    assert result["small"] is True and result["rows"] > 0
    # The seed filled every table the export joins: the export and COPY see every comparison.
    for phase in ("copy_joined", "copy_joined_ordered", "copy_bare", "export_jsonl", "export_parquet"):
        assert phases[phase]["rows"] == result["rows"], (phase, phases[phase])
    assert not database_exists(bench_database), "export left its database behind"


@pytest.mark.slow
def test_generation_small(tmp_path):
    """The worker path and the raw llama.cpp replay of the packaged Gemma model, a few tokens each."""
    result, output = run_benchmark("generation.py", json_out=tmp_path / "out.json")

    assert_printed(
        output,
        r"^prompt\s+run\s+worker s\s+raw s",
        r"^tokens/s, best run per prompt\s+[\d.]+\s+[\d.]+",
        r"^ratio_to_raw \(goal >= 0\.9\): ",
    )
    assert_keys(
        result,
        {
            "rows",
            "model",
            "k",
            "max_tokens",
            "small",
            "tokens_per_s",
            "raw_tokens_per_s",
            "ratio_to_raw",
            "ratio_to_raw_all_runs",
            "ratio_to_raw_cpu_time",
            "completion_tokens",
            "raw_completion_tokens",
            "identical_samples",
            "candidates_per_s",
            "seconds_to_k_candidates",
        },
        "generation JSON",
    )
    assert result["small"] is True
    assert (
        len(result["rows"]) == 1 and result["completion_tokens"] > 0 and result["raw_completion_tokens"] > 0
    )


@pytest.mark.slow
def test_generation_stream_small(tmp_path):
    """The embedded batched stream against llama.cpp's one-answer stream, a few tokens each."""
    result, output = run_benchmark("generation_stream.py", json_out=tmp_path / "out.json")

    assert_printed(
        output,
        r"^prompt\s+path\s+run\s+tokens\s+seconds\s+tokens/s",
        r"^tokens/s, best run per prompt: batched K=2 [\d.]+, single [\d.]+, sequential K=2 [\d.]+",
        r"^batched_over_single: [\d.]+",
    )
    assert_keys(
        result,
        {
            "small",
            "k",
            "max_tokens",
            "threads",
            "model",
            "batched_tokens_per_s",
            "single_tokens_per_s",
            "sequential_tokens_per_s",
            "batched_over_single",
            "rows",
        },
        "generation_stream JSON",
    )
    assert result["small"] is True and result["k"] == 2
    assert {row["path"] for row in result["rows"]} == {"batched", "single", "sequential"}
    assert all(row["tokens"] > 0 for row in result["rows"])


@pytest.mark.slow
def test_conversation_small(tmp_path):
    """Converse turns through gunicorn and a live worker on the embedded defaults, against raw llama.cpp."""
    result, output = run_benchmark("conversation.py", json_out=tmp_path / "out.json")

    assert_printed(
        output,
        r"^path\s+turns\s+TTFT p50 s",
        r"^live, 1 labeler\(s\)\s+2\s+[\d.]+",
        r"^live, 2 labeler\(s\)\s+4\s+[\d.]+",
        r"^raw llama\.cpp, K in turn\s+2\s+[\d.]+",
        r"^ratio_to_raw \(goal >= 0\.9\): ",
    )
    assert_keys(
        result, {"small", "k", "phases", "raw", "ratio_to_raw", "goals", "warmup_ttft_s"}, "conversation"
    )
    assert result["small"] is True and result["k"] == 2 and set(result["phases"]) == {"1", "2"}
    for phase in result["phases"].values():
        assert phase["tokens"] > 0 and phase["ttft_p50_s"] > 0 and phase["turns_retried"] < phase["turns"]
    assert result["raw"]["tokens"] > 0


def _preference_pairs(path: Path, count: int) -> Path:
    """A few short preference pairs in TRL's conversational format, so the test needs no data folder."""
    lines = []
    for index in range(count):
        lines.append(
            json.dumps(
                {
                    "prompt": [{"role": "user", "content": f"How do I keep plant {index} alive?"}],
                    "chosen": [
                        {"role": "assistant", "content": f"Water plant {index} weekly and give it light."}
                    ],
                    "rejected": [{"role": "assistant", "content": "Plants are not my problem."}],
                }
            )
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.slow
def test_reward_model_small(tmp_path):
    """One training step each for ours and TRL's RewardTrainer, pairs and K=4, from the packaged backbone."""
    pairs = _preference_pairs(tmp_path / "pairs.jsonl", 24)
    result, output = run_benchmark("reward_model.py", "--train", str(pairs), json_out=tmp_path / "out.json")

    assert_printed(
        output,
        r"^metric\s+ours\s+trl\s+ratio",
        r"^eval_accuracy\s+[\d.]+\s+[\d.]+",
        r"^pairs_per_s\s+[\d.]+\s+[\d.]+",
        r"^k4_comparisons_per_s\s+[\d.]+\s+[\d.]+",
    )
    assert_keys(result, {"config", "ours", "trl"}, "reward_model JSON")
    assert result["config"]["small"] is True
    for side in ("ours", "trl"):
        assert_keys(
            result[side],
            {
                "eval_accuracy",
                "pairs_per_s",
                "k4_comparisons_per_s",
                "peak_rss_mb",
                "k4_peak_rss_mb",
                "train_seconds",
            },
            f"reward_model JSON {side}",
        )
        assert result[side]["pairs_trained"] > 0 and result[side]["k4_comparisons"] > 0


def _hh_pairs(path: Path, count: int) -> Path:
    """A few short HH-RLHF transcripts (chosen and rejected share all but the last answer)."""
    lines = []
    for index in range(count):
        prompt = f"\n\nHuman: How do I keep plant {index} alive?\n\nAssistant:"
        chosen = f" Water plant {index} every week, give it bright light, and repot it when roots show."
        rejected = f" Plant {index} will be fine without any care at all, so there is nothing to do."
        lines.append(json.dumps({"chosen": prompt + chosen, "rejected": prompt + rejected}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_quality_small(tmp_path):
    """Simulated labelers on an HH-format file: weighted and unweighted consensus, signals, qualification."""
    data = _hh_pairs(tmp_path / "hh.jsonl", 48)
    result, output = run_benchmark("quality.py", "--data", str(data), json_out=tmp_path / "out.json")

    assert_printed(output, r"^bad share\s+unweighted\s+weighted", r"^40%\s+[\d.]+\s+[\d.]+", r"^goal_met: ")
    assert_keys(
        result,
        {
            "small",
            "goal_met",
            *(
                f"{key}_{share}"
                for key in (
                    "weighted_accuracy",
                    "unweighted_accuracy",
                    "bad_caught_share",
                    "careful_flagged_share",
                )
                for share in (20, 40, 60)
            ),
            "bad_caught_share",
            "careful_flagged_share",
        },
        "quality JSON",
    )
    assert result["small"] is True and result["prompts"] == 48
    assert 0 <= result["unweighted_accuracy_40"] <= 1 and 0 <= result["weighted_accuracy_40"] <= 1


@pytest.mark.slow
def test_active_learning_small(tmp_path):
    """Breadth-first against uncertainty on frozen MiniLM embeddings of a tiny HH file, a few rounds."""
    data = _hh_pairs(tmp_path / "hh.jsonl", 40)
    result, output = run_benchmark("active_learning.py", "--pool", str(data), json_out=tmp_path / "out.json")

    assert_printed(
        output,
        r"^strategy\s+10\s+20\s+30\s+labels_ratio",
        r"^breadth_first\s+[\d.]+\s+[\d.]+\s+[\d.]+",
        r"^uncertainty\s+[\d.]+\s+[\d.]+\s+[\d.]+",
        r"^labels_ratio \(goal <= 0\.70\): ",
    )
    assert_keys(
        result,
        {
            "labels_ratio",
            "labels_ratio_by_strategy",
            "goal_met",
            "labels",
            "mean_accuracy",
            "config",
            "small",
        },
        "active_learning JSON",
    )
    assert result["small"] is True and result["labels"] == [10, 20, 30]
    assert all(0 <= a <= 1 for curve in result["mean_accuracy"].values() for a in curve)
    assert (tmp_path / "out.png").read_bytes().startswith(b"\x89PNG")
