"""Celery tasks of the rewards app: thin shells over services. Routed to the `training` queue."""

from __future__ import annotations

import logging

from celery import shared_task

from config.errors import Conflict, NotFound
from rewards.services.retraining import reward_models_retrain_due as retrain_due_service
from rewards.services.scoring import candidates_score as candidates_score_service
from rewards.services.scoring import reward_models_score_new_candidates
from rewards.services.training import reward_model_train as reward_model_train_service

logger = logging.getLogger(__name__)

# Training on CPU can take hours on a large project; the hard limit leaves time to record failure.
TRAIN_SOFT_TIME_LIMIT = 6 * 3600
TRAIN_TIME_LIMIT = TRAIN_SOFT_TIME_LIMIT + 300


@shared_task(
    bind=True,
    name="rewards.reward_model_train",
    acks_late=True,
    soft_time_limit=TRAIN_SOFT_TIME_LIMIT,
    time_limit=TRAIN_TIME_LIMIT,
)
def reward_model_train(self, reward_model_id: int) -> str:
    """Train one queued run. A redelivered message finds the run no longer queued and does nothing."""
    reward_model = reward_model_train_service(reward_model_id=reward_model_id, task_id=self.request.id or "")
    return reward_model.status if reward_model is not None else "skipped"


@shared_task(
    name="rewards.candidates_score", acks_late=True, soft_time_limit=3 * 3600, time_limit=3 * 3600 + 300
)
def candidates_score(reward_model_id: int) -> int:
    """Score the project's candidates with one version; idempotent (existing scores are kept)."""
    try:
        return candidates_score_service(reward_model_id=reward_model_id)
    except (NotFound, Conflict) as error:
        logger.warning("not scoring with reward model %s: %s", reward_model_id, error.message)
        return 0


@shared_task(name="rewards.reward_models_retrain_due", soft_time_limit=120, time_limit=180)
def reward_models_retrain_due() -> list[int]:
    """Periodic: fail stale runs, queue runs for projects with enough new comparisons, and score
    candidates that arrived after the active version was trained."""
    started = [reward_model.pk for reward_model in retrain_due_service()]
    reward_models_score_new_candidates()
    return started
