"""Measuring a version on the frozen evaluation set (rewards/ml/evaluation.py says what each measure
is): at the end of its training, and again later on the set's rankings as they are then, so that
old and new versions can be put side by side on exactly the same comparisons.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils import timezone

from config.errors import Conflict
from rewards.ml.artifacts import LoadedRewardModel, artifact_load
from rewards.ml.evaluation import ScoredRanking, evaluation_report
from rewards.ml.scoring import texts_score
from rewards.models import RewardModel, RewardModelStatus
from rewards.selectors.evaluation import EvaluationData, evaluation_data
from rewards.services.evaluation_set import evaluation_set_sync

logger = logging.getLogger(__name__)


def evaluation_measure(*, loaded: LoadedRewardModel, evaluation: EvaluationData) -> dict[str, Any]:
    """The model's measures on the evaluation set's rankings, scored as the saved model scores
    (float32, demonstrations averaging 0); each distinct answer is scored once."""
    items: dict[int, tuple[list[dict[str, str]], str]] = {}
    for example, ids in zip(evaluation.examples, evaluation.answer_ids, strict=True):
        for candidate_id, answer in zip(ids, example.answers, strict=True):
            items.setdefault(candidate_id, (example.turns, answer))
    scores = dict(zip(items, texts_score(loaded, list(items.values())), strict=True))
    scored = [
        ScoredRanking(
            prompt_key=example.prompt_key,
            order=order,
            scores={candidate_id: scores[candidate_id] for candidate_id in ids},
        )
        for example, ids, order in zip(
            evaluation.examples, evaluation.answer_ids, evaluation.orders, strict=True
        )
    ]
    return {
        **evaluation.summary,
        **evaluation_report(scored, labeler_labeler=evaluation.labeler_labeler),
        "measured_at": timezone.now().isoformat(),
    }


def reward_model_evaluate(*, reward_model_id: int) -> RewardModel:
    """Measure a succeeded version again on the evaluation set's rankings made up to now, and store
    the result as its metrics["evaluation"] (the measures taken at training are replaced: every
    version measured in one pass then stands on the same comparisons).

    Raises Conflict for a run that is not a succeeded version or whose files are gone. Loads and
    runs the model: call it from a worker or a management command, never in a request.
    """
    reward_model = RewardModel.objects.select_related("project").get(pk=reward_model_id)
    if reward_model.status != RewardModelStatus.SUCCEEDED or not Path(reward_model.artifact_path).is_dir():
        raise Conflict(
            f"run {reward_model.pk} is not a succeeded version with its files; it cannot be measured",
            code="not_measurable",
        )
    evaluation_set = evaluation_set_sync(project=reward_model.project)
    evaluation = evaluation_data(evaluation_set=evaluation_set, cutoff=timezone.now())
    measures = evaluation_measure(loaded=artifact_load(reward_model.artifact_path), evaluation=evaluation)
    with transaction.atomic():
        locked = RewardModel.objects.select_for_update().get(pk=reward_model.pk)
        locked.metrics = {**(locked.metrics or {}), "evaluation": measures}
        locked.save(update_fields=["metrics"])
    logger.info(
        "reward model %s measured again on %s evaluation rankings", reward_model.pk, len(evaluation.examples)
    )
    return locked
