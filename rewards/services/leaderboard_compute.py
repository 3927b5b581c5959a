"""The worker side of leaderboard runs: claim a queued run, read its outcomes, fit, store the
result with progress along the way (rewards.tasks.leaderboard_compute is its shell)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from itertools import combinations, groupby
from typing import Any

from django.db.models import Q
from django.utils import timezone

from annotation.selectors.leaderboard import (
    LeaderboardRows,
    RankedCandidateRow,
    leaderboard_ranked_candidates,
)
from rewards.leaderboard import Outcome, Result, leaderboard_compute
from rewards.models import LeaderboardRun, LeaderboardRunStatus
from rewards.selectors.leaderboard import leaderboard_result, reward_model_scores_by_generator
from rewards.services.leaderboard_runs import RUNNING_STALE_AFTER

logger = logging.getLogger(__name__)

# Progress shares: reading the rankings, then the fits (the point fit and every chunk of
# resamples), then the reward model's scores and the result.
READ_SHARE = 0.05
FIT_SHARE = 0.9


def leaderboard_outcomes(*, rows: Iterable[RankedCandidateRow]) -> list[Outcome]:
    """Every pair of candidates of different generators within one ranking, as an outcome: the
    better-placed one wins, the same tie group is a tie. Pairs of one generator say nothing about
    generators and are left out. The ranking is the outcome's cluster (its pairs share a labeler,
    a prompt and a moment). `rows` come ordered by ranking (annotation's selector orders them)."""
    outcomes: list[Outcome] = []
    for ranking_id, placed in groupby(rows, key=lambda row: row.ranking_id):
        for first, second in combinations(list(placed), 2):
            if first.generator == second.generator:
                continue
            better: Result = "a" if first.rank < second.rank else "b"
            result: Result = "tie" if first.rank == second.rank else better
            outcomes.append(
                Outcome(
                    generator_a=first.generator,
                    generator_b=second.generator,
                    result=result,
                    cluster_id=ranking_id,
                )
            )
    return outcomes


def _progress(*, run_id: int, progress: float) -> None:
    LeaderboardRun.objects.filter(pk=run_id, status=LeaderboardRunStatus.RUNNING).update(
        progress=min(1.0, max(0.0, progress)), heartbeat_at=timezone.now()
    )


def _result(run: LeaderboardRun) -> dict[str, Any]:
    # No ranking yet at the request: read none, though some may have come since (they are the
    # next run's), so that the result is on the data its key names.
    rows = (
        leaderboard_ranked_candidates(project_id=run.project_id, cutoff=run.cutoff)
        if run.cutoff is not None
        else LeaderboardRows(rows=[], generators={})
    )
    _progress(run_id=run.pk, progress=READ_SHARE)
    outcomes = leaderboard_outcomes(rows=rows.rows)
    board = None
    if outcomes:
        board = leaderboard_compute(
            outcomes=outcomes,
            resamples=run.resamples,
            seed=run.seed,
            progress=lambda share: _progress(run_id=run.pk, progress=READ_SHARE + FIT_SHARE * share),
        )
    scores, scored_generators = reward_model_scores_by_generator(
        project=run.project, reward_model=run.reward_model
    )
    return leaderboard_result(
        board=board,
        rows=rows,
        outcomes=len(outcomes),
        scores=scores,
        scored_generators=scored_generators,
        reward_model=run.reward_model,
    )


def leaderboard_run_compute(*, run_id: int) -> LeaderboardRun | None:
    """Compute a queued run, or take over a running one whose worker fell silent; store its result
    (done) or its error (failed). None when there is nothing to do: the run is gone, finished, or
    another worker has it (a duplicate message)."""
    now = timezone.now()
    claimed = (
        LeaderboardRun.objects.filter(pk=run_id)
        .filter(
            Q(status=LeaderboardRunStatus.QUEUED)
            | Q(status=LeaderboardRunStatus.RUNNING, heartbeat_at__lt=now - RUNNING_STALE_AFTER)
        )
        .update(status=LeaderboardRunStatus.RUNNING, started_at=now, heartbeat_at=now, progress=0.0)
    )
    if not claimed:
        return None
    run = LeaderboardRun.objects.select_related("project", "reward_model").get(pk=run_id)
    try:
        result = _result(run)
    except Exception as error:  # any failure (the fit, the database, the time limit) ends the run
        logger.exception("leaderboard run %s failed", run_id)
        LeaderboardRun.objects.filter(pk=run_id, status=LeaderboardRunStatus.RUNNING).update(
            status=LeaderboardRunStatus.FAILED,
            error=f"{type(error).__name__}: {error}"[:2000],
            finished_at=timezone.now(),
        )
    else:
        LeaderboardRun.objects.filter(pk=run_id, status=LeaderboardRunStatus.RUNNING).update(
            status=LeaderboardRunStatus.DONE, result=result, progress=1.0, finished_at=timezone.now()
        )
    run.refresh_from_db()
    return run
