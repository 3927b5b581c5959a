"""The periodic trigger: start a run for each project with enough new comparisons."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone

from config.errors import Conflict, ValidationFailed
from rewards.models import RewardModel, RewardModelStatus, RewardModelTrigger
from rewards.selectors.reward_models import comparisons_new_count, projects_with_retraining
from rewards.services.runs import reward_model_request, reward_model_runs_recover

logger = logging.getLogger(__name__)

# After a failed run, wait this long before the schedule tries again, so a project whose data
# or settings make training fail does not retrain every five minutes. "Retrain now" is not held back.
RETRY_FAILED_AFTER = timedelta(hours=1)


def reward_models_retrain_due() -> list[RewardModel]:
    """Recover runs that no worker has (see runs.reward_model_runs_recover), then queue a run for
    every project with retraining on and at least `retrain_min_new_comparisons` comparisons since
    its last successful version's cut-off."""
    reward_model_runs_recover()
    started: list[RewardModel] = []
    for project in projects_with_retraining():
        new = comparisons_new_count(project=project)
        if new < project.retrain_min_new_comparisons:
            continue
        last = RewardModel.objects.filter(project=project).order_by("-created_at", "-id").first()
        if (
            last is not None
            and last.status == RewardModelStatus.FAILED
            and last.created_at > timezone.now() - RETRY_FAILED_AFTER
        ):
            continue
        try:
            started.append(reward_model_request(project=project, trigger=RewardModelTrigger.SCHEDULE))
        except Conflict:
            continue  # a run is already queued or running
        except ValidationFailed as error:
            logger.warning("project %s cannot retrain: %s", project.pk, error.message)
            continue
        logger.info(
            "project %s: %d new comparisons, queued reward model run %s", project.pk, new, started[-1].pk
        )
    return started
