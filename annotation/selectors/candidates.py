"""Reads for candidate generation: which prompts need candidates and how full each project's pool is.

A prompt is *ready* when it has K candidates and still needs rankings. The top-up keeps a
project's ready pool at its low-water mark; a prompt already queued for generation counts as on
its way until its queue mark goes stale (a worker that died never clears it).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count, Exists, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from annotation.models import Assignment, Candidate, Demonstration, Membership, Project, Prompt, Ranking
from annotation.models.prompts import CandidateSource
from annotation.models.rankings import RankingSource

# After this a prompt marked as generating is assumed lost (its message never sent, or the broker
# flushed) and may be enqueued again. Longer than one generation attempt (8 min hard limit, see
# annotation/tasks.py) plus the wait before a retry (at most 4 min; each retry renews the mark), and
# than the broker's visibility timeout (11 min by default), after which a killed worker's message
# comes back by itself: so a live job is not doubled, and a lost one is redone in minutes.
QUEUED_STALE_AFTER = timedelta(minutes=13)
# A prompt whose generation failed is left alone this long before the top-up tries it again, so a
# broken setting does not spin the workers; "generate now" in the admin skips the wait.
ERROR_COOLDOWN = timedelta(minutes=30)
# Default pool: two ready prompts per member, so nobody waits while the next one is generated,
# and never fewer than four.
PROMPTS_PER_MEMBER = 2
# A member who took a task this recently is working now: keep rankable work ready for them.
LABELER_ACTIVE_WINDOW = timedelta(hours=2)
MIN_LOW_WATER_MARK = 4
# Recent samples behind the "about N s" a waiting labeler is shown: enough to smooth out one long
# answer, few enough to follow a change of model or max_tokens.
RECENT_SAMPLES_FOR_ESTIMATE = 40


def _per_prompt_count(rows: QuerySet) -> Coalesce:
    # A correlated subquery per count: two joined Counts would multiply each other's rows.
    rows = rows.filter(prompt=OuterRef("pk")).order_by().values("prompt")
    return Coalesce(
        Subquery(rows.annotate(count=Count("pk")).values("count")[:1], output_field=IntegerField()), 0
    )


# Prompt rows annotated with candidate_count and ranking_count. Typed loosely: the type checker
# cannot follow annotations across function boundaries.
PromptsWithCounts = QuerySet[Any]


def _with_counts(prompts: QuerySet[Prompt]) -> PromptsWithCounts:
    return prompts.annotate(
        candidate_count=_per_prompt_count(Candidate.objects.all()),
        # Labelers' rankings only, as the task queue counts them: imported preferences fill no slot.
        ranking_count=_per_prompt_count(Ranking.objects.filter(source=RankingSource.LABELER)),
    )


def prompts_with_counts(*, project: Project) -> PromptsWithCounts:
    """The project's prompts annotated with `candidate_count` and `ranking_count`."""
    return _with_counts(Prompt.objects.filter(project=project))


def prompts_by_ids_with_counts(*, prompt_ids: list[int]) -> PromptsWithCounts:
    """The given prompts, of any projects, with their project and both counts."""
    return _with_counts(Prompt.objects.filter(pk__in=prompt_ids).select_related("project"))


def prompts_needing_rankings(*, project: Project) -> PromptsWithCounts:
    return prompts_with_counts(project=project).filter(ranking_count__lt=project.rankings_per_prompt)


def prompts_ready(*, project: Project) -> PromptsWithCounts:
    """Prompts that labelers can rank now: K candidates, rankings still wanted."""
    return prompts_needing_rankings(project=project).filter(candidate_count__gte=project.k)


def prompts_generating(*, project: Project, now: datetime) -> PromptsWithCounts:
    """Prompts short of K whose generation job is queued or running (queue mark not stale)."""
    return prompts_needing_rankings(project=project).filter(
        candidate_count__lt=project.k, generation_queued_at__gte=now - QUEUED_STALE_AFTER
    )


def project_pool_counts(*, project: Project, now: datetime) -> tuple[int, int]:
    """(ready, generating) for the project, read in one statement so that a prompt moving from
    one to the other while it runs is counted exactly once."""
    counts = prompts_needing_rankings(project=project).aggregate(
        ready=Count("pk", filter=Q(candidate_count__gte=project.k)),
        generating=Count(
            "pk",
            filter=Q(candidate_count__lt=project.k, generation_queued_at__gte=now - QUEUED_STALE_AFTER),
        ),
    )
    return counts["ready"], counts["generating"]


def prompts_short_of_candidates(*, project: Project, now: datetime) -> PromptsWithCounts:
    """Prompts to enqueue next, best first: short of K, not queued, not in their error cooldown."""
    return (
        prompts_needing_rankings(project=project)
        .filter(candidate_count__lt=project.k)
        .filter(Q(generation_queued_at__isnull=True) | Q(generation_queued_at__lt=now - QUEUED_STALE_AFTER))
        .filter(Q(generation_error_at__isnull=True) | Q(generation_error_at__lt=now - ERROR_COOLDOWN))
        .order_by("-priority", "-queue_rank", "id")
    )


def project_low_water_mark(*, project: Project) -> int:
    """How many ready prompts to keep: the project's setting, else the site's, else per member."""
    if project.low_water_mark:
        return project.low_water_mark
    if settings.GENERATION_LOW_WATER_MARK > 0:
        return settings.GENERATION_LOW_WATER_MARK
    members = Membership.objects.filter(project=project, user__is_active=True).count()
    return max(MIN_LOW_WATER_MARK, PROMPTS_PER_MEMBER * members)


def projects_active() -> QuerySet[Project]:
    return Project.objects.filter(is_active=True).order_by("id")


def candidate_hashes(*, prompt_id: int) -> set[str]:
    return set(Candidate.objects.filter(prompt_id=prompt_id).values_list("content_hash", flat=True))


def demonstrations_without_candidate(*, prompt_id: int) -> QuerySet[Demonstration]:
    """The prompt's demonstrations not yet among its candidates, oldest first."""
    return Demonstration.objects.filter(prompt_id=prompt_id, candidate__isnull=True).order_by(
        "created_at", "id"
    )


def labelers_active(*, project: Project, now: datetime) -> QuerySet:
    """Members of the project who took a task in it within LABELER_ACTIVE_WINDOW: those waiting on work."""
    recent = Assignment.objects.filter(
        project=project, labeler=OuterRef("pk"), leased_at__gte=now - LABELER_ACTIVE_WINDOW
    )
    return (
        get_user_model()
        .objects.filter(is_active=True, memberships__project=project)
        .filter(Exists(recent))
        .order_by("id")
    )


def generation_seconds_per_prompt(*, project: Project) -> float | None:
    """About how long the backend takes to write one prompt's K answers (seconds), from the mean of
    the project's last RECENT_SAMPLES_FOR_ESTIMATE model samples; None before the first sample."""
    recent = [
        seconds
        for seconds in Candidate.objects.filter(
            prompt__project=project, source=CandidateSource.MODEL, generation_seconds__isnull=False
        )
        .order_by("-pk")
        .values_list("generation_seconds", flat=True)[:RECENT_SAMPLES_FOR_ESTIMATE]
        if seconds is not None
    ]
    return sum(recent) / len(recent) * project.k if recent else None
