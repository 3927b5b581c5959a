"""Schemathesis fuzzes the whole API against real gunicorn servers on the test database, as an admin
and as a labeler.

The schema is the one the server publishes at /api/schema/; the schemathesis CLI generates requests
from it (boundary and negative cases of every parameter and body field, then random ones) and checks
every response: no 5xx, every status code and content type documented, every body valid against its
schema. The data behind it is made by the real services, and three of every four path ids name real
rows (tests/fuzz/hooks.py), so the requests reach the views' logic and not only their 404s.

Bounded and repeatable: deterministic generation (no random seed, no example database carried over
from an earlier run), at most MAX_EXAMPLES cases per operation in the fuzzing phase, a timeout on
every request and on each run. The two runs go side by side, each against its own gunicorn with one
worker: DRF's throttles count in that process's memory, so each token's 429s come at the same
request every time.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from rest_framework.authtoken.models import Token

from annotation.models import Membership, Project
from annotation.models.projects import Role
from annotation.services.assignments import assignment_lease
from annotation.services.exports import export_job_create, export_job_run
from annotation.services.prompt_imports import prompt_import_job_create, prompt_import_job_run
from annotation.services.prompts import prompt_create
from rewards.models import CandidateScore, RewardModel, RewardModelStatus
from tests.annotation.export_data import ranked_prompt
from tests.annotation.queue_helpers import candidates_add

ROOT = Path(__file__).resolve().parents[2]
HOOKS = Path(__file__).with_name("hooks.py")
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
# Cases per operation in the fuzzing phase; the coverage phase adds its own, fixed by the schema.
# 150: about 6,600 cases per token, a minute and a half for both on 2 busy cores (FUZZ_MAX_EXAMPLES).
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "150"))
REQUEST_TIMEOUT_SECONDS = 10
# The API has about twice the operations it had (conversations, triage, review, gold, leaderboard):
# each role's run takes longer in proportion.
RUN_TIMEOUT_SECONDS = 480
SERVER_START_SECONDS = 60


@pytest.fixture
def fuzz_data(transactional_db, settings, tmp_path):
    """Two labelers, an admin, a project with prompts, candidates, rankings, leases, an export file
    and reward-model versions; returns the tokens, the ids each path parameter should name, and
    the folders the servers must use."""
    folders = {
        "EXPORT_DIR": tmp_path / "exports",
        "MEDIA_ROOT": tmp_path / "media",  # uploaded prompt files
        "REWARD_MODEL_ARTIFACT_DIR": tmp_path / "reward_models",
    }
    for name, folder in folders.items():
        setattr(settings, name, folder)
    users = get_user_model().objects
    admin = users.create_superuser("fuzz-admin", "admin@example.com", "unused-password-1")
    labeler = users.create_user("fuzz-alice", "alice@example.com", "unused-password-2")
    other = users.create_user("fuzz-bob", "bob@example.com", "unused-password-3")
    project = Project.objects.create(name="Fuzz", k=4, rankings_per_prompt=2, demonstrations_per_prompt=1)
    for user, role in [(admin, Role.ADMIN), (labeler, Role.LABELER), (other, Role.LABELER)]:
        Membership.objects.create(project=project, user=user, role=role)

    ranked = [ranked_prompt(project, index, [labeler, other], [[[0], [1, 2], [3]], [[1], [0], [2], [3]]])
              for index in range(2)]  # fmt: skip
    waiting = [
        prompt_create(project=project, turns=[{"role": "user", "content": f"Open question {n}?"}])
        for n in range(4)
    ]
    for prompt in waiting:
        candidates_add(prompt, 4)
    leases = [
        assignment_lease(labeler=labeler, kind="rank")[0],
        assignment_lease(labeler=labeler, kind="demonstrate")[0],
        assignment_lease(labeler=other, kind="rank")[0],
    ]
    job = export_job_create(
        project=project, requested_by=admin, export_format="pairs", file_format="jsonl", filters={}
    )
    export_job_run(job_id=job.pk)
    upload = io.BytesIO(b'{"prompt": "Imported question?"}\n')
    imported = prompt_import_job_create(
        project=project, requested_by=admin, upload=upload, filename="a.jsonl"
    )
    prompt_import_job_run(job_id=imported.pk)
    artifact = folders["REWARD_MODEL_ARTIFACT_DIR"] / "version-1"
    artifact.mkdir(parents=True)
    active = RewardModel.objects.create(
        project=project,
        trigger="api",
        status=RewardModelStatus.SUCCEEDED,
        version=1,
        artifact_path=str(artifact),
        is_active=True,
    )
    failed = RewardModel.objects.create(project=project, trigger="api", status=RewardModelStatus.FAILED)
    for score, candidate in enumerate(ranked[0][1]):
        CandidateScore.objects.create(candidate=candidate, reward_model=active, score=float(score))

    return {
        "tokens": {
            "admin": Token.objects.create(user=admin).key,
            "labeler": Token.objects.create(user=labeler).key,
        },
        "path_ids": {
            "project_id": [project.pk],
            "prompt_id": [ranked[0][0].pk, waiting[0].pk],
            "assignment_id": [lease.pk for lease in leases if lease is not None],
            "job_id": [job.pk],
            "import_id": [imported.pk],
            "reward_model_id": [active.pk, failed.pk],
            "ranking_id": [ranking.pk for prompt, _ in ranked for ranking in prompt.rankings.all()],
        },
        "folders": {name: str(folder) for name, folder in folders.items()},
    }


def _test_database_url() -> str:
    """The URL of the database this test runs on (the test database, not the configured one)."""
    database = connection.settings_dict
    if database["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{database['NAME']}"
    user, password = quote(database["USER"] or ""), quote(database["PASSWORD"] or "")
    return f"postgres://{user}:{password}@{database['HOST']}:{database['PORT']}/{database['NAME']}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2):
            return True
    except OSError:
        return False


def _stop(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@contextlib.contextmanager
def _gunicorn(environment: dict[str, str], log: Path) -> Iterator[str]:
    """A gunicorn serving the app on a free port with `environment`; yields its base URL."""
    port = _free_port()
    command = [
        str(Path(sys.executable).with_name("gunicorn")), "config.wsgi",
        "--bind", f"127.0.0.1:{port}", "--workers", "1", "--timeout", "60",
        "--control-socket", str(log.with_suffix(".ctl")),
    ]  # fmt: skip
    with open(log, "wb") as output:
        server = subprocess.Popen(
            command,
            cwd=ROOT,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while not _answers(url):
            assert server.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"gunicorn did not answer within {SERVER_START_SECONDS} s"
            time.sleep(0.2)
        yield url
    finally:
        _stop(server)


def _schemathesis(url: str, token: str, workdir: Path, path_ids: dict) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{url}/api/schema/",
        "--checks", CHECKS,
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", str(MAX_EXAMPLES),
        "--generation-deterministic",
        "--workers", "1",
        "--request-timeout", str(REQUEST_TIMEOUT_SECONDS),
        "--header", f"Authorization: Token {token}",
        "--report", "json",
        "--report-json-path", str(workdir / "report.json"),
        "--no-color",
    ]  # fmt: skip
    environment = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": str(HOOKS),
        "FUZZ_PATH_IDS": json.dumps(path_ids),
        "FUZZ_LOG": str(workdir / "calls.log"),
    }
    # Its own working folder: schemathesis keeps the failures it found under ./.schemathesis and
    # replays them first next time, which would make one run depend on the last.
    with open(workdir / "output.txt", "wb") as output:
        return subprocess.Popen(
            command,
            cwd=workdir,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@pytest.mark.timeout(RUN_TIMEOUT_SECONDS + 2 * SERVER_START_SECONDS + 60)
def test_schemathesis_finds_nothing_as_admin_or_labeler(fuzz_data, tmp_path):
    server_environment = {
        # No shared cache (REDIS_URL): each server counts its token's throttles itself, from zero.
        **{name: value for name, value in os.environ.items() if name != "REDIS_URL"},
        **fuzz_data["folders"],
        "DATABASE_URL": _test_database_url(),
        # The exports and training runs it starts go to a broker folder of its own that no worker
        # reads, not to the suite's broker, where another test's worker could pick them up.
        "VAR_DIR": str(tmp_path / "var"),
        "CELERY_BROKER_URL": "filesystem://",
        # The per-user rate (1200/minute) would make the run depend on the machine's speed: a fast
        # one would get 429s for the later cases. The per-action rates (export, retrain) stay.
        "API_THROTTLE_USER": "off",
        "API_THROTTLE_ANON": "off",
    }
    roles = list(fuzz_data["tokens"])
    with contextlib.ExitStack() as stack:
        runs = {}
        for role in roles:
            workdir = tmp_path / role
            workdir.mkdir()
            url = stack.enter_context(_gunicorn(server_environment, workdir / "gunicorn.log"))
            runs[role] = _schemathesis(url, fuzz_data["tokens"][role], workdir, fuzz_data["path_ids"])
        deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
        for role, run in runs.items():
            try:
                run.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                for process in runs.values():
                    _stop(process)
                pytest.fail(f"schemathesis as {role} ran past {RUN_TIMEOUT_SECONDS} s")

    failed = []
    for role, run in runs.items():
        workdir = tmp_path / role
        output = (workdir / "output.txt").read_text(errors="replace")
        report = json.loads((workdir / "report.json").read_text())
        cases = report["test_cases"]
        print(
            f"schemathesis as {role}: {report['operations']['tested']} operations, "
            f"{cases['generated']} cases in {report['running_time']:.1f} s, "
            f"{cases['unique_failures']} unique failures, {cases['errored']} errors"
        )
        statuses = Counter(
            line.rsplit(" ", 1)[-1] for line in (workdir / "calls.log").read_text().splitlines()
        )
        print(f"  status codes: {dict(sorted(statuses.items()))}")
        for failure in report["failures"]:
            print(f"  {failure['code']} {failure['title']}: {failure['count']} in {failure['operations']}")
        if run.returncode != 0:
            failed.append(f"as {role} (exit {run.returncode}):\n{output[-15000:]}")
        # Every operation was reached and tested, none skipped as unusable.
        assert report["operations"]["tested"] == report["operations"]["selected"] > 0, report["operations"]
    assert not failed, "\n\n".join(failed)
