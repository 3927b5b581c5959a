"""Attention checks: which rank tasks were gold, how the labeler did on each, and the history of a
labeler's standing (qualified, failed, paused, lifted) in a project."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from annotation.models.assignments import Assignment
from annotation.models.projects import Membership, Project
from annotation.models.prompts import Prompt
from annotation.models.rankings import Ranking


class GoldCheck(models.Model):
    """One rank task served as an attention check. Server-side only: nothing in the task the labeler
    sees refers to it. The labeler's ranking is stored excluded (reason "gold check"), so it never
    fills a slot or counts toward agreement, consensus, exports or training."""

    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="gold_check")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="gold_checks")
    labeler = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="gold_checks"
    )
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="gold_checks")
    gold_ranking = models.ForeignKey(Ranking, null=True, on_delete=models.SET_NULL, related_name="+")
    # Served during the labeler's qualification phase (these decide qualification).
    qualification = models.BooleanField(default=False)
    ranking = models.OneToOneField(
        Ranking, null=True, blank=True, on_delete=models.SET_NULL, related_name="gold_check"
    )
    # Gold (better, worse) pairs among the shown answers, and how many the labeler ordered the same
    # way (a tie counts as a miss). accuracy = agreed / compared; None when gold orders none of them.
    agreed = models.PositiveIntegerField(null=True, blank=True)
    compared = models.PositiveIntegerField(null=True, blank=True)
    accuracy = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-submitted_at", "-id"]
        indexes = [
            models.Index(fields=["project", "labeler", "submitted_at"], name="gold_check_by_labeler"),
        ]

    def __str__(self) -> str:
        return f"Gold check {self.pk} ({self.labeler_id} on prompt {self.prompt_id})"


class StandingAction(models.TextChoices):
    QUALIFIED = "qualified", "Passed qualification"
    QUALIFICATION_FAILED = "qualification_failed", "Failed qualification"
    PAUSED = "paused", "Paused from real work"
    PAUSE_LIFTED = "pause_lifted", "Pause lifted"
    QUALIFICATION_WAIVED = "qualification_waived", "Qualification waived by an admin"


class MembershipEvent(models.Model):
    """Who changed a labeler's standing in a project, when and why (None: the system, on gold)."""

    membership = models.ForeignKey(Membership, on_delete=models.CASCADE, related_name="events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=30, choices=StandingAction.choices)
    accuracy = models.FloatField(null=True, blank=True, help_text="The gold accuracy that decided it.")
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} for membership {self.membership_id} at {self.created_at}"
