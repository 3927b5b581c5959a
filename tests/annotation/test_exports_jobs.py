"""Background exports: the API and the dashboard queue an ExportJob, the Celery task writes the file,
progress and the download link are served."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings

from annotation.models import ExportJob, Membership
from annotation.models.exports import ExportStatus
from annotation.models.projects import Role
from annotation.services.exports import (
    export_job_create,
    export_job_run,
    export_request_validate,
    export_stream,
)
from config.celery import app as celery_app
from tests.annotation.export_data import ranked_prompt


@pytest.fixture
def eager_celery():
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture
def export_dir(tmp_path):
    with override_settings(EXPORT_DIR=tmp_path / "exports"):
        yield tmp_path / "exports"


@pytest.fixture
def project_admin(project, django_user_model, password):
    user = django_user_model.objects.create_user("carol", "carol@example.com", password)
    Membership.objects.create(project=project, user=user, role=Role.ADMIN)
    return user


@pytest.fixture
def ranked(project, labeler, other_labeler):
    for index in range(3):
        ranked_prompt(project, index, [labeler, other_labeler], [[[0], [1], [2], [3]], [[0], [1], [3], [2]]])
    return project


def test_api_job_runs_and_serves_its_file(
    ranked, project_admin, api_client, eager_celery, export_dir, django_capture_on_commit_callbacks
):
    api_client.force_authenticate(project_admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(
            f"/api/projects/{ranked.pk}/exports/start",
            {"export_format": "pairs", "file_format": "jsonl", "filters": {"min_agreement": 0.5}},
            format="json",
        )
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]
    detail = api_client.get(f"/api/exports/{job_id}/").json()
    assert detail["status"] == "succeeded", detail
    assert detail["progress"] == 1.0 and detail["rows_written"] == 36 == detail["rows_total"]
    assert detail["filters"] == {"min_agreement": 0.5}
    download = api_client.get(detail["download_url"])
    assert download.status_code == 200
    body = b"".join(download.streaming_content)
    expected = b"".join(
        export_stream(
            request=export_request_validate(
                project=ranked, export_format="pairs", file_format="jsonl", filters={"min_agreement": 0.5}
            )
        )
    )
    assert [json.loads(x)["chosen_id"] for x in body.splitlines()] == [
        json.loads(x)["chosen_id"] for x in expected.splitlines()
    ]
    assert list(export_dir.rglob("*.part")) == []
    listing = api_client.get(f"/api/projects/{ranked.pk}/exports/").json()
    assert listing["count"] == 1 and listing["results"][0]["id"] == job_id


def test_api_start_refuses_bad_input(ranked, project_admin, api_client):
    api_client.force_authenticate(project_admin)
    response = api_client.post(
        f"/api/projects/{ranked.pk}/exports/start",
        {"export_format": "pairs", "filters": {"date_from": "soon"}},
        format="json",
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_filter"
    assert not ExportJob.objects.exists()


def test_api_job_anonymises_without_any_seed_in_the_job_or_its_output(
    ranked, project_admin, api_client, eager_celery, export_dir, django_capture_on_commit_callbacks
):
    api_client.force_authenticate(project_admin)
    refused = api_client.post(
        f"/api/projects/{ranked.pk}/exports/start",
        {"export_format": "pairs", "filters": {"anonymise_seed": "s3cret"}},
        format="json",
    )
    assert refused.status_code == 400 and not ExportJob.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(
            f"/api/projects/{ranked.pk}/exports/start",
            {"export_format": "pairs", "filters": {"anonymise": True}},
            format="json",
        )
    assert response.status_code == 202, response.content
    detail = api_client.get(f"/api/exports/{response.json()['id']}/").json()
    assert detail["filters"] == {"anonymise": True} and "seed" not in json.dumps(detail)
    rows = [
        json.loads(x) for x in b"".join(api_client.get(detail["download_url"]).streaming_content).splitlines()
    ]
    assert rows and all(row["labeler"].startswith("labeler-") for row in rows)


def test_job_run_is_idempotent_and_records_failures(ranked, project_admin, export_dir):
    job = export_job_create(
        project=ranked,
        requested_by=project_admin,
        export_format="rankings",
        file_format="parquet",
        filters={},
    )
    first = export_job_run(job_id=job.pk)
    assert first.status == ExportStatus.SUCCEEDED and first.rows_written == 3
    finished_at = first.finished_at
    again = export_job_run(job_id=job.pk)
    assert again.finished_at == finished_at
    broken = ExportJob.objects.create(
        project=ranked, export_format="pairs", file_format="jsonl", filters={"x": 1}
    )
    failed = export_job_run(job_id=broken.pk)
    assert failed.status == ExportStatus.FAILED and "unknown filter" in failed.error
    assert export_job_run(job_id=999_999) is None


def test_a_file_outside_the_export_dir_is_never_served(
    ranked, project_admin, api_client, export_dir, tmp_path
):
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve")
    job = ExportJob.objects.create(
        project=ranked,
        export_format="pairs",
        file_format="jsonl",
        status=ExportStatus.SUCCEEDED,
        file_path=str(secret),
    )
    api_client.force_authenticate(project_admin)
    response = api_client.get(f"/api/exports/{job.pk}/download")
    assert response.status_code == 404 and response.json()["error"]["code"] == "export_file_missing"


def test_dashboard_start_then_download(
    ranked, project_admin, client, eager_celery, export_dir, django_capture_on_commit_callbacks
):
    client.force_login(project_admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/dashboard/projects/{ranked.pk}/exports/start",
            {"export_format": "hh_rlhf", "file_format": "jsonl.gz", "anonymise": "on"},
        )
    assert response.status_code == 302
    job = ExportJob.objects.get()
    assert job.status == ExportStatus.SUCCEEDED and job.filters == {"anonymise": True}
    assert "anonymise=on" in response["Location"] and "seed" not in response["Location"]
    page = client.get(f"/dashboard/projects/{ranked.pk}/exports/")
    assert f"/dashboard/exports/{job.pk}/file".encode() in page.content
    download = client.get(f"/dashboard/exports/{job.pk}/file")
    assert download.status_code == 200
    assert b"".join(download.streaming_content)[:2] == b"\x1f\x8b"
    bad = client.post(f"/dashboard/projects/{ranked.pk}/exports/start", {"export_format": "nope"})
    assert bad.status_code == 400 and ExportJob.objects.count() == 1


@pytest.mark.redis
def test_export_job_is_sent_to_the_redis_broker_after_commit(
    ranked, project_admin, django_capture_on_commit_callbacks
):
    with celery_app.connection_for_write() as connection:
        client = connection.default_channel.client
        client.delete("default")
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            job = export_job_create(
                project=ranked,
                requested_by=project_admin,
                export_format="pairs",
                file_format="jsonl",
                filters={},
            )
        assert client.llen("default") == 0  # nothing is sent before the transaction commits
        for callback in callbacks:
            callback()
        raw = client.lpop("default")
        assert raw is not None
        message = json.loads(raw)
        assert message["headers"]["task"] == "annotation.export_run"
        assert json.loads(__import__("base64").b64decode(message["body"]))[0] == [job.pk]


@pytest.mark.django_db
def test_job_progress_counts_rows_read_and_misspelt_filters_are_refused(
    ranked, project_admin, api_client, export_dir
):
    from annotation.models import Ranking
    from annotation.selectors.exports import export_job_progress

    # Rankings are read one per ranking but written one per prompt: progress follows the reading.
    job = export_job_create(
        project=ranked, requested_by=project_admin, export_format="rankings", file_format="jsonl", filters={}
    )
    job = export_job_run(job_id=job.pk)
    assert job.status == ExportStatus.SUCCEEDED and job.rows_written == 3
    assert job.rows_read == Ranking.objects.filter(prompt__project=ranked).count() == 6
    job.status, job.rows_total, job.rows_read, job.rows_written = ExportStatus.RUNNING, 6, 3, 1
    assert export_job_progress(job=job) == 0.5

    api_client.force_authenticate(project_admin)
    response = api_client.post(
        f"/api/projects/{ranked.pk}/exports/start",
        {"export_format": "pairs", "filters": {"min_agreemnt": 0.9}},
        format="json",
    )
    assert response.status_code == 400 and "min_agreemnt" in json.dumps(response.json())
    assert ExportJob.objects.count() == 1
    impossible = api_client.get(
        f"/api/projects/{ranked.pk}/exports/stream?export_format=pairs&date_from=2024-02-30"
    )
    assert impossible.status_code == 400 and impossible.json()["error"]["code"] == "invalid_filter"
