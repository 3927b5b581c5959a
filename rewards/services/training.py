"""Running one training: read the data, train with heartbeats, save the artifact, record the version.

Not one transaction: training takes minutes to hours, so each state change commits on its own
(see services/runs.py), and the run row always tells the truth about where it is.
"""

from __future__ import annotations

import logging
import shutil
import time
import traceback
from pathlib import Path

import torch
from django.conf import settings
from django.utils import timezone

from rewards.ml.artifacts import artifact_save
from rewards.ml.config import TrainConfig
from rewards.ml.train import NoTrainingData, train
from rewards.models import RewardModel
from rewards.selectors.reward_models import training_data
from rewards.services.runs import (
    reward_model_fail,
    reward_model_heartbeat,
    reward_model_record_data,
    reward_model_start,
    reward_model_succeed,
)

logger = logging.getLogger(__name__)

# Write progress to the database at most this often: a step takes about a second on CPU.
HEARTBEAT_EVERY_SECONDS = 5.0


class TrainingStopped(Exception):
    """The run stopped being `running` (cancelled by an admin, or failed as stale) during training."""


def artifact_folder(reward_model: RewardModel) -> Path:
    return (
        Path(settings.REWARD_MODEL_ARTIFACT_DIR)
        / f"project-{reward_model.project_id}"
        / f"run-{reward_model.pk}"
    )


class _Heartbeat:
    """Progress callback for the training loop: throttled DB writes, and a stop when the run ended."""

    def __init__(self, reward_model_id: int) -> None:
        self.reward_model_id = reward_model_id
        self.last = 0.0

    def __call__(self, fraction: float, message: str) -> None:
        now = time.monotonic()
        if now - self.last < HEARTBEAT_EVERY_SECONDS and fraction < 0.99:
            return
        self.last = now
        if not reward_model_heartbeat(
            reward_model_id=self.reward_model_id, progress=fraction, message=message
        ):
            raise TrainingStopped("the run is no longer running")


def reward_model_train(*, reward_model_id: int, task_id: str = "") -> RewardModel | None:
    """Train the queued run `reward_model_id`; returns the run, or None if it was not queued.

    On success the run becomes the active version and scoring of every candidate is enqueued.
    On any error the run is failed with the reason and the previous version stays active.
    """
    reward_model = reward_model_start(reward_model_id=reward_model_id, task_id=task_id)
    if reward_model is None:
        logger.info("reward model %s is not queued; nothing to do", reward_model_id)
        return None
    folder = artifact_folder(reward_model)
    heartbeat = _Heartbeat(reward_model.pk)
    try:
        config = TrainConfig.from_overrides(reward_model.config)
        heartbeat(0.0, "reading rankings")
        cutoff = timezone.now()
        data = training_data(project=reward_model.project, cutoff=cutoff)
        reward_model_record_data(
            reward_model_id=reward_model.pk, summary=data.summary, cutoff=cutoff, comparisons=data.comparisons
        )
        threads_before = torch.get_num_threads()
        try:
            result = train(data.examples, config=config, normalise_on=data.demonstrations, progress=heartbeat)
        finally:  # a project's num_threads is process-wide in torch: give the worker its own back
            torch.set_num_threads(threads_before)
        heartbeat(0.995, "saving the model")
        if folder.exists():  # left by an earlier, killed attempt of this same run
            shutil.rmtree(folder)
        artifact_save(
            model=result.model,
            tokenizer=result.tokenizer,
            config=config,
            metrics=result.metrics,
            folder=folder,
        )
        finished = reward_model_succeed(
            reward_model_id=reward_model.pk,
            artifact_path=str(folder),
            metrics=result.metrics,
            validation_accuracy=result.validation_accuracy,
        )
        if finished is None:
            raise TrainingStopped("the run was cancelled or failed while saving")
        return finished
    except TrainingStopped:
        logger.info("reward model %s stopped: no longer running", reward_model_id)
        shutil.rmtree(folder, ignore_errors=True)
    except NoTrainingData as error:
        reward_model_fail(reward_model_id=reward_model.pk, error=str(error))
    except Exception as error:  # the run must end failed whatever went wrong, with the reason
        logger.exception("reward model %s failed", reward_model_id)
        shutil.rmtree(folder, ignore_errors=True)
        reward_model_fail(
            reward_model_id=reward_model.pk,
            error=f"{type(error).__name__}: {error}\n\n{traceback.format_exc(limit=8)}",
        )
    return RewardModel.objects.get(pk=reward_model_id)
