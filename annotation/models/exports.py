from __future__ import annotations

from django.conf import settings
from django.db import models

from annotation.models.projects import Project


class ExportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class ExportJob(models.Model):
    """A dataset export run in the background, with progress and a file to download when done."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="export_jobs")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="export_jobs"
    )
    export_format = models.CharField(max_length=40)
    file_format = models.CharField(max_length=20, default="jsonl")
    filters = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=20, choices=ExportStatus.choices, default=ExportStatus.QUEUED)
    rows_written = models.PositiveBigIntegerField(default=0)
    # Source rows read so far, against rows_total (a ranking is read per comparison, written per prompt).
    rows_read = models.PositiveBigIntegerField(default=0)
    rows_total = models.PositiveBigIntegerField(null=True, blank=True)
    file_path = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Export {self.pk} ({self.export_format}, {self.status})"
