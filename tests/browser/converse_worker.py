"""A real Celery worker on the `live` queue for the converse browser tests.

The worker is a process of its own, as in `make run` or docker-compose: it reads the test database
(SQLite in a file, or PostgreSQL) and the suite's broker: on the embedded defaults a broker folder of
the test's own, into which this process (the live server's threads) sends the turns' messages after
their leases commit; with Redis (CI), the suite's Redis, where a message left by an earlier test
names a turn that no longer exists and is skipped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import kombu.pools
from django.conf import settings
from django.db import connection

from config.celery import app as celery_app
from tests.faults.processes import database_url, wait_for

ROOT = Path(__file__).resolve().parents[2]
BROKER_FOLDERS = ("queue", "processed", "control")


def _pools_reset() -> None:
    # kombu keeps connection and producer pools per broker URL: dropped, they are built again
    # with the transport options in force now (see tests/faults/processes.py).
    kombu.pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


def broker_on_disk() -> bool:
    return str(settings.CELERY_BROKER_URL).startswith("filesystem://")


@contextmanager
def broker_folder(var_dir: Path) -> Iterator[None]:
    """Send this process's Celery messages into `var_dir`/broker, where a worker whose VAR_DIR is
    `var_dir` reads them (config/settings.py puts the on-disk broker there); then back. With a
    broker server (Redis) nothing changes: the worker reads the same server."""
    if not broker_on_disk():
        yield
        return
    folders = {name: var_dir / "broker" / name for name in BROKER_FOLDERS}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    conf = celery_app.conf
    previous = conf.broker_transport_options
    conf.broker_transport_options = {
        **previous,
        "data_folder_in": str(folders["queue"]),
        "data_folder_out": str(folders["queue"]),
        "processed_folder": str(folders["processed"]),
        "control_folder": str(folders["control"]),
    }
    _pools_reset()
    try:
        yield
    finally:
        _pools_reset()
        conf.broker_transport_options = previous


class LiveWorker:
    """`celery -A config worker --queues live`, one process, in a process group of its own."""

    def __init__(self, *, var_dir: Path, log: Path, env: dict[str, str] | None = None) -> None:
        database = connection.settings_dict
        sqlite = database["ENGINE"] == "django.db.backends.sqlite3"
        self.log = log
        self.env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{database['NAME']}" if sqlite else database_url(),
            "VAR_DIR": str(var_dir),
            "CELERY_BROKER_URL": str(settings.CELERY_BROKER_URL),
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "HF_HUB_OFFLINE": "1",
            # The tests' model servers listen on loopback, which generation reaches only when listed.
            "GENERATION_ALLOWED_HOSTS": "*,127.0.0.1",
            "GENERATION_HTTP_MAX_ATTEMPTS": "1",
            **(env or {}),
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> LiveWorker:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "config", "worker", "--queues", "live"]
                + ["--pool", "prefork", "--concurrency", "1", "--without-heartbeat", "--without-gossip"]
                + ["--without-mingle", "--loglevel", "INFO"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(
            lambda: "ready." in self.output(), timeout=60, what=f"the live worker\n{self.output()[-2000:]}"
        )
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGKILL)  # its pool child too; nothing of it is kept
        self.process.wait(timeout=10)
