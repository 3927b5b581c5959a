"""Real processes for the fault tests: a Redis of our own on a spare port, Celery workers pointed at
it and at the test database, and a bounded wait. Every process started here is killed in a finally.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import kombu.pools
import pytest
from django.db import connection

from config.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], object], *, timeout: float, what: str, every: float = 0.1) -> float:
    """Poll until `condition()` is truthy; return the seconds it took, or fail naming `what`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class RedisServer:
    """`redis-server --port <free> --save "" --appendonly no`: killed, it forgets everything."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            + ["--dir", str(self.folder)],
            stdout=subprocess.DEVNULL,
        )
        wait_for(self._answers, timeout=10, what=f"redis-server on port {self.port}", every=0.05)
        return self

    def _answers(self) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def database_url() -> str:
    settings = connection.settings_dict
    password = f":{settings['PASSWORD']}" if settings.get("PASSWORD") else ""
    return (
        f"postgres://{settings['USER']}{password}@{settings['HOST'] or '127.0.0.1'}:"
        f"{settings['PORT'] or 5432}/{settings['NAME']}"
    )


class Worker:
    """`celery -A config worker` (prefork, one process, so that time limits apply) on our Redis and
    the test database, in a process group of its own; its output goes to a log file."""

    def __init__(self, *, broker_url: str, log: Path, env: dict[str, str], queues: str) -> None:
        self.log = log
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": broker_url,
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "HF_HUB_OFFLINE": "1",
            **env,
        }
        self.queues = queues
        self.process: subprocess.Popen | None = None

    def start(self) -> Worker:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "config", "worker", "--queues", self.queues]
                + ["--pool", "prefork", "--concurrency", "1", "--without-heartbeat", "--without-gossip"]
                + ["--without-mingle", "--loglevel", "INFO"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_ready(self, timeout: float = 60) -> None:
        wait_for(lambda: "ready." in self.output(), timeout=timeout, what="the worker to be ready")

    def kill(self) -> None:
        """SIGKILL, as the kernel's OOM killer or `docker kill` does: the main process, and with it
        (PR_SET_PDEATHSIG) its pool process."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@contextmanager
def celery_broker(url: str) -> Iterator[None]:
    """Point this process's Celery app (what the web app sends with) at `url`, then back."""
    # The write URL: Celery reads broker_url from the CELERY_BROKER_URL variable before any setting.
    conf = celery_app.conf
    previous = (conf.get("broker_write_url"), conf.task_always_eager, conf.broker_transport_options)
    _pool_reset()
    conf.broker_write_url, conf.task_always_eager = url, False
    conf.broker_transport_options = {"socket_connect_timeout": 3, "socket_timeout": 10}
    try:
        yield
    finally:
        _pool_reset()
        conf.broker_write_url, conf.task_always_eager, conf.broker_transport_options = previous


def _pool_reset() -> None:
    # kombu keeps its connection and producer pools in global registries keyed by the broker URL: a
    # pool closed but left registered is handed out again once the URL is back ("Acquire on closed
    # pool" for every later send in this process), so the registries are emptied too.
    kombu.pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture(name="redis_server")
def redis_server_fixture(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of the test's own, killed at the end whatever happened."""
    server = RedisServer(tmp_path).start()
    try:
        yield server
    finally:
        server.kill()
