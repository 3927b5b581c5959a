"""The Celery app: JSON only, time limits on every task, three queues, beat for periodic jobs."""

from __future__ import annotations

import os
import signal
import threading
import time

from celery import Celery
from celery.schedules import crontab
from celery.signals import worker_process_init, worker_shutting_down
from celery.worker import state as worker_state
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("rlhf")
app.config_from_object("django.conf:settings", namespace="CELERY")

app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_default_queue="default",
    task_queues=(Queue("default"), Queue("generation"), Queue("training")),
    # Routes by task name so a caller never has to remember the queue.
    task_routes={
        "annotation.generation.candidates_generate": {"queue": "generation"},
        "rewards.reward_model_train": {"queue": "training"},
        "rewards.candidates_score": {"queue": "training"},
    },
    # A task runs at most an hour; training sets its own, longer limit.
    task_soft_time_limit=55 * 60,
    task_time_limit=60 * 60,
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
        "retrain-reward-models-when-due": {
            "task": "rewards.reward_models_retrain_due",
            "schedule": crontab(minute="*/5"),
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


# On a warm shutdown (SIGTERM from honcho under `make run`, or `docker stop`) a task in flight gets
# this long to finish. Then the worker shuts down cold, which hands the task back to the queue
# (acks late, rejected when its worker is lost) for a worker to run again: generation and training
# take minutes, far longer than anyone waits after Ctrl-C, or docker before it kills.
WARM_SHUTDOWN_SECONDS = 5.0
_warm_shutdown_watch: threading.Thread | None = None


def _cold_shutdown_once_past_the_bound() -> None:
    time.sleep(WARM_SHUTDOWN_SECONDS)
    # An idle worker may still be closing its pool and broker connection: nothing to cut short.
    while not worker_state.active_requests:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGQUIT)  # Celery's cold shutdown: running tasks go back to the queue


@worker_shutting_down.connect
def worker_bound_the_warm_shutdown(how: str, **_: object) -> None:
    """Turn a warm shutdown into a cold one once WARM_SHUTDOWN_SECONDS have passed with tasks running.

    Sent in the worker's main process, from its signal handler (a second SIGTERM changes nothing).
    """
    global _warm_shutdown_watch
    if how != "Warm" or _warm_shutdown_watch is not None:
        return
    _warm_shutdown_watch = threading.Thread(target=_cold_shutdown_once_past_the_bound, daemon=True)
    _warm_shutdown_watch.start()
