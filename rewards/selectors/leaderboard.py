"""Reads for the generator leaderboard: the active reward model's average score per generator, the
result a run stores, and the runs themselves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db.models import Count, Sum

from annotation.models import Project
from annotation.selectors.leaderboard import (
    Generator,
    LeaderboardRows,
    candidate_generator,
    candidate_provenance_fields,
)
from rewards.models import CandidateScore, LeaderboardRun, LeaderboardRunStatus, RewardModel

if TYPE_CHECKING:  # the math imports torch, which a web process never loads
    from rewards.leaderboard import Leaderboard

IN_FLIGHT = (LeaderboardRunStatus.QUEUED, LeaderboardRunStatus.RUNNING)


def reward_model_scores_by_generator(
    *, project: Project, reward_model: RewardModel | None
) -> tuple[dict[str, dict[str, Any]], dict[str, Generator]]:
    """The version's mean score and the number of scored candidates per generator, over every
    candidate of the project it scored (ranked or not), and those generators.

    One grouped query: candidates group by their provenance columns (few distinct values), which
    then merge into generators (several provenances can be one generator: a live reply, say).
    """
    if reward_model is None:
        return {}, {}
    fields = [f"candidate__{name}" for name in candidate_provenance_fields()]
    groups = (
        CandidateScore.objects.filter(reward_model=reward_model, candidate__prompt__project=project)
        .order_by()
        .values(*fields)
        .annotate(count=Count("id"), total=Sum("score"))
    )
    totals: dict[str, tuple[int, float]] = {}
    generators: dict[str, Generator] = {}
    for group in groups:
        generator = candidate_generator(
            source=group["candidate__source"],
            backend=group["candidate__backend"],
            model_name=group["candidate__model_name"],
            sampling_params=group["candidate__sampling_params"],
        )
        generators.setdefault(generator.name, generator)
        count, total = totals.get(generator.name, (0, 0.0))
        totals[generator.name] = (count + group["count"], total + float(group["total"]))
    scores = {name: {"mean": total / count, "count": count} for name, (count, total) in totals.items()}
    return scores, generators


def leaderboard_result(
    *,
    board: Leaderboard | None,
    rows: LeaderboardRows,
    outcomes: int,
    scores: dict[str, dict[str, Any]],
    scored_generators: dict[str, Generator],
    reward_model: RewardModel | None,
) -> dict[str, Any]:
    """The JSON a done run stores and the API serves: one row per generator, strongest first, then
    the generators that only the reward model has scored; the win-rate matrix; the fit's figures.
    `board` is None when no ranking compares two generators yet."""
    generators = {**scored_generators, **rows.generators}
    table: list[dict[str, Any]] = []
    ranked = set()
    for standing in board.standings if board is not None else []:
        ranked.add(standing.generator)
        table.append({**generators[standing.generator].as_dict(), **_standing(standing)})
    for name in sorted(set(generators) - ranked):
        table.append({**generators[name].as_dict(), **_standing(None)})
    for row in table:
        score = scores.get(row["name"])
        row["reward_model_mean_score"] = score["mean"] if score else None
        row["reward_model_scored"] = score["count"] if score else 0
    return {
        "generators": table,
        "matrix": {
            "generators": board.generators if board is not None else [],
            "win_rate": board.win_rate if board is not None else [],
            "comparisons": board.comparisons if board is not None else [],
        },
        "outcomes": outcomes,
        "rankings": board.clusters if board is not None else 0,
        "tie_strength": board.tie_strength if board is not None else None,
        "resamples": board.resamples if board is not None else 0,
        "confidence": board.confidence if board is not None else None,
        "reward_model": (
            {"id": reward_model.pk, "version": reward_model.version} if reward_model is not None else None
        ),
    }


def _standing(standing: Any) -> dict[str, Any]:
    keys = ("strength", "ci_low", "ci_high", "wins", "losses", "ties", "comparisons")
    if standing is None:
        return {key: None if key.startswith(("strength", "ci_")) else 0 for key in keys}
    return {key: getattr(standing, key) for key in keys}


def leaderboard_run_in_flight(*, project: Project) -> LeaderboardRun | None:
    return LeaderboardRun.objects.filter(project=project, status__in=IN_FLIGHT).first()


def leaderboard_run_for_data(*, project: Project, data_key: str, resamples: int) -> LeaderboardRun | None:
    """The newest finished run (done or failed) on exactly these data: the cached answer."""
    return (
        LeaderboardRun.objects.filter(project=project, data_key=data_key, resamples=resamples)
        .exclude(status__in=IN_FLIGHT)
        .first()
    )


def leaderboard_run_latest_done(*, project: Project) -> LeaderboardRun | None:
    """The newest done run, whatever its data: shown while a newer one computes."""
    return LeaderboardRun.objects.filter(project=project, status=LeaderboardRunStatus.DONE).first()
