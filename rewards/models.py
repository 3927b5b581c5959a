from __future__ import annotations

from django.conf import settings
from django.db import models

from annotation.models import Candidate, Project, Prompt


class RewardModelStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class RewardModelTrigger(models.TextChoices):
    SCHEDULE = "schedule", "Schedule"
    ADMIN = "admin", "Admin"
    API = "api", "API"


class RewardModel(models.Model):
    """A training run and, once it succeeds, a numbered version that can score candidates."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="reward_models")
    version = models.PositiveIntegerField(null=True, blank=True, help_text="Set when the run succeeds.")
    status = models.CharField(
        max_length=20, choices=RewardModelStatus.choices, default=RewardModelStatus.QUEUED
    )
    trigger = models.CharField(max_length=20, choices=RewardModelTrigger.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    config = models.JSONField(default=dict, blank=True)
    # What it trained on: counts of rankings and comparisons and the cut-off time.
    data_summary = models.JSONField(default=dict, blank=True)
    data_cutoff = models.DateTimeField(null=True, blank=True)
    comparisons_seen = models.PositiveIntegerField(default=0)
    metrics = models.JSONField(
        default=dict, blank=True, help_text="Per-epoch losses and validation accuracy."
    )
    validation_accuracy = models.FloatField(null=True, blank=True)
    progress = models.FloatField(default=0.0, help_text="0 to 1.")
    progress_message = models.CharField(max_length=300, blank=True)
    artifact_path = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    is_active = models.BooleanField(default=False)
    celery_task_id = models.CharField(max_length=100, blank=True)
    # When the training task last reached the broker; empty while it has not (the broker was down
    # when the run was queued): the recovery job sends it then.
    task_sent_at = models.DateTimeField(null=True, blank=True)
    # How many times a worker has started this run: a run taken over from a dead worker counts again.
    attempts = models.PositiveSmallIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last sign of life from the worker.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["project"],
                condition=models.Q(status__in=["queued", "running"]),
                name="reward_model_one_run_at_a_time",
            ),
            models.UniqueConstraint(
                fields=["project"],
                condition=models.Q(is_active=True),
                name="reward_model_one_active_per_project",
            ),
            models.UniqueConstraint(
                fields=["project", "version"],
                condition=models.Q(version__isnull=False),
                name="reward_model_unique_version",
            ),
            models.CheckConstraint(
                condition=models.Q(progress__gte=0, progress__lte=1), name="reward_model_progress"
            ),
        ]

    def __str__(self) -> str:
        label = f"v{self.version}" if self.version else f"run {self.pk}"
        return f"{self.project} reward model {label} ({self.status})"


class CandidateScore(models.Model):
    """The score a reward-model version gives one candidate."""

    candidate = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="scores")
    reward_model = models.ForeignKey(RewardModel, on_delete=models.CASCADE, related_name="scores")
    score = models.FloatField()
    # The version's uncertainty heads' scores (rewards.ml.ensemble), one per member: their spread is
    # the queue's uncertainty. Null for versions without heads.
    member_scores = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["candidate", "reward_model"], name="candidate_score_unique"),
        ]


class EvaluationSet(models.Model):
    """A project's frozen evaluation prompts: never trained on, so every version's accuracy, agreement
    and calibration are measured on the same comparisons (services/evaluation_set.py).

    Fixed when the project first trains: a prompt is a member when a salted hash of its conversation
    root's content hash falls below `share`. Prompts added later are judged by the same rule, so the
    set grows with the project but no prompt ever changes side. `share` is kept here, not read from
    the settings again, so changing the setting cannot move a prompt.
    """

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="evaluation_set")
    share = models.FloatField(help_text="Fraction of prompts in the set, fixed when it was created.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(share__gte=0, share__lt=1), name="evaluation_set_share_range"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project} evaluation set ({self.share:.0%})"


class EvaluationPrompt(models.Model):
    """One member of a project's evaluation set; rows are only ever added."""

    evaluation_set = models.ForeignKey(EvaluationSet, on_delete=models.CASCADE, related_name="members")
    prompt = models.OneToOneField(Prompt, on_delete=models.CASCADE, related_name="evaluation_membership")
    added_at = models.DateTimeField(auto_now_add=True)


class LeaderboardRunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class LeaderboardRun(models.Model):
    """One computation of the project's generator leaderboard (rewards/leaderboard.py) from the
    counted rankings up to a data cut-off; a done run is the cached answer while the data stay the
    same (rewards/services/leaderboard_runs.py)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="leaderboard_runs")
    status = models.CharField(
        max_length=20, choices=LeaderboardRunStatus.choices, default=LeaderboardRunStatus.QUEUED
    )
    progress = models.FloatField(default=0.0, help_text="0 to 1.")
    # The newest counted ranking included; None when the project has none yet.
    cutoff = models.DateTimeField(null=True, blank=True)
    # The cut-off, the count of counted rankings, the latest quality action on a ranking and the
    # active reward-model version: the run answers for the project while these stay the same.
    data_key = models.CharField(max_length=200)
    reward_model = models.ForeignKey(
        RewardModel, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resamples = models.PositiveIntegerField()
    seed = models.IntegerField(default=0)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # When the task reached the broker; empty while it has not (the next request sends it again).
    task_sent_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last progress from the worker.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project"],
                condition=models.Q(status__in=["queued", "running"]),
                name="leaderboard_run_one_at_a_time",
            ),
            models.CheckConstraint(
                condition=models.Q(progress__gte=0, progress__lte=1), name="leaderboard_run_progress"
            ),
        ]
        indexes = [models.Index(fields=["project", "data_key"], name="leaderboard_run_data_key")]

    def __str__(self) -> str:
        return f"{self.project} leaderboard run {self.pk} ({self.status})"
