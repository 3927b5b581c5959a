from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from annotation.models.fields import EncryptedTextField


class GenerationBackend(models.TextChoices):
    EMBEDDED = "embedded", "Embedded GGUF model (llama.cpp)"
    OPENAI = "openai", "OpenAI-compatible HTTP server"


class RankingLayout(models.TextChoices):
    AUTO = "auto", "Side by side when K = 2, else a list"
    LIST = "list", "A list to order"
    SIDE_BY_SIDE = "side_by_side", "Two answers side by side (K = 2)"


class QueueStrategy(models.TextChoices):
    BREADTH_FIRST = "breadth_first", "Breadth-first: partly done prompts first, then by priority and age"
    UNCERTAINTY = "uncertainty", "Where the reward model is least sure which answer is better"
    DISAGREEMENT = "disagreement", "Where labelers disagree most"


class Project(models.Model):
    """A labeling project: its guidelines, how much work each prompt needs, and how candidates are made."""

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    guidelines = models.TextField(blank=True, help_text="Markdown, shown to labelers beside every task.")
    is_active = models.BooleanField(default=True)

    # How much human work each prompt needs.
    k = models.PositiveSmallIntegerField(
        default=4,
        validators=[MinValueValidator(2), MaxValueValidator(9)],
        help_text="Candidates per ranking task (2-9).",
    )
    rankings_per_prompt = models.PositiveSmallIntegerField(
        default=2, validators=[MinValueValidator(0)], help_text="Overlap: how many labelers rank each prompt."
    )
    demonstrations_per_prompt = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(0)], help_text="How many labelers write a demonstration."
    )
    min_demonstration_chars = models.PositiveIntegerField(default=20)
    ratings_required = models.BooleanField(
        default=False,
        help_text="Labelers must rate every answer 1-7 before a ranking is accepted (otherwise ratings are optional).",
    )
    lease_seconds = models.PositiveIntegerField(
        default=30 * 60,
        validators=[MinValueValidator(60)],
        help_text="How long a labeler holds a task before it returns to the queue.",
    )

    # Which prompts are ranked next (within the breadth-first tiers and the admin's priority).
    queue_strategy = models.CharField(
        max_length=20, choices=QueueStrategy.choices, default=QueueStrategy.BREADTH_FIRST
    )
    exploration_share = models.FloatField(
        default=0.1,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Under a strategy other than breadth-first, the share of prompts served in random order, "
        "so the model does not only see what it already finds hard (0-1).",
    )

    # Conversations with the model (the converse task).
    converse_per_prompt = models.PositiveSmallIntegerField(
        default=0,
        validators=[MaxValueValidator(20)],
        help_text="How many labelers talk to the model from each prompt (0: no converse tasks).",
    )
    converse_max_turns = models.PositiveSmallIntegerField(
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(20)],
        help_text="Assistant turns a conversation may reach (1-20).",
    )
    converse_own_opening = models.BooleanField(
        default=False, help_text="Labelers may write the opening user turn instead of taking a prompt."
    )
    ranking_layout = models.CharField(
        max_length=20,
        choices=RankingLayout.choices,
        default=RankingLayout.AUTO,
        help_text="Side by side needs K = 2; auto shows two answers side by side and more as a list.",
    )

    # Generation.
    generation_backend = models.CharField(
        max_length=20, choices=GenerationBackend.choices, default=GenerationBackend.EMBEDDED
    )
    generation_model = models.CharField(
        max_length=500,
        blank=True,
        help_text="Embedded: a GGUF file path (empty: the packaged Gemma 3 270M). HTTP: the model name.",
    )
    generation_base_url = models.URLField(
        blank=True, help_text="OpenAI-compatible server, e.g. http://vllm:8000/v1"
    )
    # Encrypted at rest (annotation/models/fields.py); write-only in the admin.
    generation_api_key = EncryptedTextField(blank=True)
    temperature = models.FloatField(default=0.9, validators=[MinValueValidator(0.0), MaxValueValidator(2.0)])
    top_p = models.FloatField(default=0.95, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    max_tokens = models.PositiveIntegerField(default=160, validators=[MinValueValidator(1)])
    stop_sequences = models.JSONField(default=list, blank=True)
    demonstrations_as_candidates = models.BooleanField(
        default=False, help_text="Put labelers' demonstrations among the candidates to rank."
    )
    low_water_mark = models.PositiveIntegerField(
        default=0, help_text="Prompts to keep ready with K candidates; 0 derives it from the active labelers."
    )

    # Reward-model retraining.
    retrain_enabled = models.BooleanField(default=True)
    retrain_min_new_comparisons = models.PositiveIntegerField(
        default=500,
        validators=[MinValueValidator(1)],
        help_text="Retrain when this many new comparisons arrived.",
    )
    reward_model_config = models.JSONField(
        default=dict, blank=True, help_text="Overrides of training defaults."
    )
    # Written into the dataset card (README.md) beside every background export.
    dataset_license = models.CharField(
        max_length=100,
        blank=True,
        help_text="Licence of the exported data as a Hugging Face licence id (cc-by-4.0, apache-2.0, "
        "other); empty: 'other'.",
    )
    dataset_source = models.TextField(
        blank=True, help_text="Where the prompts and answers come from, for the dataset card (Markdown)."
    )

    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="projects")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=models.Q(k__gte=2, k__lte=9), name="project_k_between_2_and_9"),
            models.CheckConstraint(
                condition=models.Q(lease_seconds__gte=60), name="project_lease_at_least_60s"
            ),
            models.CheckConstraint(
                condition=models.Q(temperature__gte=0, temperature__lte=2), name="project_temperature_range"
            ),
            models.CheckConstraint(
                condition=models.Q(top_p__gte=0, top_p__lte=1), name="project_top_p_range"
            ),
            models.CheckConstraint(
                condition=~models.Q(ranking_layout="side_by_side") | models.Q(k=2),
                name="project_side_by_side_needs_k_2",
            ),
            models.CheckConstraint(
                condition=models.Q(exploration_share__gte=0, exploration_share__lte=1),
                name="project_exploration_share_range",
            ),
            models.CheckConstraint(
                condition=models.Q(converse_max_turns__gte=1, converse_max_turns__lte=20),
                name="project_converse_turns_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    LABELER = "labeler", "Labeler"
    REVIEWER = "reviewer", "Reviewer"
    ADMIN = "admin", "Admin"


class Membership(models.Model):
    """Who belongs to a project and with which role; membership decides who sees the project."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.LABELER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="membership_unique_user")]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} ({self.role})"
