from __future__ import annotations

from django.conf import settings
from django.db import models

from annotation.models.projects import Project
from annotation.models.prompts import Prompt


class TaskKind(models.TextChoices):
    DEMONSTRATE = "demonstrate", "Write a demonstration"
    RANK = "rank", "Rank candidates"
    CONVERSE = "converse", "Talk to the model, ranking its replies turn by turn"


class AssignmentStatus(models.TextChoices):
    LEASED = "leased", "Leased"
    SUBMITTED = "submitted", "Submitted"
    SKIPPED = "skipped", "Skipped"
    EXPIRED = "expired", "Expired"


class Assignment(models.Model):
    """The lease that hands one task (demonstrate or rank one prompt) to one labeler."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="assignments")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="assignments")
    labeler = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments"
    )
    kind = models.CharField(max_length=20, choices=TaskKind.choices)
    status = models.CharField(
        max_length=20, choices=AssignmentStatus.choices, default=AssignmentStatus.LEASED, db_index=True
    )
    leased_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    # Candidate ids in the order this labeler saw them (shuffled per assignment).
    shown_order = models.JSONField(default=list, blank=True)
    idempotency_key = models.CharField(max_length=100, null=True, blank=True)
    skip_reason = models.TextField(blank=True)
    # Work in progress, saved by the page as the labeler types or drags.
    draft = models.JSONField(default=dict, blank=True)
    draft_saved_at = models.DateTimeField(null=True, blank=True)
    # A converse task's previous turn: each turn of a conversation is its own assignment on the
    # prompt that holds the conversation so far, leased to the same labeler when they continue.
    previous = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="continuation"
    )

    class Meta:
        ordering = ["-leased_at"]
        constraints = [
            # A labeler holds, has done, or has skipped a given task at most once.
            models.UniqueConstraint(
                fields=["prompt", "labeler", "kind"],
                condition=~models.Q(status="expired"),
                name="assignment_one_live_per_labeler_task",
            ),
            models.UniqueConstraint(
                fields=["labeler", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="assignment_unique_idempotency_key",
            ),
        ]
        indexes = [
            models.Index(fields=["prompt", "kind", "status"], name="assignment_slot_lookup"),
            models.Index(fields=["labeler", "status"], name="assignment_labeler_status"),
            # The live leases of a project: few rows, read by every lease looking for partly done prompts.
            models.Index(
                fields=["project", "kind"],
                condition=models.Q(status="leased"),
                name="assignment_live_by_project",
            ),
        ]

    def __str__(self) -> str:
        return (
            f"Assignment {self.pk}: {self.kind} prompt {self.prompt_id} for {self.labeler_id} ({self.status})"
        )
