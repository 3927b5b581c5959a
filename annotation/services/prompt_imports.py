"""Prompt imports too large for a request, run in the background with progress, all or nothing.

A job keeps its upload under MEDIA_ROOT/imports (a folder web and worker share, as for exports) until
it ends. The worker reads the file twice: once to check every line (writing only the job's progress,
which pollers can read), then to write every prompt in one transaction, with the job's outcome in
that same transaction, so a worker killed half-way leaves no prompt and a job that runs again.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import IO

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from annotation.models import Project, PromptImportJob
from annotation.models.imports import PromptImportStatus
from annotation.services.prompts import IMPORT_EXTENSIONS, prompts_check, prompts_import
from config.celery import task_send
from config.errors import ValidationFailed

logger = logging.getLogger(__name__)

# Files past either bound go to a background job from the admin's upload page; smaller ones are
# imported within the request (a few seconds at most). The API always uses a job.
BACKGROUND_MIN_BYTES = 5 * 1024 * 1024
BACKGROUND_MIN_LINES = 20_000
MAX_IMPORT_BYTES = 200 * 1024 * 1024
_COPY_BUFFER_BYTES = 1024 * 1024


def prompt_import_is_large(*, upload: IO[bytes], size: int) -> bool:
    """Whether a file should be imported in the background: by size, or by its count of lines (only
    read for files under BACKGROUND_MIN_BYTES, whose lines are counted in bounded chunks)."""
    if size >= BACKGROUND_MIN_BYTES:
        return True
    lines = 0
    upload.seek(0)
    while chunk := upload.read(_COPY_BUFFER_BYTES):
        lines += chunk.count(b"\n")
    upload.seek(0)
    return lines >= BACKGROUND_MIN_LINES


def prompt_import_job_path(*, job: PromptImportJob) -> Path:
    suffix = Path(job.filename).suffix.lower()
    return Path(settings.MEDIA_ROOT) / "imports" / f"project-{job.project_id}" / f"import-{job.pk}{suffix}"


def _job_send(job_id: int) -> None:
    """Send the job's task; with the broker down, fail the job saying so instead of leaving it queued
    with no task behind it (the request still answers with the job: its row is committed)."""
    try:
        task_send("annotation.prompt_import_run", job_id)
    except Exception as error:  # kombu and redis raise many kinds; each means "not sent"
        logger.warning("prompt import %s not sent: %s: %s", job_id, type(error).__name__, error)
        job = PromptImportJob.objects.filter(pk=job_id).first()
        if job is not None and job.status == PromptImportStatus.QUEUED:
            _job_finish_failed(
                job=job, message="The task queue could not be reached; start the import again."
            )


@transaction.atomic
def prompt_import_job_create(
    *,
    project: Project,
    requested_by: User | None,
    upload: IO[bytes],
    filename: str,
    source: str = "",
) -> PromptImportJob:
    """Store the upload and queue its import; the task is sent once this transaction commits.

    Raises ValidationFailed for a file that is not .jsonl/.csv or is over MAX_IMPORT_BYTES.
    """
    if not filename.lower().endswith(IMPORT_EXTENSIONS):
        raise ValidationFailed("the file must end in .jsonl or .csv", code="invalid_file")
    if len(source) > 200:
        raise ValidationFailed("source must be at most 200 characters", code="invalid_source")
    job = PromptImportJob.objects.create(
        project=project, requested_by=requested_by, filename=filename[-255:], source=source
    )
    path = prompt_import_job_path(job=job)
    path.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    try:
        with open(path, "wb") as handle:
            while chunk := upload.read(_COPY_BUFFER_BYTES):
                size += len(chunk)
                if size > MAX_IMPORT_BYTES:
                    raise ValidationFailed(
                        f"the file is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB",
                        code="file_too_large",
                    )
                handle.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    job.file_path, job.size_bytes = str(path), size
    job.save(update_fields=["file_path", "size_bytes"])
    transaction.on_commit(lambda: _job_send(job.pk))
    return job


def _job_finish_failed(*, job: PromptImportJob, message: str = "", errors: list | None = None) -> None:
    job.status = PromptImportStatus.FAILED
    job.error = message[:2000]
    if errors is not None:
        job.errors = errors
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "error", "errors", "finished_at"])
    if job.file_path:
        Path(job.file_path).unlink(missing_ok=True)


def prompt_import_job_run(*, job_id: int) -> PromptImportJob | None:
    """Run a queued import. Idempotent: a finished job is left alone, and a job redelivered after its
    worker died starts again from the first line (nothing of its earlier run was committed)."""
    claimed = PromptImportJob.objects.filter(
        pk=job_id,
        status__in=[PromptImportStatus.QUEUED, PromptImportStatus.CHECKING, PromptImportStatus.IMPORTING],
    ).update(
        status=PromptImportStatus.CHECKING,
        rows_read=0,
        bytes_read=0,
        error_count=0,
        errors=[],
        error="",
        started_at=timezone.now(),
    )
    job = PromptImportJob.objects.select_related("project").filter(pk=job_id).first()
    if job is None or not claimed:
        return job
    try:
        _job_import(job=job)
    except Exception as error:  # recorded on the job for the admin to read, the file removed
        logger.exception("prompt import %s failed", job_id)
        message = error.message if isinstance(error, ValidationFailed) else f"{type(error).__name__}: {error}"
        _job_finish_failed(job=job, message=message)
    job.refresh_from_db()
    return job


def _job_import(*, job: PromptImportJob) -> None:
    def progress(rows_read: int, bad_lines: int, bytes_read: int) -> None:
        PromptImportJob.objects.filter(pk=job.pk).update(
            rows_read=rows_read, error_count=bad_lines, bytes_read=bytes_read
        )

    with open(job.file_path, "rb") as stream:
        checked = prompts_check(stream=stream, filename=job.filename, on_progress=progress)
    job.refresh_from_db()
    if checked.errors:
        _job_finish_failed(job=job, message="Bad lines: nothing was imported.", errors=checked.errors)
        return
    PromptImportJob.objects.filter(pk=job.pk).update(status=PromptImportStatus.IMPORTING)
    with transaction.atomic(), open(job.file_path, "rb") as stream:
        report = prompts_import(project=job.project, content=stream, filename=job.filename, source=job.source)
        if not report.ok:  # the file changed between the passes, or the check missed a rule
            _job_finish_failed(job=job, message="Bad lines: nothing was imported.", errors=report.errors)
            return
        job.status = PromptImportStatus.SUCCEEDED
        job.imported, job.duplicates = report.imported, report.duplicates
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "imported", "duplicates", "finished_at"])
    Path(job.file_path).unlink(missing_ok=True)
