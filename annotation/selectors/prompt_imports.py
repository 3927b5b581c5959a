"""Reads for background prompt imports: the jobs a user may see and their progress."""

from __future__ import annotations

from django.db.models import QuerySet

from annotation.models import Project, PromptImportJob
from annotation.models.imports import PromptImportStatus
from annotation.models.projects import Role
from annotation.permissions import MAX_ID, project_for_role
from config.errors import NotFound


def prompt_import_jobs_for_project(*, project: Project) -> QuerySet[PromptImportJob]:
    return (
        PromptImportJob.objects.filter(project=project)
        .select_related("requested_by")
        .order_by("-created_at", "-id")
    )


def prompt_import_job_get_for_admin(*, user, job_id: int) -> PromptImportJob:
    """The job if the user administers its project; NotFound otherwise (also for non-members)."""
    job = None
    if 0 < job_id <= MAX_ID:
        job = PromptImportJob.objects.select_related("project", "requested_by").filter(pk=job_id).first()
    if job is None:
        raise NotFound("no such import", code="import_not_found")
    project_for_role(user=user, project_id=job.project_id, minimum=Role.ADMIN)
    return job


def prompt_import_job_progress(*, job: PromptImportJob) -> float:
    """0-1: the share of the file checked (the first pass); 1 once it succeeded. The second pass
    writes every row in one transaction, invisible until it commits, so it shows as 0.99."""
    if job.status == PromptImportStatus.SUCCEEDED:
        return 1.0
    if job.status == PromptImportStatus.IMPORTING:
        return 0.99
    if not job.size_bytes:
        return 0.0
    return min(0.98, job.bytes_read / job.size_bytes)
