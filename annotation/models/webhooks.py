"""Webhooks: a project's HTTP callbacks, and the log of every delivery with its outcome."""

from __future__ import annotations

import uuid

from django.db import models

from annotation.models.fields import EncryptedTextField
from annotation.models.projects import Project


class WebhookEvent(models.TextChoices):
    RANKING_SUBMITTED = "ranking.submitted", "Ranking submitted"
    DEMONSTRATION_SUBMITTED = "demonstration.submitted", "Demonstration submitted"
    EXPORT_FINISHED = "export.finished", "Export finished"
    REWARD_MODEL_TRAINED = "reward_model.trained", "Reward-model version trained"
    REWARD_MODEL_ACTIVATED = "reward_model.activated", "Reward-model version activated"
    # Sent only by the admin's "send test event", whatever the webhook subscribes to.
    TEST = "webhook.test", "Test event"


# What a webhook can subscribe to (the test event always goes to the webhook it is sent to).
SUBSCRIBABLE_EVENTS = [event.value for event in WebhookEvent if event != WebhookEvent.TEST]


class Webhook(models.Model):
    """A URL of a project's that receives the events it subscribes to, signed with its secret."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=1000, help_text="Receives a signed POST for every event subscribed.")
    # Encrypted at rest (annotation/models/fields.py), like a project's API key; write-only in the admin.
    secret = EncryptedTextField()
    events = models.JSONField(default=list, blank=True, help_text="Event names, e.g. ranking.submitted.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project_id", "pk"]
        indexes = [models.Index(fields=["project", "is_active"], name="webhook_project_active")]

    def __str__(self) -> str:
        return f"Webhook {self.pk} ({self.url})"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # waiting for its first or next attempt
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"  # gave up: a final answer, or the last attempt failed


class WebhookDelivery(models.Model):
    """One event for one webhook: the payload as signed, and how its attempts went."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    # Sent as X-RLHF-Delivery: the same on every attempt, so a receiver can drop a repeat.
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    event = models.CharField(max_length=40, choices=WebhookEvent.choices)
    payload = models.JSONField()
    status = models.CharField(max_length=20, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # When the next attempt is due; the re-send job finds pending deliveries long past it.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = "webhook deliveries"
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due")]

    def __str__(self) -> str:
        return f"{self.event} to webhook {self.webhook_id} ({self.status})"
