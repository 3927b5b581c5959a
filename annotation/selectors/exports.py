"""Reads for exports: jobs a user may see, their progress and files."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db.models import QuerySet

from annotation.exports.filters import ExportFilters
from annotation.exports.formats import ExportFormat, format_row_count
from annotation.exports.outputs import card_path_for
from annotation.exports.writers import FILE_FORMATS
from annotation.models import ExportJob, Project
from annotation.models.exports import ExportStatus
from annotation.models.projects import Role
from annotation.permissions import project_for_role
from config.errors import NotFound


def export_jobs_for_project(*, project: Project) -> QuerySet[ExportJob]:
    return (
        ExportJob.objects.filter(project=project)
        .select_related("requested_by")
        .order_by("-created_at", "-id")
    )


def export_rows_count(*, project: Project, export_format: ExportFormat, filters: ExportFilters) -> int:
    """How many rows an export with these (validated) filters will hold, without writing it: what the
    export form previews before the admin starts a download or a job."""
    return format_row_count(export_format=export_format, project_id=project.pk, filters=filters)


def export_job_get_for_admin(*, user, job_id: int) -> ExportJob:
    """The job if the user administers its project; NotFound otherwise (also for non-members)."""
    job = ExportJob.objects.select_related("project", "requested_by").filter(pk=job_id).first()
    if job is None:
        raise NotFound("no such export", code="export_not_found")
    project_for_role(user=user, project_id=job.project_id, minimum=Role.ADMIN)
    return job


def export_job_progress(*, job: ExportJob) -> float:
    """0-1; a finished job is 1, a running one the source rows read over the rows it will read."""
    if job.status == ExportStatus.SUCCEEDED:
        return 1.0
    if not job.rows_total:
        return 0.0
    return min(0.99, job.rows_read / job.rows_total)


def export_job_file(*, job: ExportJob) -> Path:
    """The finished file; NotFound while the job runs, after it failed, or if the file went missing.

    The path must lie under settings.EXPORT_DIR, so a tampered row cannot serve another file.
    """
    if job.status != ExportStatus.SUCCEEDED or not job.file_path:
        raise NotFound("this export has no file yet", code="export_not_ready", details={"status": job.status})
    path = Path(job.file_path).resolve()
    root = Path(settings.EXPORT_DIR).resolve()
    if root not in path.parents or not path.is_file():
        raise NotFound("the export file is missing", code="export_file_missing")
    return path


def export_job_content_type(*, job: ExportJob, path: Path) -> str:
    """The download's media type: its file format's, or a zip's for split files."""
    return "application/zip" if path.name.endswith(".zip") else FILE_FORMATS[job.file_format][0]


def export_job_card(*, job: ExportJob) -> Path:
    """The dataset card beside the finished file; NotFound as for the file, or for a job finished
    before exports wrote cards."""
    card = card_path_for(export_job_file(job=job))
    if not card.is_file():
        raise NotFound("this export has no dataset card", code="export_card_missing")
    return card
