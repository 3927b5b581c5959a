from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from annotation.labeler_signals import (
    DUPLICATE_SHARE_THRESHOLD,
    LENGTH_BIAS_THRESHOLD,
    POSITION_BIAS_THRESHOLD,
    REPEATED_ORDER_THRESHOLD,
    SPEED_RATIO_THRESHOLD,
)
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

    # Bias and spam signals (annotation/labeler_signals.py, whose constants say why these defaults): a
    # signal above its threshold shows on the labeler stats and sends the labeler's recent work to review.
    position_bias_threshold = models.FloatField(
        default=POSITION_BIAS_THRESHOLD,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Fires when |mean Kendall tau| between shown position and rank reaches this (0-1).",
    )
    repeated_order_threshold = models.FloatField(
        default=REPEATED_ORDER_THRESHOLD,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Fires when this share of a labeler's rankings repeat one pattern over shown positions (0-1).",
    )
    speed_ratio_threshold = models.FloatField(
        default=SPEED_RATIO_THRESHOLD,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Fires when a labeler's median time per task is below this share of the project's (0-1).",
    )
    length_bias_threshold = models.FloatField(
        default=LENGTH_BIAS_THRESHOLD,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Fires when the share of pairs won by the longer answer differs from the project's by this (0-1).",
    )
    duplicate_share_threshold = models.FloatField(
        default=DUPLICATE_SHARE_THRESHOLD,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Fires when this share of a labeler's demonstrations near-duplicate an earlier one (0-1).",
    )

    # Review (annotation/services/review.py): a random share of submissions waits for a reviewer, and
    # prompts whose labelers disagree too much wait for an adjudicated order.
    review_sample_rate = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Share of submissions sent to review at random when stored (0-1; 0: none).",
    )
    adjudication_threshold = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="A prompt ranked at least twice whose pairwise agreement falls below this goes to "
        "adjudication (0-1; 0: off).",
    )

    # Attention checks and qualification (annotation/services/gold.py): gold prompts are those with a
    # ranking marked gold; a labeler's ranking of one is an attention check, kept out of what counts.
    gold_share = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Share of a labeler's rank tasks served as gold attention checks (0-1; 0: none).",
    )
    qualification_tasks = models.PositiveSmallIntegerField(
        default=0,
        help_text="Gold tasks a new labeler must do before real work (0: no qualification phase).",
    )
    qualification_accuracy = models.FloatField(
        default=0.7,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Pairwise agreement with gold a labeler needs over the qualification tasks (0-1).",
    )
    pause_accuracy = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Pause a labeler from real work when their rolling gold accuracy falls below this (0-1; 0: never).",
    )
    pause_window = models.PositiveSmallIntegerField(
        default=10,
        validators=[MinValueValidator(1)],
        help_text="How many of a labeler's latest gold tasks the rolling accuracy reads.",
    )

    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        through="Membership",
        # Membership also names who lifted a pause; the member is `user`.
        through_fields=("project", "user"),
        related_name="projects",
    )
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


class QualificationStatus(models.TextChoices):
    PENDING = "pending", "Not yet qualified"
    QUALIFIED = "qualified", "Qualified"
    FAILED = "failed", "Failed qualification"


class Membership(models.Model):
    """Who belongs to a project and with which role; membership decides who sees the project."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.LABELER)
    created_at = models.DateTimeField(auto_now_add=True)
    # Standing on gold (annotation/services/gold.py); its history is in MembershipEvent. Qualification
    # only applies while the project asks for it (qualification_tasks > 0).
    qualification_status = models.CharField(
        max_length=20, choices=QualificationStatus.choices, default=QualificationStatus.PENDING
    )
    qualified_at = models.DateTimeField(null=True, blank=True)
    paused_at = models.DateTimeField(null=True, blank=True, help_text="Paused from real work since then.")
    pause_reason = models.TextField(blank=True)
    pause_lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    pause_lifted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="membership_unique_user")]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} ({self.role})"
