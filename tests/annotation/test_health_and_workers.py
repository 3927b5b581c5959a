"""/healthz, a real Celery worker on the real Redis, and settings that fail fast."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone

from annotation.models import Assignment
from annotation.models.assignments import AssignmentStatus, TaskKind
from config.celery import app

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_healthz_ok(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "ok"}


@pytest.mark.redis
def test_healthz_reports_a_stopped_broker(client, db, tmp_path, settings):
    """A real Redis we start and then stop: 200 while it runs, 503 naming the broker once it is gone."""
    redis_server = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = _free_port()
    server = subprocess.Popen(
        [
            redis_server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{port}/0"
        assert client.get("/healthz").status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=10)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "down", "down": ["broker"]}  # no exception text: see test_security


def test_healthz_reports_a_missing_filesystem_broker(client, db, tmp_path, settings):
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_in": str(tmp_path / "gone")}
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json()["down"] == ["broker"]


@pytest.mark.postgres
@pytest.mark.redis
def test_real_worker_expires_stale_leases(transactional_db, project, labeler, make_prompts):
    """A Celery worker process on the real Redis runs the lease-expiry task against the real database."""
    prompt = make_prompts(project, 1)[0]
    now = timezone.now()
    stale = Assignment.objects.create(
        project=project,
        prompt=prompt,
        labeler=labeler,
        kind=TaskKind.RANK,
        leased_at=now - timedelta(hours=2),
        expires_at=now - timedelta(hours=1),
    )
    live = Assignment.objects.create(
        project=project,
        prompt=prompt,
        labeler=labeler,
        kind=TaskKind.DEMONSTRATE,
        leased_at=now,
        expires_at=now + timedelta(hours=1),
    )
    db_settings = settings.DATABASES["default"]
    database_url = (
        f"postgres://{db_settings['USER']}:{db_settings.get('PASSWORD') or ''}@{db_settings['HOST'] or '127.0.0.1'}:"
        f"{db_settings['PORT'] or 5432}/{db_settings['NAME']}"
    )
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "DATABASE_URL": database_url, "CELERY_BROKER_URL": settings.CELERY_BROKER_URL}
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--queues",
            queue,
            "--pool",
            "solo",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "INFO",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        app.send_task("annotation.assignments_expire", queue=queue)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            stale.refresh_from_db()
            if stale.status == AssignmentStatus.EXPIRED:
                break
            assert worker.poll() is None, "the worker exited early"
            time.sleep(0.25)
    finally:
        worker.terminate()
        output, _ = worker.communicate(timeout=30)
    assert stale.status == AssignmentStatus.EXPIRED, output[-3000:]
    live.refresh_from_db()
    assert live.status == AssignmentStatus.LEASED
    assert "annotation.assignments_expire" in output


def test_expiry_task_in_process_touches_only_stale_leases(project, labeler, make_prompts):
    from annotation.tasks import assignments_expire

    prompt = make_prompts(project, 1)[0]
    now = timezone.now()
    stale = Assignment.objects.create(
        project=project,
        prompt=prompt,
        labeler=labeler,
        kind=TaskKind.RANK,
        leased_at=now - timedelta(hours=2),
        expires_at=now - timedelta(seconds=1),
    )
    assert assignments_expire.apply().get() == 1
    assert assignments_expire.apply().get() == 0
    stale.refresh_from_db()
    assert stale.status == AssignmentStatus.EXPIRED


def test_beat_schedules_the_lease_expiry():
    tasks = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert "annotation.assignments_expire" in tasks
    assert "annotation.assignments_expire" in app.tasks


def test_no_missing_migrations(db):
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


@pytest.mark.parametrize("missing", ["SECRET_KEY", "ALLOWED_HOSTS"])
def test_production_settings_fail_fast_naming_the_variable(missing):
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "ALLOWED_HOSTS")}
    env.update({"DEBUG": "false", "SECRET_KEY": "x" * 50, "ALLOWED_HOSTS": "example.org"})
    del env[missing]
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert f"{missing} must be set when DEBUG is off" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DEBUG", "ture", "DEBUG must be one of true/false"),
        ("CELERY_TASK_ALWAYS_EAGER", "maybe", "CELERY_TASK_ALWAYS_EAGER must be one of"),
        ("DATABASE_URL", "nonsense", "DATABASE_URL must be a database URL"),
        ("LOG_LEVEL", "verbose", "LOG_LEVEL must be DEBUG, INFO"),
        ("DATABASE_PREPARE_THRESHOLD", "some", "DATABASE_PREPARE_THRESHOLD must be an integer"),
    ],
)
def test_a_wrong_setting_fails_naming_the_variable(tmp_path, variable, value, message):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update({"VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "config.settings", variable: value})
    if variable == "DATABASE_PREPARE_THRESHOLD":
        env["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/unused"
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and message in result.stderr, result.stderr[-500:]


def test_embedded_sqlite_runs_in_wal_mode_with_immediate_transactions(tmp_path):
    """The embedded default database, as `make run` creates it, is in WAL mode."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update({"VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "config.settings"})
    script = (
        "import django; django.setup()\n"
        "from django.conf import settings; from django.db import connection\n"
        "cursor = connection.cursor(); cursor.execute('PRAGMA journal_mode'); print(cursor.fetchone()[0])\n"
        "print(settings.DATABASES['default']['OPTIONS']['transaction_mode'])\n"
        "print(settings.DATABASES['default']['NAME'])\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    journal_mode, transaction_mode, name = result.stdout.split()
    assert (journal_mode, transaction_mode) == ("wal", "IMMEDIATE")
    assert name == str(tmp_path / "db.sqlite3")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("GENERATION_THREADS", "abc", "GENERATION_THREADS must be an integer, not 'abc'"),
        ("GENERATION_HTTP_READ_TIMEOUT", "0", "GENERATION_HTTP_READ_TIMEOUT must be at least 0.1"),
        ("DATABASE_URL", "nosuchdb://x", "nosuchdb"),
    ],
)
def test_a_wrong_setting_fails_with_its_name(name, value, message):
    env = {**os.environ, name: value, "DJANGO_SETTINGS_MODULE": "config.settings"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert message in result.stderr
