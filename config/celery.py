"""The Celery app: JSON only, time limits on every task, three queues, beat for periodic jobs.

How work survives a broker outage or a killed worker:
- A task is sent after its row commits; if the broker is down then, `task_send_safely` logs it and
  the request still succeeds. The row says it was never sent, and a beat job re-sends it once the
  broker is back (exports: annotation.export_jobs_resend; training: rewards.reward_model_runs_recover).
- Tasks are acks-late with a hard time limit of at most CELERY_TASK_TIME_LIMIT, below the broker's
  visibility timeout (settings), so a killed worker's message comes back within minutes and is
  never handed out while it still runs. Work longer than that is split (scoring re-sends itself in
  chunks) or heartbeats (training: a run silent too long is re-sent and taken over by a new worker).
- A warm shutdown tells running tasks to stop at their next step (`worker_stop_requested`) and, past
  CELERY_WORKER_WARM_SHUTDOWN_SECONDS, turns cold, which hands unfinished tasks back to the queue.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from celery import Celery
from celery.schedules import crontab
from celery.signals import worker_init, worker_process_init, worker_shutting_down
from celery.worker import state as worker_state
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
logger = logging.getLogger(__name__)

# How often beat looks for rows whose task never reached a worker; a row is re-sent once it is
# about this old, so a send that is merely in flight is not doubled.
RESEND_EVERY_SECONDS = 60.0

app = Celery("rlhf")
app.config_from_object("django.conf:settings", namespace="CELERY")

app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_default_queue="default",
    # `live`: converse turns a labeler is watching stream in, kept apart from bulk generation so
    # that they never wait behind a top-up batch or a training run.
    task_queues=(Queue("default"), Queue("generation"), Queue("training"), Queue("live")),
    # Routes by task name so a caller never has to remember the queue.
    task_routes={
        "annotation.generation.candidates_generate": {"queue": "generation"},
        "annotation.live_generate": {"queue": "live"},
        "rewards.reward_model_train": {"queue": "training"},
        "rewards.candidates_score": {"queue": "training"},
        "rewards.queue_orders_refresh": {"queue": "default"},
        "rewards.leaderboard_compute": {"queue": "default"},
        "annotation.labeler_signals_review": {"queue": "default"},
    },
    # The hard time limit is CELERY_TASK_TIME_LIMIT from the settings; each task declares its own
    # with `time_limits`, never above it.
    # A task whose worker dies is redelivered, so tasks are written to be idempotent.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    beat_schedule={
        "expire-assignment-leases": {
            "task": "annotation.assignments_expire",
            "schedule": 60.0,
        },
        "reconcile-prompt-done-counts": {
            "task": "annotation.prompt_done_counts_reconcile",
            "schedule": crontab(minute="*/10"),
        },
        "top-up-candidates": {
            "task": "annotation.generation.candidates_top_up",
            "schedule": 30.0,
        },
        "refresh-queue-orders": {
            "task": "rewards.queue_orders_refresh",
            "schedule": 60.0,
        },
        "retrain-reward-models-when-due": {
            "task": "rewards.reward_models_retrain_due",
            "schedule": crontab(minute="*/5"),
        },
        # Work whose task never reached a worker (broker down at commit, worker killed): send again.
        "resend-unsent-export-jobs": {
            "task": "annotation.export_jobs_resend",
            "schedule": RESEND_EVERY_SECONDS,
        },
        "recover-reward-model-runs": {
            "task": "rewards.reward_model_runs_recover",
            "schedule": RESEND_EVERY_SECONDS,
        },
        "resend-lost-webhook-deliveries": {
            "task": "annotation.webhook_deliveries_resend",
            "schedule": RESEND_EVERY_SECONDS,
        },
        # Labelers whose bias or spam signals fire: their recent work to review (default queue).
        "review-labeler-signals": {
            "task": "annotation.labeler_signals_review",
            "schedule": crontab(minute="*/15"),
        },
    },
    beat_schedule_filename=os.environ.get("CELERY_BEAT_SCHEDULE_FILE", "var/celerybeat-schedule"),
)

app.autodiscover_tasks(["annotation", "rewards"])


def task_send(name: str, *args: object, **options: object) -> None:
    """Send the task registered as `name` with `args`, now (call it after the transaction commits).

    By name, so that a service never imports the tasks module that imports it back, and a web
    process never imports a worker's dependencies (the reward model's torch) to send one: the
    message follows `task_routes` like any other. Only in eager mode (tests, development), where the
    task runs here and now, is it looked up and imported. `options` go to Celery (countdown,
    task_id...).
    """
    if not app.conf.task_always_eager:
        app.send_task(name, args=args, **options)  # type: ignore[arg-type]
        return
    if name not in app.tasks:
        app.loader.import_default_modules()
    app.tasks[name].apply_async(args=args, **options)  # type: ignore[arg-type]


def task_send_safely(send: Callable[[], None], *, what: str) -> bool:
    """Call `send` (a task_send); True if the broker took the message, False (logged) if not.

    For on-commit callbacks: the row is committed whatever happens here, so a broker that is down
    must not turn the request into an error. The caller leaves the row marked as not sent, for its
    re-send job to find.
    """
    try:
        send()
    except Exception as error:  # kombu and redis raise many kinds; any of them means "not sent"
        logger.warning("could not send %s, it will be re-sent: %s: %s", what, type(error).__name__, error)
        return False
    return True


def time_limits(seconds: float) -> dict[str, float]:
    """Celery's soft and hard time limits for a task that needs up to `seconds`, capped at the
    settings' CELERY_TASK_TIME_LIMIT (below the broker's visibility timeout: see the settings).
    The soft limit comes first, leaving the task a moment to record why it stopped."""
    from django.conf import settings

    hard = float(min(seconds, settings.CELERY_TASK_TIME_LIMIT))
    return {"soft_time_limit": hard - max(1.0, min(60.0, hard / 10)), "time_limit": hard}


# Set once a warm shutdown begins: long tasks check it between steps and stop early, leaving their
# work resumable, instead of being cut off at the cold shutdown. One byte of memory shared with the
# prefork pool's processes, made in the worker's main process before it forks them. Not a signal to
# each pool process: billiard replaces their handlers for SIGUSR1/2 and friends with its own
# "exit now" after the pool's initializer runs, so a signal would kill them mid-task instead.
_stop_requested_shared: Any = None


def worker_stop_requested() -> bool:
    """True once this worker is shutting down; always False outside a worker."""
    return bool(_stop_requested_shared is not None and _stop_requested_shared.value)


@worker_init.connect
def worker_make_the_stop_flag(**_: object) -> None:
    """Sent in the worker's main process before the pool starts, so every pool process inherits it."""
    global _stop_requested_shared
    _stop_requested_shared = multiprocessing.get_context("fork").RawValue("b", 0)


@worker_process_init.connect
def pool_process_leave_the_workers_group(**_: object) -> None:
    """Move this prefork pool process into a process group of its own.

    A supervisor that stops a program by signalling its whole process group (honcho, which
    `make run` uses, sends SIGTERM with killpg) would otherwise reach the pool processes too: they
    die at once instead of finishing their task, and the main process logs each as lost. Stopping
    is the main process's job (a warm shutdown that closes the pool), so only it must get the
    signal. A pool process still dies with its main process, even by SIGKILL: Celery sets
    PR_SET_PDEATHSIG in each one.
    """
    os.setpgid(0, 0)


# Whether this worker consumes the `live` queue; set in its main process, inherited by its pool.
_consumes_live_queue = False


@worker_init.connect
def worker_note_the_live_queue(sender: Any, **_: object) -> None:
    """Sent with the WorkController once `--queues` is applied."""
    global _consumes_live_queue
    _consumes_live_queue = "live" in sender.app.amqp.queues.consume_from


@worker_process_init.connect
def pool_process_preload_live_models(**_: object) -> None:
    """In a live worker's pool process, load the models converse turns stream from, in the background.

    Loaded on first use instead, the first turn each pool process serves waits for it: 2-26 s to its
    first token on 2 busy CPUs (bench/conversation.py), against about 0.5 s once loaded. In a thread,
    because the pool gives a new process worker_proc_alive_timeout (4 s) to report for work; a turn
    that arrives meanwhile waits in model_load for the load under way instead of loading again.
    """
    if _consumes_live_queue:
        threading.Thread(target=_live_models_preload, name="live-models-preload", daemon=True).start()


def _live_models_preload() -> None:
    from django.db import connection

    from annotation.services.generation import live_models_preload

    try:
        logger.info("preloaded for live turns: %s", live_models_preload() or "no model")
    except Exception:  # a worker that cannot preload still serves turns, loading on first use
        logger.exception("preloading the live models failed")
    finally:
        connection.close()  # this thread's own connection


# On a warm shutdown (SIGTERM from honcho under `make run`, or `docker stop`) a task in flight gets
# CELERY_WORKER_WARM_SHUTDOWN_SECONDS to finish or stop at its next step. Then the worker shuts down
# cold, which hands the task back to the queue (acks late, rejected when its worker is lost) for a
# worker to run again: generation takes minutes, longer than anyone waits after Ctrl-C.
_warm_shutdown_watch: threading.Thread | None = None


def _warm_shutdown_seconds() -> float:
    from django.conf import settings

    return float(getattr(settings, "CELERY_WORKER_WARM_SHUTDOWN_SECONDS", 5.0))


def _cold_shutdown_once_past_the_bound() -> None:
    time.sleep(_warm_shutdown_seconds())
    # An idle worker may still be closing its pool and broker connection: nothing to cut short.
    while not worker_state.active_requests:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGQUIT)  # Celery's cold shutdown: running tasks go back to the queue


@worker_shutting_down.connect
def worker_bound_the_warm_shutdown(how: str, **_: object) -> None:
    """Ask running tasks to stop at their next step, and turn a warm shutdown into a cold one once
    CELERY_WORKER_WARM_SHUTDOWN_SECONDS have passed with tasks still running.

    Sent in the worker's main process, from its signal handler (a second SIGTERM changes nothing).
    The main process runs the tasks itself in the solo pool; the prefork pool's processes read the
    shared flag, since they left the worker's process group and get no SIGTERM.
    """
    global _warm_shutdown_watch
    if how != "Warm" or _warm_shutdown_watch is not None:
        return
    if _stop_requested_shared is not None:
        _stop_requested_shared.value = 1
    _warm_shutdown_watch = threading.Thread(target=_cold_shutdown_once_past_the_bound, daemon=True)
    _warm_shutdown_watch.start()
