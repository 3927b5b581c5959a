"""A training worker killed, or shut down, in the middle of training: the run is redone by the next
worker, and the previous version stays active until the new one succeeds.

Real Celery workers on a Redis of our own (tests/faults/processes.py) train against the test
database, so this needs PostgreSQL. Short bounds come through the workers' environment: a run
silent for REWARD_MODEL_STALE_SECONDS is taken for dead.
"""

from __future__ import annotations

import time

import pytest

from config.celery import app as celery_app
from rewards.models import RewardModel, RewardModelStatus
from rewards.services.runs import reward_model_request
from tests.faults.processes import Worker, celery_broker, redis_server_fixture, wait_for  # noqa: F401

STALE_SECONDS = 3


@pytest.fixture
def training_setup(project, labeler, make_rankings, tiny_config, settings, tmp_path):
    """Rankings, an active version 1, and a run queued with far too many epochs to finish."""
    settings.REWARD_MODEL_ARTIFACT_DIR = tmp_path / "reward_models"
    settings.REWARD_MODEL_STALE_SECONDS = STALE_SECONDS
    make_rankings(project, prompts=8, labeler=labeler)
    previous = RewardModel.objects.create(
        project=project,
        trigger="api",
        status=RewardModelStatus.SUCCEEDED,
        version=1,
        is_active=True,
        artifact_path=str(tmp_path / "v1"),
    )
    project.reward_model_config = {**tiny_config, "epochs": 10_000}
    project.save()
    env = {
        "REWARD_MODEL_ARTIFACT_DIR": str(settings.REWARD_MODEL_ARTIFACT_DIR),
        "REWARD_MODEL_STALE_SECONDS": str(STALE_SECONDS),
        "CELERY_WORKER_WARM_SHUTDOWN_SECONDS": "20",
    }
    return previous, env


def _training_started(run: RewardModel) -> bool:
    run.refresh_from_db()
    return run.status == RewardModelStatus.RUNNING and run.progress > 0


def _finish_quickly(run: RewardModel, tiny_config: dict) -> None:
    # The attempt that takes over trains one epoch: what is tested is that it happens, not training.
    RewardModel.objects.filter(pk=run.pk).update(config={**tiny_config, "epochs": 1})


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.timeout(120)
@pytest.mark.django_db(transaction=True)
def test_a_run_whose_worker_was_killed_is_taken_over_by_the_next_worker(
    project, training_setup, tiny_config, redis_server, tmp_path
):
    previous, env = training_setup
    workers = [
        Worker(broker_url=redis_server.url, log=tmp_path / f"w{n}.log", env=env, queues="default,training")
        for n in (1, 2)
    ]
    try:
        workers[0].start().wait_ready()
        with celery_broker(redis_server.url):
            run = reward_model_request(project=project, trigger="api")
            wait_for(
                lambda: _training_started(run), timeout=60, what=f"training\n{workers[0].output()[-2000:]}"
            )
            workers[0].kill()
            killed_at = time.monotonic()
            run.refresh_from_db()
            previous.refresh_from_db()
            assert (
                run.status == RewardModelStatus.RUNNING and run.attempts == 1
            )  # nobody got to say otherwise
            assert previous.is_active
            _finish_quickly(run, tiny_config)
            workers[1].start().wait_ready()

            def succeeded() -> bool:
                # Beat's minute-by-minute recovery job, run by the new worker every second here.
                celery_app.send_task("rewards.reward_model_runs_recover")
                run.refresh_from_db()
                if run.status != RewardModelStatus.SUCCEEDED:
                    previous.refresh_from_db()
                    assert previous.is_active, (
                        "the previous version lost its place before a new one succeeded"
                    )
                return run.status == RewardModelStatus.SUCCEEDED

            wait_for(succeeded, timeout=60, every=1, what=f"the run\n{workers[1].output()[-3000:]}")
            redo_seconds = time.monotonic() - killed_at
    finally:
        for worker in workers:
            worker.kill()
    print(
        f"\nkilled training worker: run taken over (attempt {run.attempts}) and finished {redo_seconds:.1f} s "
        f"after SIGKILL (heartbeat stale after {STALE_SECONDS} s); re-sent: 1 training task; lost: 0"
    )
    previous.refresh_from_db()
    assert run.attempts == 2 and run.version == 2 and run.is_active and not previous.is_active
    assert not RewardModel.objects.filter(status__in=["queued", "running"]).exists()
    assert redo_seconds < STALE_SECONDS + 40


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.timeout(120)
@pytest.mark.django_db(transaction=True)
def test_a_warm_shutdown_mid_training_requeues_the_run_at_once_for_the_next_worker(
    project, training_setup, tiny_config, redis_server, tmp_path
):
    previous, env = training_setup
    workers = [
        Worker(broker_url=redis_server.url, log=tmp_path / f"w{n}.log", env=env, queues="default,training")
        for n in (1, 2)
    ]
    try:
        workers[0].start().wait_ready()
        with celery_broker(redis_server.url):
            run = reward_model_request(project=project, trigger="api")
            wait_for(
                lambda: _training_started(run), timeout=60, what=f"training\n{workers[0].output()[-2000:]}"
            )
            _finish_quickly(run, tiny_config)
            stopped_at = time.monotonic()
            workers[0].process.terminate()  # SIGTERM, what `docker stop` sends
            workers[0].process.wait(timeout=30)
            shutdown_seconds = time.monotonic() - stopped_at
            run.refresh_from_db()
            assert run.status == RewardModelStatus.QUEUED and run.task_sent_at is not None, (
                run.progress_message
            )
            workers[1].start().wait_ready()
            wait_for(
                lambda: run.refresh_from_db() or run.status == RewardModelStatus.SUCCEEDED,
                timeout=60,
                what=f"the run\n{workers[1].output()[-3000:]}",
            )
            redo_seconds = time.monotonic() - stopped_at
    finally:
        for worker in workers:
            worker.kill()
    print(
        f"\nwarm shutdown mid-training: worker exited {shutdown_seconds:.1f} s after SIGTERM (bound 20 s, "
        f"compose grace 60 s), run re-queued and finished by the next worker {redo_seconds:.1f} s after it"
    )
    assert shutdown_seconds < 15  # it stopped at its next step, not at the cold-shutdown bound
    assert run.attempts == 2 and run.is_active
