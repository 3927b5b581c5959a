"""Running one training: read the data, train with heartbeats, save the artifact, record the version.

Not one transaction: training takes minutes to hours, so each state change commits on its own
(see services/runs.py), and the run row always tells the truth about where it is. A thread beats
for the run while this process lives, whatever phase training is in, so a silent run means a dead
worker (REWARD_MODEL_STALE_SECONDS); each attempt writes its own artifact folder, so one taken for
dead cannot clobber its successor's.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import traceback
from pathlib import Path

import torch
from django.conf import settings
from django.db import connection
from django.utils import timezone

from config.celery import worker_stop_requested
from rewards.ml.artifacts import LoadedRewardModel, artifact_save
from rewards.ml.config import TrainConfig
from rewards.ml.train import NoTrainingData, train
from rewards.models import RewardModel
from rewards.selectors.evaluation import evaluation_data
from rewards.selectors.reward_models import training_data
from rewards.services.evaluation import evaluation_measure
from rewards.services.evaluation_set import evaluation_set_sync
from rewards.services.runs import (
    reward_model_fail,
    reward_model_heartbeat,
    reward_model_record_data,
    reward_model_requeue,
    reward_model_start,
    reward_model_succeed,
    stale_after,
)

logger = logging.getLogger(__name__)

# At most this many seconds between heartbeats; a third of the stale bound when that is shorter.
HEARTBEAT_EVERY_SECONDS = 5.0


class TrainingStopped(Exception):
    """The run stopped being this attempt's (cancelled by an admin, failed, or taken over) during training."""


class WorkerShuttingDown(Exception):
    """The worker is shutting down (warm): training stops between two steps, and the run is requeued."""


def artifact_folder(reward_model: RewardModel) -> Path:
    """Where this attempt of the run saves its model: run-<id>, then run-<id>-attempt-<n>."""
    name = f"run-{reward_model.pk}"
    if reward_model.attempts > 1:
        name += f"-attempt-{reward_model.attempts}"
    return Path(settings.REWARD_MODEL_ARTIFACT_DIR) / f"project-{reward_model.project_id}" / name


class _Heartbeat:
    """Beats for the run from a thread of its own, with the latest progress the loop reported.

    Called by the training loop after every step (the progress callback): it raises TrainingStopped
    once a beat found the run no longer this attempt's, and WorkerShuttingDown once the worker
    began a warm shutdown. Inside an outer transaction (tests run in one) a second connection could
    not see the run, so there the loop's own calls beat instead, at most every `every` seconds.
    """

    def __init__(self, reward_model_id: int, attempt: int) -> None:
        self.reward_model_id = reward_model_id
        self.attempt = attempt
        self.fraction, self.message = 0.0, "starting"
        self.every = min(HEARTBEAT_EVERY_SECONDS, stale_after().total_seconds() / 3)
        self.lost = threading.Event()
        self.done = threading.Event()
        self.threaded = not connection.in_atomic_block
        self.last_beat = time.monotonic()
        self.thread = threading.Thread(target=self._run, name=f"heartbeat-{reward_model_id}", daemon=True)

    def __enter__(self) -> _Heartbeat:
        if self.threaded:
            self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.done.set()
        if self.threaded:
            self.thread.join(timeout=30)

    def _beat(self) -> None:
        self.last_beat = time.monotonic()
        alive = reward_model_heartbeat(
            reward_model_id=self.reward_model_id,
            progress=self.fraction,
            message=self.message,
            attempt=self.attempt,
        )
        if not alive:
            self.lost.set()

    def _run(self) -> None:
        try:
            while not self.done.wait(self.every) and not self.lost.is_set():
                try:
                    self._beat()
                except Exception:  # a database blip: the next beat tries again
                    logger.warning("reward model %s: heartbeat failed", self.reward_model_id, exc_info=True)
        finally:
            connection.close()  # this thread's own connection

    def __call__(self, fraction: float, message: str) -> None:
        self.fraction, self.message = fraction, message
        if not self.threaded and time.monotonic() - self.last_beat >= self.every:
            self._beat()
        if self.lost.is_set():
            raise TrainingStopped("the run is no longer this attempt's")
        if worker_stop_requested():
            raise WorkerShuttingDown()


def reward_model_train(*, reward_model_id: int, task_id: str = "") -> RewardModel | None:
    """Train the queued run `reward_model_id`, or take over its stale one; returns the run, or None
    if there was nothing to do (see reward_model_start).

    On success the run becomes the active version and scoring of every candidate is enqueued.
    On any error the run is failed with the reason and the previous version stays active. A warm
    shutdown of the worker puts the run back in the queue.
    """
    reward_model = reward_model_start(reward_model_id=reward_model_id, task_id=task_id)
    if reward_model is None:
        logger.info(
            "reward model %s is not queued, nor running without a worker; nothing to do", reward_model_id
        )
        return None
    attempt = reward_model.attempts
    folder = artifact_folder(reward_model)
    try:
        with _Heartbeat(reward_model.pk, attempt) as heartbeat:
            _train_and_save(reward_model, folder=folder, heartbeat=heartbeat)
    except TrainingStopped:
        logger.info("reward model %s attempt %s stopped: no longer this attempt's", reward_model_id, attempt)
        shutil.rmtree(folder, ignore_errors=True)
    except WorkerShuttingDown:
        logger.info(
            "reward model %s: the worker is shutting down, putting the run back in the queue", reward_model_id
        )
        shutil.rmtree(folder, ignore_errors=True)
        reward_model_requeue(
            reward_model_id=reward_model.pk,
            attempt=attempt,
            reason="waiting for a training worker (the last one shut down mid-training)",
        )
    except NoTrainingData as error:
        reward_model_fail(reward_model_id=reward_model.pk, error=str(error), attempt=attempt)
    except Exception as error:  # the run must end failed whatever went wrong, with the reason
        logger.exception("reward model %s failed", reward_model_id)
        shutil.rmtree(folder, ignore_errors=True)
        reward_model_fail(
            reward_model_id=reward_model.pk,
            error=f"{type(error).__name__}: {error}\n\n{traceback.format_exc(limit=8)}",
            attempt=attempt,
        )
    return RewardModel.objects.get(pk=reward_model_id)


def _train_and_save(reward_model: RewardModel, *, folder: Path, heartbeat: _Heartbeat) -> None:
    # Checked again where the backbone is read: the run's config may have been edited in the database.
    config = TrainConfig.from_overrides(reward_model.config, backbone_dirs=settings.MODEL_DIRS)
    heartbeat(0.0, "reading rankings")
    evaluation_set = evaluation_set_sync(project=reward_model.project)
    cutoff = timezone.now()
    data = training_data(project=reward_model.project, cutoff=cutoff)
    evaluation = evaluation_data(evaluation_set=evaluation_set, cutoff=cutoff)
    reward_model_record_data(
        reward_model_id=reward_model.pk,
        summary={**data.summary, "evaluation": evaluation.summary},
        cutoff=cutoff,
        comparisons=data.comparisons,
    )
    threads_before = torch.get_num_threads()
    try:
        # Validation is the frozen set, so every version's figure is on the same comparisons; a
        # project whose set has no ranking yet falls back to holding out prompts of the training data.
        result = train(
            data.examples,
            config=config,
            validation=evaluation.examples or None,
            normalise_on=data.demonstrations,
            progress=heartbeat,
        )
        heartbeat(0.99, "measuring on the evaluation set")
        result.metrics["validation_source"] = "evaluation_set" if evaluation.examples else "held_out"
        loaded = LoadedRewardModel(model=result.model, tokenizer=result.tokenizer, config=config, meta={})
        result.metrics["evaluation"] = evaluation_measure(loaded=loaded, evaluation=evaluation)
    finally:  # a project's num_threads is process-wide in torch: give the worker its own back
        torch.set_num_threads(threads_before)
    heartbeat(0.995, "saving the model")
    if folder.exists():  # left by an earlier try of this same attempt
        shutil.rmtree(folder)
    artifact_save(
        model=result.model,
        tokenizer=result.tokenizer,
        config=config,
        metrics=result.metrics,
        folder=folder,
        uncertainty_heads=result.uncertainty_heads,
    )
    finished = reward_model_succeed(
        reward_model_id=reward_model.pk,
        artifact_path=str(folder),
        metrics=result.metrics,
        validation_accuracy=result.validation_accuracy,
        attempt=heartbeat.attempt,
    )
    if finished is None:
        raise TrainingStopped("the run was cancelled, failed or taken over while saving")
