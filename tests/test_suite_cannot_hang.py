"""The suite fails instead of freezing: a stuck test ends the run within its timeout.

pytest-timeout's thread method (pyproject.toml) dumps every thread's stack and ends the process;
its signal method cannot interrupt C code that never returns to the interpreter. The Makefile caps
the whole run as well (PYTEST_WALL_SECONDS), for a hang that even the timeout thread cannot see.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_a_stuck_test_fails_within_its_timeout_with_the_projects_settings(tmp_path):
    stuck = tmp_path / "test_stuck.py"
    stuck.write_text(
        "import threading, time\n\n"
        "def test_waits_forever():\n"
        "    threading.Event().wait()  # stands in for a deadlock\n"
    )
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout", "3", "-c",
         str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path), str(stuck)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    # The thread method's own report: every thread's stack, then the run ends (the signal method
    # would say "Failed: Timeout" and carry on with the next test).
    assert "+ Timeout +" in output and "Stack of MainThread" in output, output[-3000:]
    assert elapsed < 60, f"the stuck run took {elapsed:.0f} s"


def test_the_live_servers_test_database_is_a_file_its_threads_can_share(settings):
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL: every thread has its own connection anyway")
    assert not connection.is_in_memory_db(), connection.settings_dict["NAME"]
