from __future__ import annotations

from django.conf import settings
from django.db import models


class QualityState(models.TextChoices):
    """Whether a submission counts. Exports, agreement, consensus and training read only what counts
    (counted, or under review until a reviewer decides) unless asked otherwise."""

    COUNTED = "counted", "Counts"
    UNDER_REVIEW = "under_review", "Under review (counts until decided)"
    REJECTED = "rejected", "Rejected by a reviewer"
    EXCLUDED = "excluded", "Excluded (triage or a quality signal)"


COUNTING_STATES: tuple[str, ...] = (QualityState.COUNTED, QualityState.UNDER_REVIEW)


class ReviewKind:
    """What a review item is: a ranking or a demonstration."""

    RANKING = "ranking"
    DEMONSTRATION = "demonstration"


class QualityAction(models.TextChoices):
    EXCLUDE = "exclude", "Excluded"
    RESTORE = "restore", "Restored"
    REVIEW_REQUEST = "review_request", "Sent to review"
    REVIEW_ACCEPT = "review_accept", "Accepted in review"
    REVIEW_REJECT = "review_reject", "Rejected in review"
    GOLD_MARK = "gold_mark", "Marked gold"
    GOLD_UNMARK = "gold_unmark", "Gold mark removed"
    MORE_RANKINGS = "more_rankings", "More rankings asked for"


class QualityEvent(models.Model):
    """Who changed what about a submission's quality, when and why: the record behind every state.

    Nothing a quality action touches is deleted; this log says how to undo it.
    """

    ranking = models.ForeignKey(
        "annotation.Ranking", null=True, blank=True, on_delete=models.CASCADE, related_name="quality_events"
    )
    demonstration = models.ForeignKey(
        "annotation.Demonstration",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="quality_events",
    )
    prompt = models.ForeignKey(
        "annotation.Prompt", null=True, blank=True, on_delete=models.CASCADE, related_name="quality_events"
    )
    # None: the system acted (a quality signal, a sample for review).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="quality_events",
    )
    action = models.CharField(max_length=20, choices=QualityAction.choices)
    state_before = models.CharField(max_length=20, blank=True)
    state_after = models.CharField(max_length=20, blank=True)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_id or 'system'} at {self.created_at}"
