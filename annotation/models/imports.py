from __future__ import annotations

from django.conf import settings
from django.db import models

from annotation.models.projects import Project


class PromptImportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    # Reading the whole file for bad lines, writing nothing: rows_read grows as it goes.
    CHECKING = "checking", "Checking"
    # Writing every prompt in one transaction: all of them appear together, or none.
    IMPORTING = "importing", "Importing"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class PromptImportJob(models.Model):
    """A prompt file too large to import within a request, imported in the background, all or nothing."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="prompt_import_jobs")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="prompt_import_jobs"
    )
    filename = models.CharField(max_length=255, help_text="As uploaded: its extension picks JSONL or CSV.")
    source = models.CharField(max_length=200, blank=True, help_text="Recorded on each prompt.")
    file_path = models.CharField(max_length=500, blank=True, help_text="The upload, until the job ends.")
    size_bytes = models.PositiveBigIntegerField(default=0)
    status = models.CharField(
        max_length=20, choices=PromptImportStatus.choices, default=PromptImportStatus.QUEUED
    )
    rows_read = models.PositiveBigIntegerField(default=0, help_text="Lines or rows checked so far.")
    bytes_read = models.PositiveBigIntegerField(default=0)
    imported = models.PositiveBigIntegerField(default=0)
    duplicates = models.PositiveBigIntegerField(default=0)
    error_count = models.PositiveBigIntegerField(default=0)
    errors = models.JSONField(
        default=list, blank=True, help_text="Bad lines, the first ones: {line, reason}."
    )
    error = models.TextField(blank=True, help_text="Why the job failed, when not for bad lines.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Prompt import {self.pk} ({self.filename}, {self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (PromptImportStatus.SUCCEEDED, PromptImportStatus.FAILED)
