from __future__ import annotations

from django.conf import settings
from django.db import models

from annotation.models.assignments import Assignment
from annotation.models.prompts import Candidate, Prompt
from annotation.models.quality import QualityState

# InstructGPT's per-answer metadata (Ouyang et al. 2022, appendix B), plus "other".
FLAG_CHOICES: list[tuple[str, str]] = [
    ("fails_instruction", "Fails to follow the correct instruction / task"),
    ("inappropriate", "Inappropriate for a customer assistant"),
    ("hallucination", "Hallucination (makes up facts)"),
    ("follows_explicit_constraint_fail", "Ignores an explicit constraint in the instruction"),
    ("sexual", "Contains sexual content"),
    ("violent", "Contains violent content"),
    ("encourages_violence", "Encourages or fails to discourage violence, abuse, terrorism or self-harm"),
    ("denigrates_protected_class", "Denigrates a protected class"),
    ("harmful_advice", "Gives harmful advice"),
    ("expresses_opinion", "Expresses an opinion"),
    ("expresses_moral_judgment", "Expresses a moral judgment"),
    ("other", "Other problem (see comment)"),
]
FLAG_KEYS: frozenset[str] = frozenset(key for key, _ in FLAG_CHOICES)


class RankingSource(models.TextChoices):
    LABELER = "labeler", "Labeler"
    IMPORT = "import", "Imported preference data"
    # A reviewer's order for a prompt its labelers disagreed on: gold, and never a labeler's slot.
    ADJUDICATION = "adjudication", "Adjudicated by a reviewer"


class Ranking(models.Model):
    """One labeler's order of a prompt's K candidates, as tie groups: [[c3], [c1, c4], [c2]]."""

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="rankings")
    labeler = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="rankings"
    )
    assignment = models.OneToOneField(
        Assignment, null=True, blank=True, on_delete=models.SET_NULL, related_name="ranking"
    )
    source = models.CharField(max_length=20, choices=RankingSource.choices, default=RankingSource.LABELER)
    order = models.JSONField(help_text="Tie groups of candidate ids, best first.")
    comment = models.TextField(blank=True)
    seconds_spent = models.FloatField(default=0)
    quality_state = models.CharField(
        max_length=20, choices=QualityState.choices, default=QualityState.COUNTED, db_index=True
    )
    # The labeler found no answer acceptable; the order still says which is least bad.
    none_acceptable = models.BooleanField(default=False)
    is_gold = models.BooleanField(default=False, help_text="A known-good ranking labelers are compared with.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["prompt", "labeler"],
                condition=models.Q(labeler__isnull=False),
                name="ranking_one_per_labeler",
            ),
            models.CheckConstraint(condition=models.Q(seconds_spent__gte=0), name="ranking_time_nonnegative"),
        ]

    def __str__(self) -> str:
        return f"Ranking {self.pk} on prompt {self.prompt_id}"


class RankingItem(models.Model):
    """One candidate's place, rating and flags within a ranking."""

    ranking = models.ForeignKey(Ranking, on_delete=models.CASCADE, related_name="items")
    candidate = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="ranking_items")
    rank = models.PositiveSmallIntegerField(help_text="Index of the tie group, 0 = best.")
    rating = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Quality 1-7.")
    flags = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["ranking_id", "rank", "candidate_id"]
        constraints = [
            models.UniqueConstraint(fields=["ranking", "candidate"], name="ranking_item_unique_candidate"),
            models.CheckConstraint(
                condition=models.Q(rating__isnull=True) | models.Q(rating__gte=1, rating__lte=7),
                name="ranking_item_rating_1_to_7",
            ),
        ]


class Comparison(models.Model):
    """One (better, worse) pair implied by a ranking; export, agreement and training read these."""

    ranking = models.ForeignKey(Ranking, on_delete=models.CASCADE, related_name="comparisons")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="comparisons")
    labeler = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="comparisons"
    )
    better = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="won_comparisons")
    worse = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="lost_comparisons")
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["ranking", "better", "worse"], name="comparison_unique_pair"),
            models.CheckConstraint(condition=~models.Q(better=models.F("worse")), name="comparison_distinct"),
        ]
        indexes = [models.Index(fields=["prompt", "better", "worse"], name="comparison_pair_lookup")]
