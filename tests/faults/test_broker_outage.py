"""The broker is down when an export or a retrain is started: the request still answers 202 with
the row, and once Redis is back the re-send jobs deliver both tasks to a real worker, which runs them.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from annotation.models import ExportJob
from annotation.models.exports import ExportStatus
from annotation.services.exports import NOT_SENT, RESEND_AFTER, export_jobs_resend
from rewards.models import RewardModel, RewardModelStatus
from rewards.services.runs import RESEND_UNSENT_AFTER, reward_model_runs_recover
from tests.faults.processes import Worker, celery_broker, wait_for


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.timeout(90)
@pytest.mark.django_db(transaction=True)
def test_work_started_while_redis_is_down_is_sent_when_it_is_back(
    project, admin_user, labeler, make_rankings, tiny_config, shared_dirs, redis_server, tmp_path
):
    project.reward_model_config = tiny_config
    project.save()
    make_rankings(project, prompts=6, labeler=labeler)
    client = APIClient()
    client.force_authenticate(admin_user)
    worker = Worker(
        broker_url=redis_server.url, log=tmp_path / "worker.log", env=shared_dirs, queues="default,training"
    )
    try:
        worker.start().wait_ready()
        with celery_broker(redis_server.url):
            redis_server.kill()
            started = time.monotonic()
            export = client.post(
                f"/api/projects/{project.pk}/exports/start",
                {"export_format": "pairs", "file_format": "jsonl"},
                format="json",
            )
            retrain = client.post(f"/api/projects/{project.pk}/reward-models/retrain")
            request_seconds = time.monotonic() - started

            assert export.status_code == 202, export.content
            assert retrain.status_code == 202, retrain.content
            assert export.json()["status"] == "queued" and export.json()["error"] == NOT_SENT
            assert retrain.json()["status"] == "queued"
            job = ExportJob.objects.get(pk=export.json()["id"])
            run = RewardModel.objects.get(pk=retrain.json()["id"])
            assert job.error == NOT_SENT and run.task_sent_at is None  # nothing reached a worker

            redis_server.start()  # the same port, empty: whatever was queued before is gone
            back = time.monotonic()
            # What beat's two jobs do once the rows are a minute old.
            later = timezone.now() + max(RESEND_AFTER, RESEND_UNSENT_AFTER) + timedelta(seconds=1)
            assert export_jobs_resend(now=later) == [job.pk]
            assert reward_model_runs_recover(now=later).resent == [run.pk]
            assert export_jobs_resend(now=later) == []  # sent: not sent twice
            assert reward_model_runs_recover(now=later).resent == []

        def finished() -> bool:
            job.refresh_from_db()
            run.refresh_from_db()
            return job.status == ExportStatus.SUCCEEDED and run.status == RewardModelStatus.SUCCEEDED

        recovery_seconds = wait_for(
            finished, timeout=60, what=f"the export and the run\n{worker.output()[-3000:]}"
        )
    finally:
        worker.stop()
    print(
        f"\nbroker outage: 2 requests answered 202 in {request_seconds:.2f} s with Redis down; "
        f"re-sent 1 export job and 1 reward-model run; both done {time.monotonic() - back:.1f} s after "
        f"Redis came back (worker reconnect and work: {recovery_seconds:.1f} s); lost: 0"
    )
    assert request_seconds < 10
    assert run.version == 1 and run.is_active and job.rows_written > 0
    assert not RewardModel.objects.filter(status__in=["queued", "running"]).exists()
    assert not ExportJob.objects.filter(status__in=["queued", "running"]).exists()
