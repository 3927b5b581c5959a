"""`make run` as Procfile.embedded says: the web server keeps its files under var/, and Ctrl-C in
the terminal stops the web server, worker and beat cleanly, with make exiting 0."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent

# Not the embedded defaults: the services that CI points the suite at.
SERVICE_VARIABLES = ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "CELERY_BEAT_SCHEDULE_FILE")
# make passes these to a make it runs; this one is not a sub-make of the suite's.
MAKE_VARIABLES = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")
# Half of honcho's grace before it SIGKILLs what is left (bin/run.py's STOP_GRACE_SECONDS, 20 s after
# the first process stopped). Measured: 5 to 7.5 s, nearly all of it the idle worker's warm shutdown
# on the filesystem broker, whose event loop and pool threads each poll every second or two.
CTRL_C_SECONDS = 10
# Run in a new session with the terminal on fd 0, this opens it, which makes it the session's
# controlling terminal, then becomes the command: make, in the terminal's foreground group.
IN_A_TERMINAL = (
    "import os, sys; os.close(os.open(os.ttyname(0), os.O_RDWR)); os.execvp(sys.argv[1], sys.argv[1:])"
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
            return True
    except OSError:
        return False


def _processes_with(variable: str) -> list[int]:
    """Pids of this user's processes whose environment holds `variable` (NAME=value) exactly."""
    wanted, found = variable.encode(), []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if wanted in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:  # gone, or not ours
                pass
    return found


def test_the_web_server_keeps_its_control_socket_under_var(tmp_path):
    line = next(
        row for row in (ROOT / "Procfile.embedded").read_text().splitlines() if row.startswith("web:")
    )
    port = _free_port()
    home, var = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    (var / "var").mkdir(parents=True)
    env = {
        **os.environ,
        "HOME": str(home),
        "VAR_DIR": str(var / "var"),
        "WEB_PORT": str(port),
        "PYTHONPATH": str(ROOT),
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
    }
    # Through a shell, as honcho runs it.
    server = subprocess.Popen(
        ["sh", "-c", line.removeprefix("web:")],
        cwd=var,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not _answers(port):
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


def test_ctrl_c_stops_make_run_cleanly(tmp_path):
    """Ctrl-C typed into the terminal that runs `make run`, once web, worker and beat are up.

    The kernel sends SIGINT to the terminal's foreground process group, whoever is in it. Each of
    the three must stop by itself (the worker with a warm shutdown that closes its pool, no pool
    process killed), well before honcho would SIGKILL it, and make must exit 0.
    """
    port, var_dir, home = _free_port(), tmp_path / "var", tmp_path / "home"
    home.mkdir()
    marker = f"VAR_DIR={var_dir}"  # in the environment of every process this run starts
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in SERVICE_VARIABLES and name not in MAKE_VARIABLES
    }
    # A developer's machine: the local run, whatever the suite runs under.
    env.update(HOME=str(home), VAR_DIR=str(var_dir), WEB_PORT=str(port), DEBUG="true")
    venv = Path(sys.prefix)
    # The real target on this checkout's virtualenv, told not to (re)install it: no network.
    command = ["make", "--no-print-directory", "run", f"VENV={venv}", "-o", f"{venv}/.installed"]

    terminal, terminal_side = os.openpty()
    make = subprocess.Popen(
        [sys.executable, "-c", IN_A_TERMINAL, *command],
        cwd=ROOT,
        env=env,
        stdin=terminal_side,
        stdout=terminal_side,
        stderr=terminal_side,
        start_new_session=True,
    )
    os.close(terminal_side)
    chunks: list[bytes] = []

    def read_the_terminal() -> None:
        while True:
            try:
                chunk = os.read(terminal, 65536)
            except OSError:  # EIO: every process holding the terminal has exited
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=read_the_terminal, daemon=True)
    reader.start()

    def output() -> str:
        return b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")

    try:
        deadline = time.monotonic() + 50
        while not (
            _answers(port) and re.search(r"celery@\S+ ready\.", output()) and "beat: Starting..." in output()
        ):
            assert make.poll() is None, f"make run exited with {make.returncode}:\n{output()[-4000:]}"
            assert time.monotonic() < deadline, f"make run was not up within 50 s:\n{output()[-4000:]}"
            time.sleep(0.3)

        os.write(terminal, b"\x03")  # Ctrl-C, as typed
        pressed = time.monotonic()
        try:
            status = make.wait(timeout=CTRL_C_SECONDS)
        except subprocess.TimeoutExpired as still_running:
            raise AssertionError(
                f"make run still running {CTRL_C_SECONDS} s after Ctrl-C:\n{output()[-4000:]}"
            ) from still_running
        took = time.monotonic() - pressed
        reader.join(timeout=5)
        text = output()

        assert status == 0, f"make run exited with {status} after Ctrl-C:\n{text[-4000:]}"
        for word in (
            "web.1 stopped",
            "worker.1 stopped",
            "live.1 stopped",
            "beat.1 stopped",
            "Warm shutdown",
        ):
            assert word in text, f"no {word!r} in the output:\n{text[-4000:]}"
        bad = [
            line
            for line in text.splitlines()
            if re.search(r"Traceback|WorkerLostError|SIGKILL|Error|ERROR", line)
        ]
        assert not bad, "after Ctrl-C:\n" + "\n".join(bad) + f"\n\nwhole output's end:\n{text[-4000:]}"
        assert not _processes_with(marker), f"still running {took:.1f} s after Ctrl-C"
    finally:
        for pid in [*_processes_with(marker), make.pid]:
            with contextlib.suppress(OSError):  # gone already
                os.kill(pid, signal.SIGKILL)
        try:
            make.wait(timeout=10)
        finally:
            os.close(terminal)
