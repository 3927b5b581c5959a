"""The Celery app: JSON only, time limits on every task, three queues, beat for periodic jobs."""

from __future__ import annotations

import os

from celery import Celery
from celery.schedules import crontab
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
