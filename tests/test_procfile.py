"""`make run`'s web server, started exactly as Procfile.embedded says, keeps its files under var/."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_web_server_keeps_its_control_socket_under_var(tmp_path):
    line = next(
        row for row in (ROOT / "Procfile.embedded").read_text().splitlines() if row.startswith("web:")
    )
    command = shlex.split(line.removeprefix("web:"))
    port = _free_port()
    command = [str(Path(sys.executable).parent / command[0]), *command[1:]]
    command[command.index("--bind") + 1] = f"127.0.0.1:{port}"
    home, var = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    (var / "var").mkdir(parents=True)
    env = {**os.environ, "HOME": str(home), "VAR_DIR": str(var / "var"), "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        command, cwd=var, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()[-2000:] if server.stderr else ""
                assert time.monotonic() < deadline, "gunicorn did not answer within 60 s"
                time.sleep(0.3)
        assert (var / "var" / "gunicorn.ctl").exists()
        assert not (home / ".gunicorn").exists(), "gunicorn wrote into the user's home"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
