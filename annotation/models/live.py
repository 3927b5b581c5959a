from __future__ import annotations

from django.db import models

from annotation.models.assignments import Assignment
from annotation.models.prompts import Prompt


class LiveStatus(models.TextChoices):
    QUEUED = "queued", "Waiting for a worker"
    RUNNING = "running", "Streaming"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class LiveGeneration(models.Model):
    """The K replies of one converse turn as a worker streams them: the worker writes, the page reads.

    One worker task writes the row (guarded by `attempt`, so a superseded task writes nothing); the
    web process only reads it, so no model ever runs in a web worker. The text so far is stored as
    it arrives: a reload re-reads it, and a worker that dies leaves it stale (`updated_at`), which
    the page reports. When the stream ends the texts become Candidates of the prompt and the
    assignment's shown order.
    """

    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="live")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="live_generations")
    status = models.CharField(max_length=20, choices=LiveStatus.choices, default=LiveStatus.QUEUED)
    attempt = models.PositiveIntegerField(default=1, help_text="Raised by each retry.")
    k = models.PositiveSmallIntegerField()
    seeds = models.JSONField(default=list)
    texts = models.JSONField(default=list, help_text="Per slot: the text streamed so far.")
    finished = models.JSONField(default=list, help_text="Per slot: whether that reply has ended.")
    candidate_ids = models.JSONField(default=list, help_text="Per slot, once done: the stored candidate.")
    backend = models.CharField(max_length=50, blank=True)
    model_name = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    queued_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    first_token_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField()
    tokens = models.PositiveIntegerField(default=0, help_text="Tokens streamed, all slots together.")

    class Meta:
        ordering = ["-queued_at"]

    def __str__(self) -> str:
        return f"Live generation {self.pk} for assignment {self.assignment_id} ({self.status})"
