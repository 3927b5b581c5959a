from __future__ import annotations

from django.conf import settings
from django.db import models

from annotation.models.projects import Project
from annotation.models.quality import QualityState


class Prompt(models.Model):
    """The conversation so far: a list of {role, content} turns, the last one from the user."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="prompts")
    turns = models.JSONField()
    content_hash = models.CharField(max_length=64, help_text="SHA-256 of the normalised turns.")
    source = models.CharField(max_length=200, blank=True)
    tags = models.JSONField(default=list, blank=True)
    priority = models.IntegerField(default=0, help_text="Higher is served first.")
    # Within a priority, the project's queue strategy's order (higher first): written by a periodic
    # job from stored scores (reward-model uncertainty, labeler disagreement, an exploration share),
    # never computed inside a request; 0 everywhere under breadth-first, where age decides.
    queue_rank = models.IntegerField(default=0, editable=False)
    # Rankings asked for beyond the project's overlap (triage: "ask for more rankings of this prompt").
    extra_rankings = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    # Conversations are trees: continuing one makes a child whose turns extend its parent's by the
    # assistant reply it continued with (`parent_candidate`) and the next user turn.
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    parent_candidate = models.ForeignKey(
        "annotation.Candidate",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="continuations",
    )
    # How many live converse turns lie above this prompt (0 for a prompt of the pool); a
    # conversation stops at the project's converse_max_turns.
    converse_depth = models.PositiveSmallIntegerField(default=0, editable=False)
    # A labeler who wrote the opening turn themselves (a converse task, where the project allows it).
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="opened_prompts",
    )

    # Generation bookkeeping: the workers write these, the admin reads them.
    generation_queued_at = models.DateTimeField(null=True, blank=True)
    generation_error = models.TextField(blank=True)
    generation_error_at = models.DateTimeField(null=True, blank=True)

    # Submitted work, kept by the services that store it (and repaired by a periodic job), so
    # that the queue finds untouched and partly done prompts through partial indexes instead of
    # probing every prompt already done, a walk that grew with the work done. The slot count a
    # lease trusts is always re-counted from the rows under the prompt's lock, never read here.
    demonstrations_done = models.PositiveIntegerField(default=0, editable=False)
    rankings_done = models.PositiveIntegerField(default=0, editable=False, help_text="By labelers.")

    class Meta:
        ordering = ["-priority", "-queue_rank", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "content_hash"], name="prompt_unique_content_per_project"
            )
        ]
        indexes = [
            models.Index(fields=["project", "-priority", "-queue_rank", "id"], name="prompt_queue_order"),
            models.Index(
                fields=["project", "-priority", "-queue_rank", "id"],
                condition=models.Q(demonstrations_done=0),
                name="prompt_untouched_demonstrate",
            ),
            models.Index(
                fields=["project", "-priority", "-queue_rank", "id"],
                condition=models.Q(rankings_done=0),
                name="prompt_untouched_rank",
            ),
            models.Index(
                fields=["project", "demonstrations_done"],
                condition=models.Q(demonstrations_done__gt=0),
                name="prompt_partly_demonstrate",
            ),
            models.Index(
                fields=["project", "rankings_done"],
                condition=models.Q(rankings_done__gt=0),
                name="prompt_partly_rank",
            ),
        ]

    def __str__(self) -> str:
        return f"Prompt {self.pk}: {self.title}"

    @property
    def title(self) -> str:
        last_user = next((t["content"] for t in reversed(self.turns) if t.get("role") == "user"), "")
        return (last_user[:80] + "...") if len(last_user) > 80 else last_user


class Demonstration(models.Model):
    """A labeler's own answer to a prompt: supervised fine-tuning data."""

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="demonstrations")
    labeler = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="demonstrations"
    )
    assignment = models.OneToOneField(
        "annotation.Assignment",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="demonstration",
    )
    text = models.TextField()
    seconds_spent = models.FloatField(default=0)
    quality_state = models.CharField(
        max_length=20, choices=QualityState.choices, default=QualityState.COUNTED, db_index=True
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["prompt", "labeler"], name="demonstration_one_per_labeler"),
            models.CheckConstraint(
                condition=models.Q(seconds_spent__gte=0), name="demonstration_time_nonnegative"
            ),
        ]

    def __str__(self) -> str:
        return f"Demonstration {self.pk} on prompt {self.prompt_id}"


# OpenAI's and llama.cpp's finish reason for an answer that ran into max_tokens.
FINISH_REASON_LENGTH = "length"


class CandidateSource(models.TextChoices):
    MODEL = "model", "Model sample"
    DEMONSTRATION = "demonstration", "Labeler demonstration"
    IMPORT = "import", "Imported"
    EDIT = "edit", "A labeler's edit of a model reply"


class Candidate(models.Model):
    """One answer to a prompt that labelers rank, with where it came from."""

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="candidates")
    text = models.TextField()
    content_hash = models.CharField(max_length=64)
    source = models.CharField(max_length=20, choices=CandidateSource.choices, default=CandidateSource.MODEL)
    # Provenance of a model sample.
    backend = models.CharField(max_length=50, blank=True)
    model_name = models.CharField(max_length=500, blank=True)
    sampling_params = models.JSONField(default=dict, blank=True)
    seed = models.BigIntegerField(null=True, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    generation_seconds = models.FloatField(null=True, blank=True)
    # Why the model stopped: "length" means it hit max_tokens, so the answer is cut off (labelers
    # see it marked); "stop" that it ended by itself; empty when unknown (imports, demonstrations).
    finish_reason = models.CharField(max_length=20, blank=True)
    demonstration = models.OneToOneField(
        Demonstration, null=True, blank=True, on_delete=models.SET_NULL, related_name="candidate"
    )
    # An edit: a labeler rewrote `edited_from` (in a converse turn); it ranks above its original.
    edited_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="edits"
    )
    edited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="edits"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["prompt_id", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["prompt", "content_hash"], name="candidate_unique_content_per_prompt"
            )
        ]

    def __str__(self) -> str:
        return f"Candidate {self.pk} on prompt {self.prompt_id}"

    @property
    def cut_off(self) -> bool:
        return self.finish_reason == FINISH_REASON_LENGTH
