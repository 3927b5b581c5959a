"""Background prompt imports: started through the API or the admin's upload page, polled for progress,
all or nothing, and 100,000 prompts at once on PostgreSQL (past its 65,535 bind parameters)."""

from __future__ import annotations

import json
import resource
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from annotation.models import Membership, Prompt, PromptImportJob
from annotation.models.projects import Role
from annotation.services import prompt_imports
from annotation.services.prompt_imports import prompt_import_job_run
from annotation.services.prompts import turns_hash
from config.celery import app as celery_app

pytestmark = pytest.mark.django_db


@pytest.fixture
def eager_celery():
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture
def media_dir(tmp_path):
    with override_settings(MEDIA_ROOT=tmp_path / "media"):
        yield tmp_path / "media"


@pytest.fixture
def project_admin(project, django_user_model, password):
    user = django_user_model.objects.create_user("carol", "carol@example.com", password)
    Membership.objects.create(project=project, user=user, role=Role.ADMIN)
    return user


def _jsonl(*prompts: str) -> bytes:
    return "\n".join(json.dumps({"prompt": text}) for text in prompts).encode()


def _start(api_client, project, content: bytes, name: str = "prompts.jsonl", **extra):
    upload = SimpleUploadedFile(name, content)
    return api_client.post(
        f"/api/projects/{project.pk}/imports/start", {"file": upload, **extra}, format="multipart"
    )


def test_api_import_runs_in_the_background_and_is_polled(
    project, project_admin, api_client, eager_celery, media_dir, django_capture_on_commit_callbacks
):
    api_client.force_authenticate(project_admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = _start(api_client, project, _jsonl("One?", "Two?", "One?"), source="batch-1")
    assert response.status_code == 202, response.content
    started = response.json()
    job = api_client.get(f"/api/imports/{started['id']}/").json()
    assert (job["status"], job["imported"], job["duplicates"], job["rows_read"]) == ("succeeded", 2, 1, 3)
    assert job["progress"] == 1.0 and job["errors"] == [] and job["error_count"] == 0
    assert set(Prompt.objects.filter(project=project).values_list("source", flat=True)) == {"batch-1"}
    assert not list(media_dir.rglob("*.jsonl"))  # the upload is removed once the job ends
    listed = api_client.get(f"/api/projects/{project.pk}/imports/").json()
    assert [item["id"] for item in listed["results"]] == [started["id"]]


def test_a_bad_line_anywhere_imports_nothing_and_is_named(
    project, project_admin, api_client, eager_celery, media_dir, django_capture_on_commit_callbacks
):
    api_client.force_authenticate(project_admin)
    content = _jsonl(*(f"Question {index}?" for index in range(12_000))) + b'\n{"prompt": "nul \\u0000"}\n'
    with django_capture_on_commit_callbacks(execute=True):
        response = _start(api_client, project, content)
    job = api_client.get(f"/api/imports/{response.json()['id']}/").json()
    assert job["status"] == "failed" and job["imported"] == 0 and job["error_count"] == 1
    assert job["rows_read"] == 12_001
    assert job["errors"] == [
        {"line": 12_001, "reason": "text that cannot be stored: a NUL character at position 4 in $.prompt"}
    ]
    assert Prompt.objects.count() == 0


def test_api_refuses_other_files_and_non_admins(
    project, project_admin, labeler, api_client, media_dir, django_capture_on_commit_callbacks
):
    api_client.force_authenticate(project_admin)
    response = _start(api_client, project, b"prompt\nHi\n", name="prompts.txt")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_file"
    response = api_client.post(f"/api/projects/{project.pk}/imports/start", {}, format="multipart")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid"
    api_client.force_authenticate(labeler)
    assert _start(api_client, project, b"prompt\nHi\n", name="p.csv").status_code == 403
    assert PromptImportJob.objects.count() == 0


def test_job_run_is_idempotent_and_a_redelivered_job_starts_over(
    project, project_admin, api_client, media_dir, django_capture_on_commit_callbacks
):
    api_client.force_authenticate(project_admin)
    with django_capture_on_commit_callbacks(execute=False):  # no worker: the task is not run
        job_id = _start(api_client, project, _jsonl("A?", "B?"), name="p.jsonl").json()["id"]
    # A worker died half-way: the job says importing, nothing of it was committed.
    PromptImportJob.objects.filter(pk=job_id).update(status="importing", rows_read=1)
    assert prompt_import_job_run(job_id=job_id).status == "succeeded"
    assert prompt_import_job_run(job_id=job_id).status == "succeeded"  # a second delivery: no-op
    assert Prompt.objects.count() == 2


def test_admin_upload_of_a_large_file_becomes_a_job_with_a_progress_page(
    client,
    admin_user,
    password,
    project,
    eager_celery,
    media_dir,
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    monkeypatch.setattr(prompt_imports, "BACKGROUND_MIN_LINES", 5)
    client.login(username=admin_user.username, password=password)
    upload = SimpleUploadedFile(
        "p.csv", b"prompt,tags\n" + b"".join(b"Question %d?,x\n" % i for i in range(8))
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/admin/annotation/project/{project.pk}/import/", {"file": upload})
    job = PromptImportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/admin/annotation/project/{project.pk}/import/{job.pk}/"
    page = client.get(response["Location"]).content.decode()
    assert 'data-status="succeeded"' in page and '<td id="imported">8</td>' in page
    assert 'http-equiv="refresh"' not in page  # finished: the page stops reloading
    assert Prompt.objects.filter(project=project).count() == 8
    job.status = "checking"
    job.save()
    assert 'http-equiv="refresh"' in client.get(response["Location"]).content.decode()
    listing = client.get(f"/admin/annotation/project/{project.pk}/import/").content.decode()
    assert 'id="import-jobs"' in listing and "p.csv" in listing


@pytest.mark.postgres
def test_one_hundred_thousand_prompts_import_on_postgresql(
    project, project_admin, api_client, eager_celery, media_dir, django_capture_on_commit_callbacks
):
    """Past PostgreSQL's 65,535 bind parameters, which one `IN` list of every hash exceeded."""
    count = 100_000
    existing = [f"Prompt number {index}: what comes next?" for index in range(0, count, 1000)]
    Prompt.objects.bulk_create(
        Prompt(
            project=project,
            turns=[{"role": "user", "content": text}],
            content_hash=turns_hash(turns=[{"role": "user", "content": text}]),
        )
        for text in existing
    )
    content = "\n".join(
        json.dumps({"prompt": f"Prompt number {index}: what comes next?", "tags": ["bulk"]})
        for index in range(count)
    ).encode()
    api_client.force_authenticate(project_admin)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):
        response = _start(api_client, project, content)
    seconds = time.monotonic() - started
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    job = api_client.get(f"/api/imports/{response.json()['id']}/").json()
    print(
        f"\n{count} prompts, {len(content) / 1e6:.1f} MB: {seconds:.1f} s, "
        f"peak RSS grew {(rss_after - rss_before) / 1024:.0f} MB (to {rss_after / 1024:.0f} MB)"
    )
    assert job["status"] == "succeeded", job
    assert (job["imported"], job["duplicates"], job["rows_read"]) == (
        count - len(existing),
        len(existing),
        count,
    )
    assert Prompt.objects.filter(project=project).count() == count
    assert seconds < 180


@pytest.mark.timeout(60)
@pytest.mark.django_db(transaction=True)
def test_a_job_started_while_the_broker_is_unreachable_fails_saying_so(
    project, project_admin, api_client, media_dir
):
    from tests.faults.processes import celery_broker, free_port

    api_client.force_authenticate(project_admin)
    with celery_broker(f"redis://127.0.0.1:{free_port()}/0"):  # nothing listens there
        response = _start(api_client, project, _jsonl("A?", "B?"))
    assert response.status_code == 202, response.content
    job = response.json()
    assert job["status"] == "failed" and "task queue could not be reached" in job["error"]
    assert PromptImportJob.objects.get(pk=job["id"]).status == "failed"  # not left queued, orphaned
    assert Prompt.objects.count() == 0 and not list(media_dir.rglob("*.jsonl"))
