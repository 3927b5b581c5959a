"""Dataset exports: validate a request, stream it as bytes, or run it as a background ExportJob.

The same generator serves the dashboard download, the API and the management command, so every path
streams with constant memory (see annotation/exports/sources.py). A background job writes to a
`.part` file under settings.EXPORT_DIR and renames it when complete, so a download link never points
at half a file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from annotation.exports.filters import ExportFilters, export_filters_parse
from annotation.exports.formats import FORMATS, ExportFormat, format_batches, format_source_count
from annotation.exports.options import options_check_format
from annotation.exports.split import with_split
from annotation.exports.writers import FILE_FORMATS, FOLDER_FORMATS, encode, gzip_chunks
from annotation.models import ExportJob, Project
from annotation.models.exports import ExportStatus
from annotation.services.webhooks import webhook_export_finished
from config.celery import RESEND_EVERY_SECONDS, task_send, task_send_safely
from config.errors import ValidationFailed

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

ProgressCallback = Callable[[int, int], None]  # (records written, source rows read)


@dataclass(frozen=True)
class ExportRequest:
    project: Project
    export_format: ExportFormat
    file_format: str
    filters: ExportFilters

    @property
    def filename(self) -> str:
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        return (
            f"project-{self.project.pk}-{self.export_format.name}-{stamp}.{FILE_FORMATS[self.file_format][1]}"
        )

    @property
    def content_type(self) -> str:
        return FILE_FORMATS[self.file_format][0]


def export_request_validate(
    *,
    project: Project,
    export_format: str,
    file_format: str,
    filters: dict[str, Any] | ExportFilters | None,
    streamed: bool = True,
) -> ExportRequest:
    """Check the format names, filters and options; raise ValidationFailed naming what is wrong.

    `streamed`: the export goes out as one byte stream (a download, stdout), which cannot hold
    separate split files or a `save_to_disk` folder; background jobs and the command's files can.
    """
    if export_format not in FORMATS:
        raise ValidationFailed(
            f"unknown export format {export_format!r}; choose one of {', '.join(FORMATS)}",
            code="invalid_export_format",
            details={"choices": list(FORMATS)},
        )
    if file_format not in FILE_FORMATS:
        raise ValidationFailed(
            f"unknown file format {file_format!r}; choose one of {', '.join(FILE_FORMATS)}",
            code="invalid_file_format",
            details={"choices": list(FILE_FORMATS)},
        )
    parsed = filters if isinstance(filters, ExportFilters) else export_filters_parse(raw=filters)
    chosen = FORMATS[export_format]
    if chosen.kind == "demonstrations" and parsed.needs_prompt_groups:
        raise ValidationFailed(
            "min_agreement and consensus_only apply to rankings, not to demonstration (SFT) exports",
            code="invalid_filter",
        )
    options_check_format(filters=parsed, kind=chosen.kind, format_name=chosen.name)
    if streamed and (file_format in FOLDER_FORMATS or parsed.split_output == "files"):
        what = "split_output=files" if parsed.split_output == "files" else f"file_format={file_format}"
        raise ValidationFailed(
            f"{what} writes several files: run the export as a background job (or export_dataset -o)",
            code="invalid_option",
            details={"option": "split_output" if parsed.split_output == "files" else "file_format"},
        )
    return ExportRequest(project=project, export_format=chosen, file_format=file_format, filters=parsed)


def export_records(
    *, request: ExportRequest, on_progress: ProgressCallback | None = None
) -> Iterator[list[dict]]:
    """Batches of records (dicts), lazily; `on_progress` hears after every batch. With a
    `test_fraction` each record carries its prompt's `split` (see annotation/exports/split.py)."""
    records_iter = _records(request=request, on_progress=on_progress)
    if request.filters.test_fraction:
        return with_split(records_iter, test_fraction=request.filters.test_fraction)
    return records_iter


def _records(*, request: ExportRequest, on_progress: ProgressCallback | None) -> Iterator[list[dict]]:
    written = read = 0
    for batch in format_batches(
        export_format=request.export_format, project_id=request.project.pk, filters=request.filters
    ):
        records = request.export_format.render(batch)
        written += len(records)
        read += batch.source_rows
        yield records
        if on_progress is not None:
            on_progress(written, read)


def _jsonl_fast(*, request: ExportRequest, on_progress: ProgressCallback | None) -> Iterator[bytes]:
    written = read = 0
    render = request.export_format.render_jsonl
    assert render is not None
    for batch in format_batches(
        export_format=request.export_format, project_id=request.project.pk, filters=request.filters
    ):
        text, count = render(batch)
        written += count
        read += batch.source_rows
        if text:
            yield text.encode("utf-8")
        if on_progress is not None:
            on_progress(written, read)


def export_stream(*, request: ExportRequest, on_progress: ProgressCallback | None = None) -> Iterator[bytes]:
    """The export as a byte stream in the requested file format."""
    if (
        request.file_format in ("jsonl", "jsonl.gz")
        and request.export_format.render_jsonl is not None
        and not request.filters.derives_pairs
        and not request.filters.test_fraction
    ):
        lines = _jsonl_fast(request=request, on_progress=on_progress)
        return lines if request.file_format == "jsonl" else gzip_chunks(lines)
    return encode(
        export_records(request=request, on_progress=on_progress),
        file_format=request.file_format,
        schema_factory=lambda: request.export_format.schema_with(filters=request.filters),
    )


def export_source_count(*, request: ExportRequest) -> int:
    return format_source_count(
        export_format=request.export_format, project_id=request.project.pk, filters=request.filters
    )


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
        project=project, export_format=export_format, file_format=file_format, filters=filters
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


def export_job_path(*, job: ExportJob) -> Path:
    return (
        Path(settings.EXPORT_DIR)
        / f"project-{job.project_id}"
        / f"export-{job.pk}-{job.export_format}.{FILE_FORMATS[job.file_format][1]}"
    )


def export_job_run(*, job_id: int) -> ExportJob | None:
    """Run a queued export to its file. Idempotent: a job already finished is left alone, and a job
    redelivered after a worker died starts its file again from the beginning."""
    claimed = ExportJob.objects.filter(
        pk=job_id, status__in=[ExportStatus.QUEUED, ExportStatus.RUNNING]
    ).update(status=ExportStatus.RUNNING, rows_written=0, rows_read=0, error="")
    job = ExportJob.objects.select_related("project").filter(pk=job_id).first()
    if job is None or not claimed:
        return job
    path = export_job_path(job=job)
    partial = path.with_name(path.name + ".part")
    try:
        request = export_request_validate(
            project=job.project,
            export_format=job.export_format,
            file_format=job.file_format,
            filters=job.filters,
        )
        total = export_source_count(request=request)
        ExportJob.objects.filter(pk=job.pk).update(rows_total=total)

        def progress(written: int, read: int) -> None:
            ExportJob.objects.filter(pk=job.pk).update(rows_written=written, rows_read=read)

        path.parent.mkdir(parents=True, exist_ok=True)
        with open(partial, "wb") as handle:
            for chunk in export_stream(request=request, on_progress=progress):
                handle.write(chunk)
        os.replace(partial, path)
        written = ExportJob.objects.values_list("rows_written", flat=True).get(pk=job.pk)
        ExportJob.objects.filter(pk=job.pk).update(
            status=ExportStatus.SUCCEEDED,
            file_path=str(path),
            rows_total=written,
            finished_at=timezone.now(),
        )
    except Exception as error:  # any failure is recorded on the job for the admin to read
        logger.exception("export %s failed", job_id)
        partial.unlink(missing_ok=True)
        message = error.message if isinstance(error, ValidationFailed) else f"{type(error).__name__}: {error}"
        ExportJob.objects.filter(pk=job.pk).update(
            status=ExportStatus.FAILED, error=message[:2000], finished_at=timezone.now()
        )
    job.refresh_from_db()
    webhook_export_finished(job=job)  # the project's webhooks hear that it succeeded or failed
    return job
