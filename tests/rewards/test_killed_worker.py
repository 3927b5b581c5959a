"""A worker killed in the middle of training: the run ends failed, the previous version stays active.

Training runs in a real separate process (the training service, as the Celery task calls it) that
is SIGKILLed mid-training; then the periodic job finds the stale heartbeat. The other process must
see the test database, so this needs PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from rewards.models import RewardModel, RewardModelStatus
from rewards.services.runs import reward_model_runs_fail_stale
from rewards.services.training import reward_model_train
from rewards.tasks import reward_models_retrain_due

ROOT = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    settings = connection.settings_dict
    password = f":{settings['PASSWORD']}" if settings.get("PASSWORD") else ""
    return (
        f"postgres://{settings['USER']}{password}@{settings['HOST'] or '127.0.0.1'}:"
        f"{settings['PORT'] or 5432}/{settings['NAME']}"
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_training_leaves_the_run_failed_and_the_old_version_active(
    project, labeler, make_rankings, tiny_config, artifact_dir, settings
):
    make_rankings(project, prompts=8, labeler=labeler)
    previous = RewardModel.objects.create(
        project=project,
        trigger="api",
        status=RewardModelStatus.SUCCEEDED,
        version=1,
        is_active=True,
        artifact_path=str(artifact_dir / "v1"),
    )
    # Many epochs so the worker is still training when it is killed.
    run = RewardModel.objects.create(project=project, trigger="api", config={**tiny_config, "epochs": 10_000})
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REWARD_MODEL_ARTIFACT_DIR": str(artifact_dir),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "HF_HUB_OFFLINE": "1",
    }
    code = (
        "import django; django.setup()\n"
        "import rewards.services.training as training\n"
        "training.HEARTBEAT_EVERY_SECONDS = 0.2\n"
        f"training.reward_model_train(reward_model_id={run.pk}, task_id='worker-1')\n"
    )
    worker = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            run.refresh_from_db()
            if run.status == RewardModelStatus.RUNNING and run.progress > 0:
                break
            assert worker.poll() is None, "the worker exited before training started"
            time.sleep(0.2)
        else:
            pytest.fail("training never started")
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == -signal.SIGKILL

    run.refresh_from_db()
    assert run.status == RewardModelStatus.RUNNING  # nothing got to say otherwise
    assert reward_model_runs_fail_stale() == 0  # the heartbeat is still recent

    settings.REWARD_MODEL_STALE_SECONDS = 1
    time.sleep(1.5)
    reward_models_retrain_due()  # the periodic job, as beat runs it
    run.refresh_from_db()
    previous.refresh_from_db()
    assert run.status == RewardModelStatus.FAILED and "heartbeat" in run.error
    assert run.version is None and not run.is_active
    assert previous.is_active
    # The message redelivered after the crash (acks_late) finds the run failed and trains nothing.
    assert reward_model_train(reward_model_id=run.pk, task_id="worker-2") is None
