"""Writes for reward-model runs: request, start, heartbeat, finish, activate, cancel, recover.

The run's life: queued -> running -> succeeded | failed | cancelled. One queued-or-running run per
project (a DB constraint backs the check), one active version per project.

No run is left stuck. `reward_model_runs_recover` (every minute, and before every new request)
sends again the training task of a queued run that never reached the broker (it was down when the
run was queued) or whose message was lost, and of a running run whose heartbeat stopped (its worker
was killed): a task that finds its run running with a stale heartbeat takes it over, as another
attempt. A warm shutdown puts a running run back in the queue (`reward_model_requeue`). After
MAX_ATTEMPTS starts, or a day queued, a run fails; the active version is never touched.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from annotation.models import Project
from annotation.models.webhooks import WebhookEvent
from annotation.services.webhooks import webhook_event_emit
from config.celery import RESEND_EVERY_SECONDS, task_send, task_send_safely
from config.errors import Conflict, ValidationFailed
from rewards.ml.config import TrainConfig
from rewards.models import RewardModel, RewardModelStatus, RewardModelTrigger
from rewards.selectors.reward_models import IN_FLIGHT

logger = logging.getLogger(__name__)

# Tasks are sent by name (config.celery.task_send): rewards.tasks imports the services.
TRAIN_TASK = "rewards.reward_model_train"
SCORE_TASK = "rewards.candidates_score"
# A running run whose heartbeat is older than this is taken for dead (settings'
# REWARD_MODEL_STALE_SECONDS). Training beats from a thread of its own every few seconds whatever
# phase it is in, so only a dead or frozen worker falls silent this long.
DEFAULT_STALE_SECONDS = 120
# A queued run that no worker picked up in this long is failed so the project can train again.
DEFAULT_QUEUED_STALE_SECONDS = 24 * 3600
# A run is started at most this many times (each worker death or shutdown costs one); then it fails,
# so a run that kills its worker (out of memory, say) does not loop forever.
MAX_ATTEMPTS = 5
# A queued run is sent again when its task has not reached the broker after this long (a send is
# usually done within milliseconds of the commit) ...
RESEND_UNSENT_AFTER = timedelta(seconds=RESEND_EVERY_SECONDS)
# ... or when a sent message has not been picked up in this long: the broker may have lost it (a
# Redis restarted without persistence). A duplicate message is harmless: see reward_model_start.
RESEND_LOST_AFTER = timedelta(minutes=30)


def stale_after() -> timedelta:
    return timedelta(seconds=getattr(settings, "REWARD_MODEL_STALE_SECONDS", DEFAULT_STALE_SECONDS))


def reward_model_send(*, reward_model_id: int, task_id: str) -> bool:
    """Send the run's training task now and record that it reached the broker (call after commit).

    False, logged, when the broker is unreachable: the run keeps no record of a send and
    `reward_model_runs_recover` sends it later. The id stored on the run becomes the message's task
    id, so the worker's request names the run.
    """
    sent = task_send_safely(
        partial(task_send, TRAIN_TASK, reward_model_id, task_id=task_id),
        what=f"the training task of reward-model run {reward_model_id}",
    )
    if sent:
        RewardModel.objects.filter(pk=reward_model_id, status__in=IN_FLIGHT).update(
            task_sent_at=timezone.now()
        )
    return sent


def _send_after_commit(reward_model: RewardModel) -> None:
    # robust: a database error while recording the send must not fail the committed request either;
    # the run then looks unsent and is sent once more, which reward_model_start makes harmless.
    # (A lambda, not a partial: Django names the callback by its __qualname__ when it logs a failure.)
    reward_model_id, task_id = reward_model.pk, reward_model.celery_task_id
    transaction.on_commit(
        lambda: reward_model_send(reward_model_id=reward_model_id, task_id=task_id), robust=True
    )


def candidates_score_enqueue(reward_model_id: int) -> None:
    """Queue scoring of the project's candidates with this version (call after commit).

    Scoring is idempotent and the periodic job re-sends it for any candidate left unscored, so a
    broker that is down now only delays it.
    """
    task_send_safely(partial(task_send, SCORE_TASK, reward_model_id), what=f"scoring with {reward_model_id}")


def _webhook_data(reward_model: RewardModel) -> dict:
    """What webhooks are told of a version (README: Webhooks)."""
    return {
        "reward_model_id": reward_model.pk,
        "version": reward_model.version,
        "is_active": reward_model.is_active,
        "validation_accuracy": reward_model.validation_accuracy,
        "comparisons_seen": reward_model.comparisons_seen,
        "data_cutoff": reward_model.data_cutoff,
        "trigger": reward_model.trigger,
        "finished_at": reward_model.finished_at,
    }


def train_config_validate(*, overrides: object) -> TrainConfig:
    """The project's overrides applied to the defaults, or ValidationFailed naming the bad setting."""
    if overrides in (None, ""):
        overrides = {}
    if not isinstance(overrides, dict):
        raise ValidationFailed("reward_model_config must be a JSON object", code="invalid_config")
    try:
        return TrainConfig.from_overrides(overrides, backbone_dirs=settings.MODEL_DIRS)
    except (TypeError, ValueError) as error:
        raise ValidationFailed(f"reward_model_config: {error}", code="invalid_config") from None


@dataclass
class Recovery:
    """What one pass of `reward_model_runs_recover` did, by run id."""

    resent: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


def _heartbeat_stale(*, now: datetime, stale: timedelta) -> Q:
    return Q(heartbeat_at__lt=now - stale) | Q(heartbeat_at__isnull=True, started_at__lt=now - stale)


@transaction.atomic
def reward_model_runs_recover(
    *, project: Project | None = None, stale: timedelta | None = None, now: datetime | None = None
) -> Recovery:
    """Send again the tasks of runs that no worker has (see the module's docstring); fail the runs
    that used up MAX_ATTEMPTS or waited a day in the queue. The active version is untouched.

    Sends after commit; idempotent: a run already re-sent and waiting for a worker is not sent again
    until RESEND_LOST_AFTER.
    """
    now = now or timezone.now()
    stale = stale if stale is not None else stale_after()
    runs = RewardModel.objects.select_for_update().filter(status__in=IN_FLIGHT)
    if project is not None:
        runs = runs.filter(project=project)
    not_sent_since = Q(task_sent_at__isnull=True) | Q(task_sent_at__lt=now - RESEND_LOST_AFTER)
    recovery = Recovery()
    gave_up = runs.filter(status=RewardModelStatus.RUNNING, attempts__gte=MAX_ATTEMPTS).filter(
        _heartbeat_stale(now=now, stale=stale)
    )
    recovery.failed += list(gave_up.values_list("pk", flat=True))
    gave_up.update(
        status=RewardModelStatus.FAILED,
        error=f"The worker stopped sending heartbeats {MAX_ATTEMPTS} times (killed or lost); "
        "the run was abandoned.",
        finished_at=now,
    )
    abandoned = runs.filter(
        status=RewardModelStatus.QUEUED, created_at__lt=now - timedelta(seconds=DEFAULT_QUEUED_STALE_SECONDS)
    )
    recovery.failed += list(abandoned.values_list("pk", flat=True))
    abandoned.update(
        status=RewardModelStatus.FAILED,
        error="No worker picked up this run; it was abandoned.",
        finished_at=now,
    )
    unsent = runs.filter(status=RewardModelStatus.QUEUED, created_at__lt=now - RESEND_UNSENT_AFTER).filter(
        not_sent_since
    )
    # A dead worker's run: re-sent once per silence (the send after its last heartbeat), or again if lost.
    silent = (
        runs.filter(status=RewardModelStatus.RUNNING)
        .filter(_heartbeat_stale(now=now, stale=stale))
        .filter(not_sent_since | Q(task_sent_at__lt=F("heartbeat_at")))
    )
    for reward_model in [*unsent, *silent]:
        recovery.resent.append(reward_model.pk)
        logger.warning(
            "reward-model run %s is %s with no worker on it; sending its training task again",
            reward_model.pk,
            reward_model.status,
        )
        _send_after_commit(reward_model)
    return recovery


@transaction.atomic
def reward_model_request(*, project: Project, trigger: str, requested_by: User | None = None) -> RewardModel:
    """Queue a training run for `project` and enqueue its task after commit.

    Raises Conflict if the project already has a queued or running run (after failing stale ones),
    ValidationFailed if the project's reward_model_config is invalid.
    """
    if trigger not in RewardModelTrigger.values:
        raise ValidationFailed(f"unknown trigger {trigger!r}", code="invalid_trigger")
    config = train_config_validate(overrides=project.reward_model_config)
    reward_model_runs_recover(project=project)
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
    _send_after_commit(reward_model)
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
    """Start a queued run, or take over a running one whose heartbeat is stale (its worker died);
    None if there is nothing for this task to do.

    The returned run's `attempts` is this start's number: heartbeats and the result are accepted
    from this attempt only, so a worker thought dead that wakes up cannot overwrite its successor.
    A message delivered twice (re-sent while the first still waited) finds the run running with a
    fresh heartbeat, or finished, and does nothing, so a run is never trained twice at once.
    """
    reward_model = RewardModel.objects.select_for_update().filter(pk=reward_model_id).first()
    if reward_model is None:
        return None
    now = timezone.now()
    if reward_model.status == RewardModelStatus.RUNNING:
        last_sign_of_life = reward_model.heartbeat_at or reward_model.started_at
        if last_sign_of_life is not None and last_sign_of_life >= now - stale_after():
            return None  # alive on another worker
    elif reward_model.status != RewardModelStatus.QUEUED:
        return None
    if reward_model.attempts >= MAX_ATTEMPTS:
        reward_model_fail(
            reward_model_id=reward_model.pk,
            error=f"The run was started {MAX_ATTEMPTS} times and never finished (its workers were "
            "killed or shut down); it was abandoned.",
        )
        return None
    taking_over = reward_model.status == RewardModelStatus.RUNNING
    reward_model.status = RewardModelStatus.RUNNING
    reward_model.attempts += 1
    reward_model.started_at = reward_model.started_at or now
    reward_model.heartbeat_at = now
    reward_model.progress = 0.0
    reward_model.progress_message = (
        f"starting again (attempt {reward_model.attempts}): the previous worker stopped"
        if taking_over
        else "starting"
    )
    if task_id:
        reward_model.celery_task_id = task_id
    reward_model.save(
        update_fields=[
            "status",
            "attempts",
            "started_at",
            "heartbeat_at",
            "progress",
            "progress_message",
            "celery_task_id",
        ]
    )
    return reward_model


def _this_attempt(reward_model_id: int, attempt: int | None) -> Q:
    return Q(pk=reward_model_id) if attempt is None else Q(pk=reward_model_id, attempts=attempt)


def reward_model_heartbeat(
    *, reward_model_id: int, progress: float, message: str, attempt: int | None = None
) -> bool:
    """Record progress and a sign of life; False if the run is no longer running (cancelled or
    failed) or, given `attempt`, another attempt has taken it over."""
    updated = RewardModel.objects.filter(
        _this_attempt(reward_model_id, attempt), status=RewardModelStatus.RUNNING
    ).update(
        progress=min(1.0, max(0.0, progress)),
        progress_message=message[:300],
        heartbeat_at=timezone.now(),
    )
    return updated == 1


@transaction.atomic
def reward_model_requeue(*, reward_model_id: int, attempt: int, reason: str) -> bool:
    """Put this attempt's running run back in the queue and send it again (its worker is shutting
    down); False if the run is no longer this attempt's. Training restarts from the beginning."""
    updated = RewardModel.objects.filter(
        _this_attempt(reward_model_id, attempt), status=RewardModelStatus.RUNNING
    ).update(status=RewardModelStatus.QUEUED, progress=0.0, progress_message=reason[:300], task_sent_at=None)
    if updated:
        _send_after_commit(RewardModel.objects.get(pk=reward_model_id))
    return updated == 1


@transaction.atomic
def reward_model_record_data(*, reward_model_id: int, summary: dict, cutoff, comparisons: int) -> None:
    RewardModel.objects.filter(pk=reward_model_id).update(
        data_summary=summary, data_cutoff=cutoff, comparisons_seen=comparisons, heartbeat_at=timezone.now()
    )


@transaction.atomic
def reward_model_succeed(
    *,
    reward_model_id: int,
    artifact_path: str,
    metrics: dict,
    validation_accuracy: float | None,
    attempt: int | None = None,
) -> RewardModel | None:
    """Give the run the next version number, make it the active version, and score every candidate.

    None if the run stopped being `running` meanwhile (cancelled, failed, or taken over by another
    attempt than `attempt`): then it does not become a version.
    """
    reward_model = (
        RewardModel.objects.select_for_update().filter(_this_attempt(reward_model_id, attempt)).first()
    )
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
    # A new version is trained and, being the newest, active: the project's webhooks hear both.
    for event in (WebhookEvent.REWARD_MODEL_TRAINED, WebhookEvent.REWARD_MODEL_ACTIVATED):
        webhook_event_emit(project_id=reward_model.project_id, event=event, data=_webhook_data(reward_model))
    return reward_model


def reward_model_fail(*, reward_model_id: int, error: str, attempt: int | None = None) -> bool:
    """Mark a running (or queued) run failed with `error`; False if it had already ended or, given
    `attempt`, another attempt has taken it over."""
    updated = RewardModel.objects.filter(
        _this_attempt(reward_model_id, attempt), status__in=IN_FLIGHT
    ).update(status=RewardModelStatus.FAILED, error=error[:10_000], finished_at=timezone.now())
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
        webhook_event_emit(
            project_id=locked.project_id,
            event=WebhookEvent.REWARD_MODEL_ACTIVATED,
            data=_webhook_data(locked),
        )
    transaction.on_commit(lambda: candidates_score_enqueue(locked.pk))
    return locked
