"""Writes for reward-model runs: request, start, heartbeat, finish, activate, cancel, fail stale ones.

The run's life: queued -> running -> succeeded | failed | cancelled. One queued-or-running run per
project (a DB constraint backs the check), one active version per project. A worker that dies
leaves its run `running` with a heartbeat that stops moving; `reward_model_runs_fail_stale`
turns such runs into failures (the periodic job and every new request call it).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone

from annotation.models import Project
from config.celery import task_send
from config.errors import Conflict, ValidationFailed
from rewards.ml.config import TrainConfig
from rewards.models import RewardModel, RewardModelStatus, RewardModelTrigger
from rewards.selectors.reward_models import IN_FLIGHT

# A running run whose heartbeat is older than this is taken for dead. Training beats every few
# seconds; the longest silent phase (loading data, evaluating) stays well under this.
DEFAULT_STALE_SECONDS = 15 * 60
# A queued run that no worker picked up in this long is failed so the project can train again.
DEFAULT_QUEUED_STALE_SECONDS = 24 * 3600


def stale_after() -> timedelta:
    return timedelta(seconds=getattr(settings, "REWARD_MODEL_STALE_SECONDS", DEFAULT_STALE_SECONDS))


def _enqueue_training(reward_model: RewardModel) -> None:
    # Tasks are sent by name (config.celery.task_send): rewards.tasks imports the services.
    # The id stored on the run becomes the message's task id, so the worker's request names the run.
    task_send("rewards.reward_model_train", reward_model.pk, task_id=reward_model.celery_task_id)


def candidates_score_enqueue(reward_model_id: int) -> None:
    """Queue scoring of the project's candidates with this version (call after commit)."""
    task_send("rewards.candidates_score", reward_model_id)


def train_config_validate(*, overrides: object) -> TrainConfig:
    """The project's overrides applied to the defaults, or ValidationFailed naming the bad setting."""
    if overrides in (None, ""):
        overrides = {}
    if not isinstance(overrides, dict):
        raise ValidationFailed("reward_model_config must be a JSON object", code="invalid_config")
    try:
        return TrainConfig.from_overrides(overrides)
    except (TypeError, ValueError) as error:
        raise ValidationFailed(f"reward_model_config: {error}", code="invalid_config") from None


@transaction.atomic
def reward_model_runs_fail_stale(*, project: Project | None = None, stale: timedelta | None = None) -> int:
    """Mark runs whose worker is gone as failed; returns how many. The active version is untouched."""
    now = timezone.now()
    stale = stale if stale is not None else stale_after()
    runs = RewardModel.objects.filter(status=RewardModelStatus.RUNNING).filter(
        Q(heartbeat_at__lt=now - stale) | Q(heartbeat_at__isnull=True, started_at__lt=now - stale)
    )
    queued = RewardModel.objects.filter(
        status=RewardModelStatus.QUEUED,
        created_at__lt=now - timedelta(seconds=DEFAULT_QUEUED_STALE_SECONDS),
    )
    if project is not None:
        runs, queued = runs.filter(project=project), queued.filter(project=project)
    failed = runs.update(
        status=RewardModelStatus.FAILED,
        error="The worker stopped sending heartbeats (killed or lost); the run was abandoned.",
        finished_at=now,
    )
    failed += queued.update(
        status=RewardModelStatus.FAILED,
        error="No worker picked up this run; it was abandoned.",
        finished_at=now,
    )
    return failed


@transaction.atomic
def reward_model_request(*, project: Project, trigger: str, requested_by: User | None = None) -> RewardModel:
    """Queue a training run for `project` and enqueue its task after commit.

    Raises Conflict if the project already has a queued or running run (after failing stale ones),
    ValidationFailed if the project's reward_model_config is invalid.
    """
    if trigger not in RewardModelTrigger.values:
        raise ValidationFailed(f"unknown trigger {trigger!r}", code="invalid_trigger")
    config = train_config_validate(overrides=project.reward_model_config)
    reward_model_runs_fail_stale(project=project)
    running = RewardModel.objects.filter(project=project, status__in=IN_FLIGHT).first()
    if running is not None:
        raise _already_running(running)
    try:
        with transaction.atomic():
            reward_model = RewardModel.objects.create(
                project=project,
                trigger=trigger,
                requested_by=requested_by,
                config=config.as_dict(),
                celery_task_id=str(uuid.uuid4()),
                progress_message="waiting for a training worker",
            )
    except IntegrityError:
        # Another request won the race between our check and our insert.
        running = RewardModel.objects.filter(project=project, status__in=IN_FLIGHT).first()
        raise _already_running(running) from None
    transaction.on_commit(lambda: _enqueue_training(reward_model))
    return reward_model


def _already_running(running: RewardModel | None) -> Conflict:
    if running is None:
        return Conflict("a reward-model run for this project is already queued or running")
    return Conflict(
        f"reward-model run {running.pk} for this project is already {running.status}; "
        "wait for it to finish or cancel it",
        code="run_in_progress",
        details={"reward_model_id": running.pk, "status": running.status},
    )


@transaction.atomic
def reward_model_start(*, reward_model_id: int, task_id: str = "") -> RewardModel | None:
    """Move a queued run to running; None if it is not queued (redelivered, cancelled, finished).

    A task redelivered after its worker died finds the run running or failed and does nothing,
    so a run is never trained twice.
    """
    reward_model = RewardModel.objects.select_for_update().filter(pk=reward_model_id).first()
    if reward_model is None or reward_model.status != RewardModelStatus.QUEUED:
        return None
    now = timezone.now()
    reward_model.status = RewardModelStatus.RUNNING
    reward_model.started_at = now
    reward_model.heartbeat_at = now
    reward_model.progress = 0.0
    reward_model.progress_message = "starting"
    if task_id:
        reward_model.celery_task_id = task_id
    reward_model.save(
        update_fields=[
            "status",
            "started_at",
            "heartbeat_at",
            "progress",
            "progress_message",
            "celery_task_id",
        ]
    )
    return reward_model


def reward_model_heartbeat(*, reward_model_id: int, progress: float, message: str) -> bool:
    """Record progress and a sign of life; False if the run is no longer running (cancelled or failed)."""
    updated = RewardModel.objects.filter(pk=reward_model_id, status=RewardModelStatus.RUNNING).update(
        progress=min(1.0, max(0.0, progress)),
        progress_message=message[:300],
        heartbeat_at=timezone.now(),
    )
    return updated == 1


@transaction.atomic
def reward_model_record_data(*, reward_model_id: int, summary: dict, cutoff, comparisons: int) -> None:
    RewardModel.objects.filter(pk=reward_model_id).update(
        data_summary=summary, data_cutoff=cutoff, comparisons_seen=comparisons, heartbeat_at=timezone.now()
    )


@transaction.atomic
def reward_model_succeed(
    *, reward_model_id: int, artifact_path: str, metrics: dict, validation_accuracy: float | None
) -> RewardModel | None:
    """Give the run the next version number, make it the active version, and score every candidate.

    None if the run stopped being `running` meanwhile (cancelled, or failed as stale): then it
    does not become a version.
    """
    reward_model = RewardModel.objects.select_for_update().filter(pk=reward_model_id).first()
    if reward_model is None or reward_model.status != RewardModelStatus.RUNNING:
        return None
    # Lock the project's rows so two finishing runs cannot take the same version number.
    list(RewardModel.objects.select_for_update().filter(project_id=reward_model.project_id))
    latest = RewardModel.objects.filter(project_id=reward_model.project_id).aggregate(Max("version"))
    RewardModel.objects.filter(project_id=reward_model.project_id, is_active=True).update(is_active=False)
    reward_model.version = (latest["version__max"] or 0) + 1
    reward_model.status = RewardModelStatus.SUCCEEDED
    reward_model.is_active = True
    reward_model.artifact_path = artifact_path
    reward_model.metrics = metrics
    reward_model.validation_accuracy = validation_accuracy
    reward_model.progress = 1.0
    reward_model.progress_message = "done"
    reward_model.finished_at = timezone.now()
    reward_model.heartbeat_at = reward_model.finished_at
    reward_model.save()
    transaction.on_commit(lambda: candidates_score_enqueue(reward_model.pk))
    return reward_model


def reward_model_fail(*, reward_model_id: int, error: str) -> bool:
    """Mark a running (or queued) run failed with `error`; False if it had already ended."""
    updated = RewardModel.objects.filter(pk=reward_model_id, status__in=IN_FLIGHT).update(
        status=RewardModelStatus.FAILED, error=error[:10_000], finished_at=timezone.now()
    )
    return updated == 1


@transaction.atomic
def reward_model_cancel(*, reward_model: RewardModel) -> RewardModel:
    """Cancel a queued or running run; a running one stops at its next step."""
    locked = RewardModel.objects.select_for_update().get(pk=reward_model.pk)
    if locked.status not in IN_FLIGHT:
        raise Conflict(f"run {locked.pk} is {locked.status}; only queued or running runs can be cancelled")
    locked.status = RewardModelStatus.CANCELLED
    locked.finished_at = timezone.now()
    locked.progress_message = "cancelled"
    locked.save(update_fields=["status", "finished_at", "progress_message"])
    return locked


@transaction.atomic
def reward_model_activate(*, reward_model: RewardModel) -> RewardModel:
    """Make a succeeded version the project's active one; candidates it has not scored get scored."""
    locked = RewardModel.objects.select_for_update().get(pk=reward_model.pk)
    if locked.status != RewardModelStatus.SUCCEEDED or not locked.artifact_path:
        raise Conflict(f"run {locked.pk} is {locked.status}; only a succeeded version can be active")
    if not Path(locked.artifact_path).is_dir():
        raise Conflict(
            f"version {locked.version}'s files are missing from {locked.artifact_path}; it cannot be active",
            code="artifact_missing",
        )
    if not locked.is_active:
        RewardModel.objects.filter(project_id=locked.project_id, is_active=True).update(is_active=False)
        locked.is_active = True
        locked.save(update_fields=["is_active"])
    transaction.on_commit(lambda: candidates_score_enqueue(locked.pk))
    return locked
