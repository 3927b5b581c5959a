"""Reads for the frozen evaluation set: its rankings as of a training's cut-off, the labelers'
agreement on its prompts, and the per-version measures stored in each run's metrics."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from annotation.models import Ranking
from annotation.models.quality import COUNTING_STATES
from annotation.selectors.agreement import agreement_scan
from rewards.ml.examples import RankingExample
from rewards.models import EvaluationSet, RewardModel
from rewards.selectors.reward_models import rankings_as_examples


@dataclass
class EvaluationData:
    """The evaluation set's rankings that count, made up to a cut-off."""

    examples: list[RankingExample]
    answer_ids: list[list[int]]  # the candidate id of each example's answers
    orders: list[list[list[int]]]  # each example's order as tie groups of candidate ids
    labeler_labeler: dict[str, Any] | None
    summary: dict[str, Any] = field(default_factory=dict)


def evaluation_data(*, evaluation_set: EvaluationSet, cutoff: datetime) -> EvaluationData:
    """The set's counted rankings made up to `cutoff`, as evaluation elements, and the labelers'
    agreement with each other on the set's prompts (annotation's agreement scan, read now: a training
    reads this right after its cut-off, so the two see the same rankings but for any made between).
    """
    rankings = (
        Ranking.objects.filter(
            prompt__evaluation_membership__evaluation_set=evaluation_set,
            created_at__lte=cutoff,
            quality_state__in=COUNTING_STATES,
        )
        .select_related("prompt")
        .order_by("id")
    )
    examples, answer_ids, skipped, _sources = rankings_as_examples(rankings)
    orders = [
        [[ids[index] for index in group] for group in example.order]
        for example, ids in zip(examples, answer_ids, strict=True)
    ]
    per_prompt = Counter(example.prompt_key for example in examples)
    # Only prompts ranked twice have labeler-labeler pairs: the scan reads just those.
    overlapping = [int(key) for key, count in per_prompt.items() if count >= 2]
    members = evaluation_set.members.count()
    labeler_labeler: dict[str, Any] | None = None
    if members:
        tally = agreement_scan(project_id=evaluation_set.project_id, prompt_ids=overlapping).project
        labeler_labeler = {**tally.as_dict(), "prompts": len(overlapping)}
    summary = {
        "evaluation_set_id": evaluation_set.pk,
        "share": evaluation_set.share,
        "created_at": evaluation_set.created_at.isoformat(),
        "set_prompts": members,
        "ranked_prompts": len(per_prompt),
        "rankings": len(examples),
        "rankings_skipped": skipped,
        "cutoff": cutoff.isoformat(),
    }
    return EvaluationData(
        examples=examples,
        answer_ids=answer_ids,
        orders=orders,
        labeler_labeler=labeler_labeler,
        summary=summary,
    )


def reward_model_evaluation(*, reward_model: RewardModel) -> dict[str, Any] | None:
    """The frozen-set measures stored with a version (metrics["evaluation"]), None for a run that
    has none (trained before the set existed, or not finished)."""
    evaluation = (reward_model.metrics or {}).get("evaluation")
    return evaluation if isinstance(evaluation, dict) else None
