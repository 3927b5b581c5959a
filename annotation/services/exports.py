"""Dataset exports: validate a request, stream it as bytes, or run it as a background ExportJob.

The same generator serves the dashboard download, the API and the management command, so every path
streams with constant memory (see annotation/exports/sources.py). A background job writes its files and
dataset card under settings.EXPORT_DIR (annotation/services/export_files.py), each under a `.part`
name renamed when complete, so a download link never points at half a file.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

# The request and its stream live in annotation.exports.pipeline; callers import them from here.
from annotation.exports.pipeline import (
    ExportRequest,
    ProgressCallback,
    export_records,
    export_request_validate,
    export_source_count,
    export_stream,
)
from annotation.models import ExportJob, Project
from annotation.models.exports import ExportStatus
from annotation.services.export_files import export_files_write
from annotation.services.webhooks import webhook_export_finished
from config.celery import RESEND_EVERY_SECONDS, task_send, task_send_safely
from config.errors import ValidationFailed

__all__ = [
    "ExportRequest",
    "ProgressCallback",
    "export_job_create",
    "export_job_run",
    "export_job_send",
    "export_jobs_resend",
    "export_records",
    "export_request_validate",
    "export_source_count",
    "export_stream",
]

logger = logging.getLogger(__name__)

# By name: the tasks module imports this one.
EXPORT_TASK = "annotation.export_run"
# A queued job carries this as its `error` until its task has reached the broker, which the admin
# reads meanwhile. A job whose send failed (the broker was down) or never happened (the process
# died right after the commit) keeps it, and export_jobs_resend sends it again once it is older
# than RESEND_AFTER, so a send still in flight is not doubled. (The text is the mark because the
# job has no field of its own for it.)
NOT_SENT = (
    "Waiting to be handed to a worker; if the task queue is unreachable, it is sent again once it is back."
)
RESEND_AFTER = timedelta(seconds=RESEND_EVERY_SECONDS)


@transaction.atomic
def export_job_create(
    *,
    project: Project,
    requested_by: User | None,
    export_format: str,
    file_format: str,
    filters: dict[str, Any] | None,
) -> ExportJob:
    """Validate and queue a background export; the Celery task is sent once this transaction commits."""
    request = export_request_validate(
        project=project, export_format=export_format, file_format=file_format, filters=filters, streamed=False
    )
    job = ExportJob.objects.create(
        project=project,
        requested_by=requested_by,
        export_format=request.export_format.name,
        file_format=request.file_format,
        filters=request.filters.as_json(),
        error=NOT_SENT,
    )
    # robust: the job is committed; a broker that is down (or a database error while clearing the
    # mark) must not turn the request into an error. The mark stays and the job is re-sent.
    # (A lambda, not a partial: Django names the callback by its __qualname__ when it logs a failure.)
    transaction.on_commit(lambda: export_job_send(job=job), robust=True)
    return job


def export_job_send(*, job: ExportJob) -> bool:
    """Send the job's task now (after its row committed) and clear its not-sent mark; False, logged,
    if the broker is unreachable, when the mark stays for `export_jobs_resend`."""
    if not task_send_safely(partial(task_send, EXPORT_TASK, job.pk), what=f"export job {job.pk}"):
        return False
    # Only while still queued: a worker may have claimed the job (which clears the mark) already.
    ExportJob.objects.filter(pk=job.pk, status=ExportStatus.QUEUED, error=NOT_SENT).update(error="")
    if job.error == NOT_SENT:
        job.error = ""
    return True


@transaction.atomic
def export_jobs_resend(*, now: datetime | None = None) -> list[int]:
    """Send the queued jobs still marked not sent after RESEND_AFTER; returns their ids.

    The rows stay locked while their tasks are sent (SKIP LOCKED on PostgreSQL), so two overlapping
    runs never send one job twice; a worker claiming one meanwhile waits for this commit.
    """
    now = now or timezone.now()
    unsent = list(
        ExportJob.objects.select_for_update(skip_locked=True).filter(
            status=ExportStatus.QUEUED, error=NOT_SENT, created_at__lt=now - RESEND_AFTER
        )
    )
    resent = [job.pk for job in unsent if export_job_send(job=job)]
    if resent:
        logger.warning("re-sent the task of export job(s) %s", resent)
    return resent


def export_job_stem(*, job: ExportJob) -> Path:
    """The job's files' path without extension (annotation/services/export_files.py: the layout)."""
    return Path(settings.EXPORT_DIR) / f"project-{job.project_id}" / f"export-{job.pk}-{job.export_format}"


def export_job_run(*, job_id: int) -> ExportJob | None:
    """Run a queued export to its file. Idempotent: a job already finished is left alone, and a job
    redelivered after a worker died starts its file again from the beginning."""
    claimed = ExportJob.objects.filter(
        pk=job_id, status__in=[ExportStatus.QUEUED, ExportStatus.RUNNING]
    ).update(status=ExportStatus.RUNNING, rows_written=0, rows_read=0, error="")
    job = ExportJob.objects.select_related("project").filter(pk=job_id).first()
    if job is None or not claimed:
        return job
    try:
        request = export_request_validate(
            project=job.project,
            export_format=job.export_format,
            file_format=job.file_format,
            filters=job.filters,
            streamed=False,
        )
        total = export_source_count(request=request)
        ExportJob.objects.filter(pk=job.pk).update(rows_total=total)

        def progress(written: int, read: int) -> None:
            ExportJob.objects.filter(pk=job.pk).update(rows_written=written, rows_read=read)

        path = export_files_write(request=request, stem=export_job_stem(job=job), on_progress=progress)
        written = ExportJob.objects.values_list("rows_written", flat=True).get(pk=job.pk)
        ExportJob.objects.filter(pk=job.pk).update(
            status=ExportStatus.SUCCEEDED,
            file_path=str(path),
            rows_total=written,
            finished_at=timezone.now(),
        )
    except Exception as error:  # any failure is recorded on the job for the admin to read
        logger.exception("export %s failed", job_id)
        message = error.message if isinstance(error, ValidationFailed) else f"{type(error).__name__}: {error}"
        ExportJob.objects.filter(pk=job.pk).update(
            status=ExportStatus.FAILED, error=message[:2000], finished_at=timezone.now()
        )
    job.refresh_from_db()
    webhook_export_finished(job=job)  # the project's webhooks hear that it succeeded or failed
    return job
