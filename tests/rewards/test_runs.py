"""Run bookkeeping: one run at a time, the periodic trigger, redelivery, stale runs, cancelling."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from config.errors import Conflict, ValidationFailed
from rewards.models import RewardModel, RewardModelStatus
from rewards.services.retraining import reward_models_retrain_due
from rewards.services.runs import (
    reward_model_cancel,
    reward_model_heartbeat,
    reward_model_request,
    reward_model_runs_fail_stale,
    reward_model_start,
)
from rewards.services.training import reward_model_train


def test_a_second_request_while_one_is_queued_or_running_is_refused(project):
    first = reward_model_request(project=project, trigger="api")
    with pytest.raises(Conflict) as refused:
        reward_model_request(project=project, trigger="admin")
    assert refused.value.status_code == 409
    assert f"run {first.pk}" in refused.value.message and "already queued" in refused.value.message
    reward_model_start(reward_model_id=first.pk)
    with pytest.raises(Conflict, match="already running"):
        reward_model_request(project=project, trigger="schedule")
    assert RewardModel.objects.filter(project=project).count() == 1


def test_a_bad_project_config_is_refused_before_queueing(project):
    project.reward_model_config = {"epochs": 0}
    project.save()
    with pytest.raises(ValidationFailed, match="epochs"):
        reward_model_request(project=project, trigger="api")
    assert not RewardModel.objects.exists()


def test_the_periodic_trigger_fires_at_n_new_comparisons_and_not_before(project, labeler, make_rankings):
    # Each ranking of the fixture implies 5 comparisons.
    project.retrain_min_new_comparisons = 15
    project.save()
    make_rankings(project, prompts=2, labeler=labeler)  # 10 comparisons
    assert reward_models_retrain_due() == []
    make_rankings(project, prompts=1, labeler=labeler, start=2)  # 15: due
    [started] = reward_models_retrain_due()
    assert started.trigger == "schedule" and started.status == RewardModelStatus.QUEUED
    assert reward_models_retrain_due() == []  # one run at a time

    # After a success, only comparisons past its cut-off count.
    RewardModel.objects.filter(pk=started.pk).update(
        status=RewardModelStatus.SUCCEEDED, version=1, is_active=True, data_cutoff=timezone.now()
    )
    make_rankings(project, prompts=2, labeler=labeler, start=3)  # 10 new
    assert reward_models_retrain_due() == []
    make_rankings(project, prompts=1, labeler=labeler, start=5)  # 15 new
    assert len(reward_models_retrain_due()) == 1

    project.retrain_enabled = False
    project.save()
    RewardModel.objects.filter(status=RewardModelStatus.QUEUED).update(status=RewardModelStatus.CANCELLED)
    assert reward_models_retrain_due() == []


def test_a_redelivered_task_does_not_train_twice(project):
    run = reward_model_request(project=project, trigger="api")
    assert reward_model_start(reward_model_id=run.pk, task_id="first") is not None
    # The broker hands the same message to another worker: the run is no longer queued.
    assert reward_model_train(reward_model_id=run.pk, task_id="again") is None
    run.refresh_from_db()
    assert run.status == RewardModelStatus.RUNNING and run.celery_task_id == "first"


def test_stale_runs_fail_and_free_the_project(project):
    run = reward_model_request(project=project, trigger="api")
    reward_model_start(reward_model_id=run.pk)
    assert reward_model_runs_fail_stale() == 0  # fresh heartbeat
    RewardModel.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    # A new request first fails the stale run, then queues.
    second = reward_model_request(project=project, trigger="api")
    run.refresh_from_db()
    assert run.status == RewardModelStatus.FAILED and "heartbeat" in run.error
    assert second.status == RewardModelStatus.QUEUED


def test_cancel_stops_a_running_run_at_its_next_heartbeat(project):
    run = reward_model_request(project=project, trigger="api")
    reward_model_start(reward_model_id=run.pk)
    assert reward_model_heartbeat(reward_model_id=run.pk, progress=0.5, message="half way")
    reward_model_cancel(reward_model=run)
    assert not reward_model_heartbeat(reward_model_id=run.pk, progress=0.6, message="more")
    run.refresh_from_db()
    assert run.status == RewardModelStatus.CANCELLED and run.progress == 0.5
    with pytest.raises(Conflict):
        reward_model_cancel(reward_model=run)


def test_candidates_added_after_training_are_scored_by_the_active_version(
    project, labeler, make_rankings, tiny_config, artifact_dir
):
    from rewards.services.scoring import candidates_score, reward_models_score_new_candidates
    from tests.rewards.conftest import candidate_add

    project.reward_model_config = tiny_config
    project.save()
    make_rankings(project, prompts=4, labeler=labeler)
    version = reward_model_train(reward_model_id=reward_model_request(project=project, trigger="api").pk)
    candidates_score(reward_model_id=version.pk)
    assert reward_models_score_new_candidates() == []
    candidate_add(project.prompts.first(), "A brand new answer.")
    assert reward_models_score_new_candidates() == [version.pk]
    assert candidates_score(reward_model_id=version.pk) == 1
