"""What `make run` starts: honcho with Procfile.embedded, as the terminal's foreground job.

Ctrl-C in a terminal sends SIGINT to its whole foreground process group. Run plainly, that group
holds make as well as honcho: honcho stops the app, but make, interrupted, then kills itself
with SIGINT (status 130) whatever its recipe did. So, as a shell does for a job, this script
moves into a process group of its own and makes it the terminal's foreground group while the
app runs, then hands the terminal back: Ctrl-C reaches honcho alone, which stops the web server,
worker and beat (each in a session of its own, with SIGTERM), and make sees a recipe that
succeeded.

Without a terminal (CI, nohup, a pipe) nothing is moved: a SIGINT sent to the group then still
interrupts make, as it should.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import honcho.command
import honcho.manager

PROCFILE = Path(__file__).resolve().parents[1] / "Procfile.embedded"

# honcho SIGKILLs what is still running this long after the first process has stopped (its own
# default, 5 s, is less than the worker needs). The worker's idle warm shutdown takes about 5 s on
# the filesystem broker, whose loop and pool threads poll once a second or two; with a task in
# flight it waits WARM_SHUTDOWN_SECONDS (config/celery.py) before requeueing it, then as long again
# to stop. This leaves room for both, and still ends a process that hangs.
STOP_GRACE_SECONDS = 20

# honcho exits with this status when it stopped everything because it received SIGINT.
STOPPED_BY_CTRL_C = 128 + signal.SIGINT


@contextlib.contextmanager
def terminal_foreground() -> Iterator[None]:
    """Run the body as the controlling terminal's foreground process group, if there is one.

    Only when this process is in the terminal's foreground group already (a `make run &` in the
    background is left alone). The terminal goes back to the group it came from afterwards.
    """
    try:
        terminal = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:  # no controlling terminal
        yield
        return
    try:
        original_group = os.getpgrp()
        if os.tcgetpgrp(terminal) != original_group or original_group == os.getpid():
            # In the background, or leading a group of our own already (nothing else gets Ctrl-C).
            yield
            return
        # A background group that sets the foreground group is sent SIGTTOU, which would stop it.
        previous_ttou = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        try:
            os.setpgid(0, 0)
            os.tcsetpgrp(terminal, os.getpgrp())
            yield
        finally:
            with contextlib.suppress(OSError):  # that group is gone (make was killed)
                os.tcsetpgrp(terminal, original_group)
            signal.signal(signal.SIGTTOU, previous_ttou)
    finally:
        os.close(terminal)


def main() -> int:
    if not hasattr(honcho.manager, "KILL_WAIT"):
        raise RuntimeError("this honcho has no KILL_WAIT: check how it stops processes")
    honcho.manager.KILL_WAIT = STOP_GRACE_SECONDS
    # Ctrl-Z would stop honcho alone, with the terminal still given to it: the servers (in sessions
    # of their own) would carry on, and the shell, waiting for make, would not get the terminal
    # back. Ignored here, it does nothing.
    signal.signal(signal.SIGTSTP, signal.SIG_IGN)
    with terminal_foreground():
        try:
            honcho.command.main(["start", "--procfile", str(PROCFILE), "--app-root", str(PROCFILE.parent)])
        except SystemExit as stopped:
            status = stopped.code if isinstance(stopped.code, int) else 1
        else:
            status = 0
    # Ctrl-C is how `make run` is meant to stop: honcho printed what it had to kill, if anything.
    return 0 if status == STOPPED_BY_CTRL_C else status


if __name__ == "__main__":
    sys.exit(main())
