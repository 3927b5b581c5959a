"""Scoring candidates with a reward-model version: CandidateScore rows, idempotent.

A project can have millions of candidates: a task scores for SCORE_CHUNK_SECONDS at most (or until
its worker begins a warm shutdown) and then sends itself again for the rest, so no scoring task
outlives the broker's visibility timeout or holds up a shutdown, and nothing scored is lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet

from annotation.models import Candidate
from config.celery import worker_stop_requested
from config.errors import Conflict, NotFound
from rewards.ml.artifacts import artifact_load
from rewards.ml.scoring import texts_score_members
from rewards.models import CandidateScore, RewardModel, RewardModelStatus
from rewards.services.runs import candidates_score_enqueue

# Candidates scored and written per transaction: bounds memory and keeps progress if interrupted.
SCORE_BATCH = 256
# One scoring task's share of the work: well inside any task time limit, and a few seconds of it
# (loading the model) repeated per chunk.
SCORE_CHUNK_SECONDS = 60.0


def candidates_score_chunk(*, reward_model_id: int) -> int:
    """Score for up to SCORE_CHUNK_SECONDS, or until the worker shuts down; send scoring again if
    candidates are left. Returns how many scores were written."""
    started = time.monotonic()
    # A third of the task time limit at most, when that is shorter (tests shorten it).
    chunk = min(SCORE_CHUNK_SECONDS, settings.CELERY_TASK_TIME_LIMIT / 3)
    written = candidates_score(
        reward_model_id=reward_model_id,
        stop=lambda: worker_stop_requested() or time.monotonic() - started > chunk,
    )
    reward_model = RewardModel.objects.get(pk=reward_model_id)
    if _unscored(reward_model).exists():
        candidates_score_enqueue(reward_model_id)
    return written


def _unscored(reward_model: RewardModel) -> QuerySet[Candidate]:
    return Candidate.objects.filter(prompt__project_id=reward_model.project_id).exclude(
        scores__reward_model=reward_model
    )


def candidates_score(*, reward_model_id: int, stop: Callable[[], bool] | None = None) -> int:
    """Score every candidate of the run's project that this version has not scored yet, or stop
    between two batches once `stop()` says so.

    Returns how many scores were written. Safe to run twice or concurrently: existing scores
    are skipped and the unique (candidate, reward model) constraint drops duplicates.
    """
    reward_model = RewardModel.objects.filter(pk=reward_model_id).first()
    if reward_model is None:
        raise NotFound(f"reward model {reward_model_id} does not exist")
    if reward_model.status != RewardModelStatus.SUCCEEDED or not reward_model.artifact_path:
        raise Conflict(
            f"reward model {reward_model_id} is {reward_model.status}; it has no weights to score with"
        )
    pending = _unscored(reward_model).order_by("id")
    if not pending.exists():
        return 0
    loaded = artifact_load(reward_model.artifact_path)
    written = 0
    last_id = 0
    while True:
        if stop is not None and stop():
            return written
        batch = list(pending.filter(id__gt=last_id).select_related("prompt")[:SCORE_BATCH])
        if not batch:
            return written
        last_id = batch[-1].id
        scores, members = texts_score_members(
            loaded, [(candidate.prompt.turns, candidate.text) for candidate in batch]
        )
        with transaction.atomic():
            created = CandidateScore.objects.bulk_create(
                [
                    CandidateScore(
                        candidate=candidate,
                        reward_model=reward_model,
                        score=score,
                        member_scores=None if members is None else members[index],
                    )
                    for index, (candidate, score) in enumerate(zip(batch, scores, strict=True))
                ],
                ignore_conflicts=True,
            )
        written += len(created)


def reward_models_score_new_candidates() -> list[int]:
    """Enqueue scoring for every active version whose project has candidates it has not scored
    (candidates generated after the version was trained). Returns the versions enqueued."""
    enqueued = []
    for reward_model in RewardModel.objects.filter(is_active=True, status=RewardModelStatus.SUCCEEDED):
        if _unscored(reward_model).exists():
            transaction.on_commit(partial(candidates_score_enqueue, reward_model.pk))
            enqueued.append(reward_model.pk)
    return enqueued
