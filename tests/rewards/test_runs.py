"""Run bookkeeping: one run at a time, the periodic trigger, redelivery, takeover and recovery of
runs no worker has, cancelling."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from config.errors import Conflict, ValidationFailed
from rewards.models import RewardModel, RewardModelStatus
from rewards.services.retraining import reward_models_retrain_due
from rewards.services.runs import (
    MAX_ATTEMPTS,
    RESEND_UNSENT_AFTER,
    reward_model_cancel,
    reward_model_heartbeat,
    reward_model_request,
    reward_model_requeue,
    reward_model_runs_recover,
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
    # The broker hands the same message to another worker while the first still beats: nothing to do.
    assert reward_model_train(reward_model_id=run.pk, task_id="again") is None
    run.refresh_from_db()
    assert run.status == RewardModelStatus.RUNNING and run.celery_task_id == "first" and run.attempts == 1


def test_a_task_takes_over_a_run_whose_heartbeat_is_stale_and_the_old_attempt_is_shut_out(project):
    run = reward_model_request(project=project, trigger="api")
    first = reward_model_start(reward_model_id=run.pk, task_id="first")
    RewardModel.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))

    second = reward_model_start(reward_model_id=run.pk, task_id="second")

    assert second is not None and second.attempts == 2 and second.status == RewardModelStatus.RUNNING
    assert "attempt 2" in second.progress_message
    # The first worker, thought dead, wakes up: its beats and its result are refused.
    assert not reward_model_heartbeat(
        reward_model_id=run.pk, progress=0.9, message="x", attempt=first.attempts
    )
    assert reward_model_heartbeat(reward_model_id=run.pk, progress=0.1, message="y", attempt=2)


def test_a_run_started_too_often_fails_and_frees_the_project(project):
    run = reward_model_request(project=project, trigger="api")
    RewardModel.objects.filter(pk=run.pk).update(
        status=RewardModelStatus.RUNNING,
        attempts=MAX_ATTEMPTS,
        heartbeat_at=timezone.now() - timedelta(hours=1),
    )
    recovery = reward_model_runs_recover()
    run.refresh_from_db()
    assert recovery.failed == [run.pk] and recovery.resent == []
    assert run.status == RewardModelStatus.FAILED and "heartbeats" in run.error
    assert reward_model_request(project=project, trigger="api").status == RewardModelStatus.QUEUED


def test_recovery_resends_unsent_and_silent_runs_once(project, django_capture_on_commit_callbacks, settings):
    # No broker at all: every send fails, as when Redis is down.
    settings.CELERY_TASK_ALWAYS_EAGER = False
    run = reward_model_request(project=project, trigger="api")
    assert run.task_sent_at is None
    now = timezone.now()
    assert reward_model_runs_recover(now=now).resent == []  # a send may still be in flight
    later = now + RESEND_UNSENT_AFTER + timedelta(seconds=1)
    assert reward_model_runs_recover(now=later).resent == [run.pk]
    # Sent this time: not sent again, though nobody has picked it up yet.
    RewardModel.objects.filter(pk=run.pk).update(task_sent_at=later)
    assert reward_model_runs_recover(now=later + timedelta(seconds=90)).resent == []

    # A worker started it and fell silent: re-sent once, not on every pass.
    reward_model_start(reward_model_id=run.pk)
    RewardModel.objects.filter(pk=run.pk).update(
        task_sent_at=timezone.now() - timedelta(minutes=62), heartbeat_at=timezone.now() - timedelta(hours=1)
    )
    assert reward_model_runs_recover().resent == [run.pk]
    RewardModel.objects.filter(pk=run.pk).update(task_sent_at=timezone.now())
    assert reward_model_runs_recover().resent == []
    # A new request finds the run still in flight (being recovered), not failed.
    with pytest.raises(Conflict):
        reward_model_request(project=project, trigger="api")


def test_a_warm_shutdown_puts_the_run_back_in_the_queue(project):
    run = reward_model_request(project=project, trigger="api")
    started = reward_model_start(reward_model_id=run.pk)
    assert reward_model_requeue(reward_model_id=run.pk, attempt=started.attempts, reason="worker shut down")
    run.refresh_from_db()
    assert run.status == RewardModelStatus.QUEUED and run.task_sent_at is None
    again = reward_model_start(reward_model_id=run.pk)
    assert again is not None and again.attempts == 2


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
