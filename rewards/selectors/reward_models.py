"""Reads for reward models: runs, versions, their history and curves for the dashboard, what is due
for retraining, and the data to train on."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import F, QuerySet

from annotation.models import Candidate, Comparison, Demonstration, Project, Prompt, Ranking
from annotation.models.quality import COUNTING_STATES
from config.errors import NotFound
from rewards.ml.examples import RankingExample
from rewards.models import CandidateScore, EvaluationPrompt, RewardModel, RewardModelStatus

IN_FLIGHT = (RewardModelStatus.QUEUED, RewardModelStatus.RUNNING)


def reward_model_list(*, project: Project) -> QuerySet[RewardModel]:
    return RewardModel.objects.filter(project=project).order_by("-created_at", "-id")


def reward_model_get(*, project: Project, reward_model_id: int) -> RewardModel:
    reward_model = RewardModel.objects.filter(project=project, pk=reward_model_id).first()
    if reward_model is None:
        raise NotFound(f"reward model {reward_model_id} does not exist in this project")
    return reward_model


def reward_model_history(*, project: Project) -> QuerySet[RewardModel]:
    """Reward-model runs with their metrics, versions newest first and unversioned runs before them
    (a queryset to paginate)."""
    return RewardModel.objects.filter(project=project).order_by(
        F("version").desc(nulls_first=True), "-created_at"
    )


def reward_model_curves(*, reward_model: RewardModel) -> dict[str, list[float | None]]:
    """Per-epoch curves from a run's metrics JSON, tolerant of the keys a run may not have yet.

    Accepts metrics as {"epochs": [{"epoch", "train_loss", "val_loss", "val_accuracy"}, ...]} or as
    parallel lists {"train_loss": [...], "val_loss": [...], "val_accuracy": [...]}.
    """
    metrics = reward_model.metrics or {}
    steps = _step_curve(metrics)
    epochs = metrics.get("epochs") or metrics.get("history")
    if isinstance(epochs, list) and epochs and isinstance(epochs[0], dict):

        def column(*keys: str) -> list[float | None]:
            return [next((e.get(k) for k in keys if e.get(k) is not None), None) for e in epochs]

        return {
            "train_loss": column("train_loss", "loss"),
            "val_loss": column("val_loss", "validation_loss"),
            "val_accuracy": column("val_accuracy", "validation_accuracy", "accuracy"),
            **steps,
        }

    def series(*keys: str) -> list[float | None]:
        for key in keys:
            value = metrics.get(key)
            if isinstance(value, list):
                return [v if isinstance(v, int | float) else None for v in value]
        return []

    return {
        "train_loss": series("train_loss", "train_losses", "loss"),
        "val_loss": series("val_loss", "val_losses", "validation_loss"),
        "val_accuracy": series("val_accuracy", "val_accuracies", "validation_accuracy"),
        **steps,
    }


def _step_curve(metrics: dict[str, Any]) -> dict[str, list]:
    """The training loss as logged during the run (metrics["curve"]: [{"step", "train_loss"}, ...]):
    many points even for one epoch, where the per-epoch curve has one. Also the run's step count."""
    points = [
        point
        for point in metrics.get("curve") or []
        if isinstance(point, dict)
        and isinstance(point.get("step"), int | float)
        and isinstance(point.get("train_loss"), int | float)
    ]
    return {
        "steps": [int(p["step"]) for p in points],
        "step_train_loss": [float(p["train_loss"]) for p in points],
    }


def reward_model_validation_size(*, reward_model: RewardModel) -> dict[str, int | None]:
    """How many held-out pairs and prompts the validation accuracy was measured on (None if not recorded)."""
    metrics = reward_model.metrics or {}

    def count(key: str) -> int | None:
        value = metrics.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    return {"validation_pairs": count("validation_pairs"), "validation_prompts": count("validation_prompts")}


def reward_model_active(*, project: Project) -> RewardModel | None:
    return RewardModel.objects.filter(project=project, is_active=True).first()


def reward_models_active_for(*, projects: QuerySet[Project]) -> QuerySet[RewardModel]:
    """The active version of each of `projects` that has one (one query), by project id."""
    return RewardModel.objects.filter(project__in=projects, is_active=True).order_by("project_id")


def prompt_reward_scores(*, project: Project, prompt_id: int) -> dict[str, Any]:
    """The active version's score of each candidate of one prompt, with its rank by score.

    Returns {"reward_model": the active RewardModel or None, "scores": [{"candidate_id", "score",
    "rank"}, ...] best first}; `rank` counts from 1 and equal scores share a rank. Candidates the
    version has not scored yet are absent. Raises NotFound for a prompt outside `project`.
    """
    if not Prompt.objects.filter(pk=prompt_id, project=project).exists():
        raise NotFound("no such prompt in this project", code="prompt_not_found")
    active = reward_model_active(project=project)
    if active is None:
        return {"reward_model": None, "scores": []}
    rows = CandidateScore.objects.filter(reward_model=active, candidate__prompt_id=prompt_id).order_by(
        "-score", "candidate_id"
    )
    scores: list[dict[str, Any]] = []
    for candidate_id, score in rows.values_list("candidate_id", "score"):
        tied = bool(scores) and scores[-1]["score"] == score
        rank = scores[-1]["rank"] if tied else len(scores) + 1
        scores.append({"candidate_id": candidate_id, "score": score, "rank": rank})
    return {"reward_model": active, "scores": scores}


def reward_model_in_flight(*, project: Project) -> RewardModel | None:
    return RewardModel.objects.filter(project=project, status__in=IN_FLIGHT).first()


def reward_model_last_succeeded(*, project: Project) -> RewardModel | None:
    return (
        RewardModel.objects.filter(project=project, status=RewardModelStatus.SUCCEEDED)
        .order_by("-version")
        .first()
    )


def comparisons_new_count(*, project: Project) -> int:
    """Comparisons that arrived after the cut-off of the last successful version (all, if none)."""
    comparisons = Comparison.objects.filter(
        prompt__project=project, ranking__quality_state__in=COUNTING_STATES
    )
    last = reward_model_last_succeeded(project=project)
    if last is not None and last.data_cutoff is not None:
        comparisons = comparisons.filter(created_at__gt=last.data_cutoff)
    return comparisons.count()


@dataclass
class TrainingData:
    examples: list[RankingExample]
    demonstrations: list[tuple[list[dict[str, str]], str]]
    summary: dict[str, Any] = field(default_factory=dict)
    comparisons: int = 0


def training_data(*, project: Project, cutoff: datetime) -> TrainingData:
    """Every ranking of the project made up to `cutoff`, as training elements, plus demonstrations;
    none of a prompt in the project's frozen evaluation set (selectors/evaluation.py reads those).

    Order ids are mapped to indices into each ranking's answers; held-out validation later
    groups by prompt id. Rankings whose candidates have vanished are skipped.
    """
    frozen = evaluation_prompt_ids(project=project)
    rankings = (
        # Only rankings that count: triage exclusions and review rejections never train.
        Ranking.objects.filter(
            prompt__project=project, created_at__lte=cutoff, quality_state__in=COUNTING_STATES
        )
        .exclude(prompt_id__in=frozen)
        .select_related("prompt")
        .order_by("id")
    )
    examples, _answer_ids, skipped, sources = rankings_as_examples(rankings)
    comparisons = (
        Comparison.objects.filter(
            prompt__project=project, created_at__lte=cutoff, ranking__quality_state__in=COUNTING_STATES
        )
        .exclude(prompt_id__in=frozen)
        .count()
    )
    demonstrations = [
        (turns, text)
        for turns, text in Demonstration.objects.filter(
            prompt__project=project, created_at__lte=cutoff, quality_state__in=COUNTING_STATES
        ).values_list("prompt__turns", "text")
    ]
    summary = {
        "rankings": len(examples),
        "rankings_skipped": skipped,
        "rankings_by_source": sources,
        "comparisons": comparisons,
        "prompts": len({example.prompt_key for example in examples}),
        "demonstrations": len(demonstrations),
        "cutoff": cutoff.isoformat(),
    }
    return TrainingData(
        examples=examples, demonstrations=demonstrations, summary=summary, comparisons=comparisons
    )


def rankings_as_examples(
    rankings: Iterable[Ranking],
) -> tuple[list[RankingExample], list[list[int]], int, dict[str, int]]:
    """Rankings (with their prompt) as training elements: (examples, the candidate id of each
    example's answers, how many were skipped because a candidate has vanished, counts by source)."""
    rankings = list(rankings)
    candidate_ids = {cid for ranking in rankings for group in ranking.order for cid in group}
    texts = dict(Candidate.objects.filter(pk__in=candidate_ids).values_list("id", "text"))
    examples: list[RankingExample] = []
    answer_ids: list[list[int]] = []
    skipped = 0
    sources: dict[str, int] = {}
    for ranking in rankings:
        flat = [cid for group in ranking.order for cid in group]
        if not flat or any(cid not in texts for cid in flat):
            skipped += 1
            continue
        index = {cid: position for position, cid in enumerate(flat)}
        examples.append(
            RankingExample(
                prompt_key=str(ranking.prompt_id),
                turns=ranking.prompt.turns,
                answers=[texts[cid] for cid in flat],
                order=[[index[cid] for cid in group] for group in ranking.order],
            )
        )
        answer_ids.append(flat)
        sources[ranking.source] = sources.get(ranking.source, 0) + 1
    return examples, answer_ids, skipped, sources


def evaluation_prompt_ids(*, project: Project) -> QuerySet[EvaluationPrompt, int]:
    """The ids of the prompts in the project's frozen evaluation set, as a subquery."""
    return EvaluationPrompt.objects.filter(evaluation_set__project=project).values_list(
        "prompt_id", flat=True
    )


def projects_with_retraining() -> QuerySet[Project]:
    return Project.objects.filter(is_active=True, retrain_enabled=True).order_by("id")
