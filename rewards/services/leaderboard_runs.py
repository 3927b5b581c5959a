"""Writes for leaderboard runs, on the request side: ask for the leaderboard (the cache per data
cut-off), refresh it, send the task, and recover runs no worker has. The computation itself is in
leaderboard_compute.py, which only workers import (it loads torch).

A run's life: queued -> running -> done | failed; one queued-or-running run per project (a DB
constraint backs the check). A run is computed on the counted rankings up to its cut-off and the
active reward-model version of its request; its `data_key` names those data, and a finished run with
the current data key is the answer to every later request until a ranking arrives, a quality action
touches one, or another version becomes active. A failed run is answered too (with its error), not
retried on every page load: refresh retries it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotation.models import Project
from annotation.selectors.leaderboard import leaderboard_cutoff
from config.celery import RESEND_EVERY_SECONDS, task_send, task_send_safely
from rewards.models import LeaderboardRun, LeaderboardRunStatus
from rewards.selectors.leaderboard import (
    IN_FLIGHT,
    leaderboard_run_for_data,
    leaderboard_run_in_flight,
    leaderboard_run_latest_done,
)
from rewards.selectors.reward_models import reward_model_active

logger = logging.getLogger(__name__)

# Sent by name (config.celery.task_send): rewards.tasks imports the compute module and torch.
COMPUTE_TASK = "rewards.leaderboard_compute"
# The default number of bootstrap resamples (rewards.leaderboard.RESAMPLES, repeated here so that
# a web process need not import torch to read it; a test keeps the two equal).
RESAMPLES = 1000
# A queued run whose task has not reached the broker after this long is sent again (a send is
# usually done within milliseconds of the commit).
RESEND_UNSENT_AFTER = timedelta(seconds=RESEND_EVERY_SECONDS)
# A queued run no worker picked up in this long fails, so that asking again can queue another.
QUEUED_STALE_AFTER = timedelta(hours=1)
# A running run reports progress after every chunk of resamples (seconds apart); silent this long,
# past the task's time limit, its worker is dead.
RUNNING_STALE_AFTER = timedelta(minutes=15)


@dataclass(frozen=True)
class LeaderboardState:
    """What the API shows: the run on the current data (done: the cached answer; queued or running:
    with its progress; failed: with its error) and the newest done run, shown meanwhile."""

    run: LeaderboardRun
    latest: LeaderboardRun | None
    data_key: str

    @property
    def up_to_date(self) -> bool:
        """The shown result is on the current data."""
        return self.latest is not None and self.latest.data_key == self.data_key


def leaderboard_data_key(*, project: Project) -> tuple[str, datetime | None]:
    """The project's current data key (see the module's docstring) and ranking cut-off."""
    cutoff = leaderboard_cutoff(project_id=project.pk)
    active = reward_model_active(project=project)
    return f"{cutoff.key}|rm{active.pk if active is not None else 0}", cutoff.latest_ranking_at


def leaderboard_run_send(*, run_id: int) -> bool:
    """Send the run's task now and record that it reached the broker (call after commit); False,
    logged, when the broker is unreachable: the next request for the leaderboard sends it again."""
    sent = task_send_safely(
        partial(task_send, COMPUTE_TASK, run_id), what=f"the leaderboard task of run {run_id}"
    )
    if sent:
        LeaderboardRun.objects.filter(pk=run_id, status__in=IN_FLIGHT).update(task_sent_at=timezone.now())
    return sent


def _send_after_commit(run_id: int) -> None:
    # robust: the run is committed whatever the broker says; an unsent run is sent again later.
    transaction.on_commit(lambda: leaderboard_run_send(run_id=run_id), robust=True)


def _runs_recover(*, project: Project, now: datetime) -> None:
    """Fail in-flight runs that no worker has any more and send again those never sent."""
    runs = LeaderboardRun.objects.select_for_update().filter(project=project, status__in=IN_FLIGHT)
    runs.filter(status=LeaderboardRunStatus.QUEUED, created_at__lt=now - QUEUED_STALE_AFTER).update(
        status=LeaderboardRunStatus.FAILED,
        error="No worker picked up this run within an hour; refresh to queue another.",
        finished_at=now,
    )
    runs.filter(status=LeaderboardRunStatus.RUNNING, heartbeat_at__lt=now - RUNNING_STALE_AFTER).update(
        status=LeaderboardRunStatus.FAILED,
        error="The worker stopped reporting progress (killed or lost); refresh to queue another.",
        finished_at=now,
    )
    unsent = runs.filter(
        status=LeaderboardRunStatus.QUEUED,
        task_sent_at__isnull=True,
        created_at__lt=now - RESEND_UNSENT_AFTER,
    )
    for run_id in unsent.values_list("pk", flat=True):
        logger.warning("leaderboard run %s never reached the broker; sending it again", run_id)
        _send_after_commit(run_id)


@transaction.atomic
def leaderboard_request(
    *,
    project: Project,
    requested_by: User | None = None,
    refresh: bool = False,
    resamples: int = RESAMPLES,
) -> LeaderboardState:
    """The leaderboard's state for the project, queuing a run (its task sent after commit) when
    none is in flight and none has finished on the current data; with `refresh`, also when one has
    (a failed run retried, or the same data computed again).

    Never two runs in flight per project: while one is, it is the answer (even on older data: the
    request after it finishes queues the next).
    """
    if resamples < 0:
        raise ValueError("resamples must be >= 0")
    now = timezone.now()
    _runs_recover(project=project, now=now)
    data_key, cutoff = leaderboard_data_key(project=project)
    run = leaderboard_run_in_flight(project=project)
    if run is None and not refresh:
        run = leaderboard_run_for_data(project=project, data_key=data_key, resamples=resamples)
    if run is None:
        try:
            with transaction.atomic():
                run = LeaderboardRun.objects.create(
                    project=project,
                    cutoff=cutoff,
                    data_key=data_key,
                    reward_model=reward_model_active(project=project),
                    resamples=resamples,
                    requested_by=requested_by,
                )
        except IntegrityError:
            # Another request queued one between our check and our insert: that one is the answer.
            run = leaderboard_run_in_flight(project=project)
            if run is None:
                raise
        else:
            _send_after_commit(run.pk)
    return LeaderboardState(run=run, latest=leaderboard_run_latest_done(project=project), data_key=data_key)
