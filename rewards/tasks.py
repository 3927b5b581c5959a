"""Celery tasks of the rewards app: thin shells over services. Routed to the `training` queue."""

from __future__ import annotations

import logging

from celery import shared_task

from config.celery import time_limits
from config.errors import Conflict, NotFound
from rewards.services.leaderboard_compute import leaderboard_run_compute
from rewards.services.queue_order import queue_orders_refresh as queue_orders_refresh_service
from rewards.services.retraining import reward_models_retrain_due as retrain_due_service
from rewards.services.runs import reward_model_runs_recover as runs_recover_service
from rewards.services.scoring import SCORE_CHUNK_SECONDS, reward_models_score_new_candidates
from rewards.services.scoring import candidates_score_chunk as candidates_score_service
from rewards.services.training import reward_model_train as reward_model_train_service

logger = logging.getLogger(__name__)

# Training on CPU can take hours on a large project; the hard limit leaves time to record failure.
TRAIN_SOFT_TIME_LIMIT = 6 * 3600
TRAIN_TIME_LIMIT = TRAIN_SOFT_TIME_LIMIT + 300


@shared_task(
    bind=True,
    name="rewards.reward_model_train",
    # The one task longer than the broker's visibility timeout, so the one not acknowledged late:
    # a message handed back while it still ran would start a second training. Its run's heartbeat
    # tells whether a worker is on it; reward_model_runs_recover re-sends a silent one.
    acks_late=False,
    soft_time_limit=TRAIN_SOFT_TIME_LIMIT,
    time_limit=TRAIN_TIME_LIMIT,
)
def reward_model_train(self, reward_model_id: int) -> str:
    """Train one queued run, or take over one whose worker died; a duplicate message does nothing."""
    reward_model = reward_model_train_service(reward_model_id=reward_model_id, task_id=self.request.id or "")
    return reward_model.status if reward_model is not None else "skipped"


@shared_task(name="rewards.candidates_score", **time_limits(SCORE_CHUNK_SECONDS * 3))
def candidates_score(reward_model_id: int) -> int:
    """Score a chunk of the project's candidates with one version, then send itself for the rest;
    idempotent (existing scores are kept)."""
    try:
        return candidates_score_service(reward_model_id=reward_model_id)
    except (NotFound, Conflict) as error:
        logger.warning("not scoring with reward model %s: %s", reward_model_id, error.message)
        return 0


@shared_task(name="rewards.reward_models_retrain_due", **time_limits(180))
def reward_models_retrain_due() -> list[int]:
    """Periodic: recover runs no worker has, queue runs for projects with enough new comparisons,
    and score candidates that arrived after the active version was trained."""
    started = [reward_model.pk for reward_model in retrain_due_service()]
    reward_models_score_new_candidates()
    return started


@shared_task(name="rewards.reward_model_runs_recover", **time_limits(60))
def reward_model_runs_recover() -> dict[str, list[int]]:
    """Periodic (every minute): send again the training of runs that no worker has."""
    recovery = runs_recover_service()
    return {"resent": recovery.resent, "failed": recovery.failed}


@shared_task(name="rewards.queue_orders_refresh", **time_limits(120))
def queue_orders_refresh() -> dict[str, int]:
    """Periodic: store each project's queue-strategy order (from the reward model's stored scores and
    the labelers' rankings) on its prompts."""
    return {str(project_id): changed for project_id, changed in queue_orders_refresh_service().items()}


# The bootstrap of 1000 resamples takes seconds; reading a large project's rankings, a minute.
LEADERBOARD_SECONDS = 600


@shared_task(name="rewards.leaderboard_compute", **time_limits(LEADERBOARD_SECONDS))
def leaderboard_compute(run_id: int) -> str:
    """Compute one queued leaderboard run (routed to the default queue: no model, little memory);
    a duplicate message, or one for a finished run, does nothing."""
    run = leaderboard_run_compute(run_id=run_id)
    return run.status if run is not None else "skipped"
