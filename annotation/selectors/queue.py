"""Reads for the labeler task queue: the queue's one specification, counts, and a task as shown.

`prompts_needing_work` is the specification of "which prompt may this labeler take next, and in
what order". It feeds the counts on the home page and is the lease's last resort; the lease's fast
paths (annotation/sql.py) must take the same prompts in the same order, which
tests/annotation/test_queue_spec.py checks on generated states on both databases.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotation.models import Assignment, Candidate, Demonstration, Project, Prompt, Ranking
from annotation.models.assignments import AssignmentStatus, TaskKind
from annotation.models.projects import RankingLayout
from annotation.models.prompts import FINISH_REASON_LENGTH
from annotation.models.quality import COUNTING_STATES
from annotation.models.rankings import FLAG_CHOICES, RankingSource
from annotation.permissions import projects_for_labeler
from annotation.selectors.candidates import QUEUED_STALE_AFTER, generation_seconds_per_prompt
from annotation.selectors.converse import converse_task_data
from annotation.selectors.gold import (
    QUALIFYING,
    WORKING,
    gold_prompts_available,
    gold_standing,
    membership_for,
)
from annotation.selectors.projects import guidelines_html
from annotation.sql.requests import candidate_texts

# What "next task, any kind" serves, in this order. A converse task is long and interactive, so it is
# only ever leased when asked for by name.
KINDS: tuple[str, ...] = (TaskKind.RANK, TaskKind.DEMONSTRATE)
LEASE_KINDS: tuple[str, ...] = (*KINDS, TaskKind.CONVERSE)


def count_per_prompt(queryset: QuerySet) -> Coalesce:
    """A correlated COUNT(*) subquery over rows of one prompt (0 when there are none)."""
    grouped = queryset.order_by().values("prompt").annotate(n=Count("pk")).values("n")[:1]
    return Coalesce(Subquery(grouped, output_field=IntegerField()), Value(0))


def live_leases(*, now: datetime) -> Q:
    """Leases that still hold a slot: leased and not past expiry (the periodic job may lag)."""
    return Q(status=AssignmentStatus.LEASED, expires_at__gt=now)


def slot_capacity(*, project: Project, kind: str) -> int:
    if kind == TaskKind.CONVERSE:
        return project.converse_per_prompt
    return project.rankings_per_prompt if kind == TaskKind.RANK else project.demonstrations_per_prompt


def prompts_needing_work(
    *,
    project: Project,
    labeler: User,
    kind: str,
    now: datetime | None = None,
    candidates_ready: bool = True,
) -> QuerySet[Prompt]:
    """Prompts of `project` with a free slot of `kind` that `labeler` may take, in serving order.

    Which: a slot is free while submitted work (labelers' rankings, or demonstrations) plus live
    leases stay below the project's capacity for the kind. A rank slot also needs the project's K
    candidates ready; with `candidates_ready=False` it does not, which lists what generation must
    fill for this labeler (each rank prompt is annotated with `ready`, its candidate count). The
    labeler must not hold, have done, or have skipped that task, and must not rank a prompt where
    their own demonstration is a candidate.

    Order: breadth-first in two tiers, then the admin's priority. Partly done prompts (some slot
    taken, one free) come before untouched ones, so prompts get finished rather than all started;
    within a tier, higher priority first, then the project's queue strategy (`queue_rank`, higher
    first: all 0 under breadth-first; written from stored scores by a periodic job otherwise), then
    the older prompt (lower id). Not "fullest first": priority is the admin's explicit word and
    should decide among prompts that are all under way.
    """
    now = now or timezone.now()
    capacity = slot_capacity(project=project, kind=kind)
    live = count_per_prompt(Assignment.objects.filter(live_leases(now=now), prompt=OuterRef("pk"), kind=kind))
    mine = Assignment.objects.filter(prompt=OuterRef("pk"), labeler=labeler, kind=kind).exclude(
        status=AssignmentStatus.EXPIRED
    )
    prompts = Prompt.objects.filter(project=project).filter(~Exists(mine))
    if kind == TaskKind.RANK:
        done = count_per_prompt(
            Ranking.objects.filter(
                prompt=OuterRef("pk"), source=RankingSource.LABELER, quality_state__in=COUNTING_STATES
            )
        )
        prompts = (
            prompts.annotate(ready=count_per_prompt(Candidate.objects.filter(prompt=OuterRef("pk"))))
            .filter(ready__gte=project.k if candidates_ready else 0)
            .filter(
                ~Exists(Ranking.objects.filter(prompt=OuterRef("pk"), labeler=labeler)),
                ~Exists(Candidate.objects.filter(prompt=OuterRef("pk"), demonstration__labeler=labeler)),
            )
        )
    elif kind == TaskKind.CONVERSE:
        # A turn is a ranking of this prompt, so the labeler must not have ranked it; and the
        # conversation must have a turn left.
        done = count_per_prompt(
            Assignment.objects.filter(prompt=OuterRef("pk"), kind=kind, status=AssignmentStatus.SUBMITTED)
        )
        prompts = prompts.filter(
            ~Exists(Ranking.objects.filter(prompt=OuterRef("pk"), labeler=labeler)),
            converse_depth__lt=project.converse_max_turns,
        )
    else:
        done = count_per_prompt(
            Demonstration.objects.filter(prompt=OuterRef("pk"), quality_state__in=COUNTING_STATES)
        )
        prompts = prompts.filter(
            ~Exists(Demonstration.objects.filter(prompt=OuterRef("pk"), labeler=labeler))
        )
    # Triage may ask a prompt for rankings beyond the project's overlap.
    room = Value(capacity) + F("extra_rankings") if kind == TaskKind.RANK else Value(capacity)
    return (
        prompts.annotate(filled=done + live)
        .filter(filled__lt=room)
        .annotate(
            untouched=Case(When(filled=0, then=Value(1)), default=Value(0), output_field=IntegerField())
        )
        .order_by("untouched", "-priority", "-queue_rank", "id")
    )


def work_available(*, labeler: User, now: datetime | None = None) -> list[dict[str, Any]]:
    """Per project the labeler may work in: how many demonstrate and rank tasks they could take now,
    and, so that nobody stares at a zero, how many more rank tasks for them the model is writing now
    (`rank_generating`) with about how long one prompt's answers take (`generation_seconds`, None
    when nothing is being written or nothing has been yet)."""
    now = now or timezone.now()
    rows = []
    for project in projects_for_labeler(user=labeler):
        standing = gold_standing(project=project, membership=membership_for(project=project, labeler=labeler))
        if standing.state != WORKING:
            # Gated by attention checks (annotation/selectors/gold.py): say so plainly, and count only
            # what the lease would serve (qualification tasks while qualifying, nothing otherwise).
            rank = (
                gold_prompts_available(project=project, labeler=labeler)
                if standing.state == QUALIFYING
                else 0
            )
            rows.append(
                {
                    "project": project,
                    "demonstrate": 0,
                    "rank": rank,
                    "converse": 0,
                    "rank_generating": 0,
                    "generation_seconds": None,
                    "standing": standing.state,
                    "standing_message": standing.message,
                }
            )
            continue
        counts: dict[str, Any] = {
            kind: (
                prompts_needing_work(project=project, labeler=labeler, kind=kind, now=now).count()
                if slot_capacity(project=project, kind=kind) > 0
                else 0
            )
            for kind in LEASE_KINDS
        }
        counts["rank_generating"] = (
            prompts_needing_work(
                project=project, labeler=labeler, kind=TaskKind.RANK, now=now, candidates_ready=False
            )
            .filter(Q(ready__lt=project.k), generation_queued_at__gte=now - QUEUED_STALE_AFTER)
            .count()
            if project.rankings_per_prompt > 0
            else 0
        )
        counts["generation_seconds"] = (
            generation_seconds_per_prompt(project=project) if counts["rank_generating"] else None
        )
        rows.append({"project": project, **counts, "standing": standing.state, "standing_message": ""})
    return rows


def labeler_counts(*, labeler: User, now: datetime | None = None) -> dict[str, int]:
    """The labeler's own submitted work: today (server time zone) and in total."""
    now = now or timezone.now()
    midnight = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    demonstrations = Demonstration.objects.filter(labeler=labeler)
    rankings = Ranking.objects.filter(labeler=labeler)
    return {
        "demonstrations_today": demonstrations.filter(created_at__gte=midnight).count(),
        "demonstrations_total": demonstrations.count(),
        "rankings_today": rankings.filter(created_at__gte=midnight).count(),
        "rankings_total": rankings.count(),
    }


def live_assignments_for_labeler(*, labeler: User, now: datetime | None = None) -> QuerySet:
    """Tasks the labeler holds right now, oldest first, in active projects."""
    now = now or timezone.now()
    return (
        Assignment.objects.filter(live_leases(now=now), labeler=labeler, project__is_active=True)
        .select_related("project")
        .order_by("leased_at")
    )


def assignment_task_data(*, assignment: Assignment) -> dict[str, Any]:
    """Everything a labeler needs to do one task, and nothing about models or other labelers.

    Candidates come in the assignment's shown order, as id, text and whether the text was cut off
    at the token limit (visible in the text itself; marking it spares the labeler a guess).
    """
    project, prompt = assignment.project, assignment.prompt
    candidates: list[dict[str, Any]] = []
    if assignment.kind in (TaskKind.RANK, TaskKind.CONVERSE):
        texts = candidate_texts(candidate_ids=assignment.shown_order)
        candidates = [
            {"id": pk, "text": texts[pk][0], "cut_off": texts[pk][1] == FINISH_REASON_LENGTH}
            for pk in assignment.shown_order
            if pk in texts
        ]
    return {
        "id": assignment.pk,
        "kind": assignment.kind,
        "status": assignment.status,
        "leased_at": assignment.leased_at,
        "expires_at": assignment.expires_at,
        "submitted_at": assignment.submitted_at,
        "project": {
            "id": project.pk,
            "name": project.name,
            "guidelines_html": guidelines_html(project=project),
            "k": project.k,
            "min_demonstration_chars": project.min_demonstration_chars,
            "ratings_required": project.ratings_required,
            "layout": ranking_layout(project=project),
            "converse_max_turns": project.converse_max_turns,
            "converse_own_opening": project.converse_own_opening,
        },
        "prompt": {"id": prompt.pk, "turns": prompt.turns},
        "candidates": candidates,
        "flags": [{"key": key, "label": label} for key, label in FLAG_CHOICES],
        "draft": assignment.draft or {},
        "draft_saved_at": assignment.draft_saved_at,
        "conversation": converse_task_data(assignment=assignment)
        if assignment.kind == TaskKind.CONVERSE
        else None,
    }


def ranking_layout(*, project: Project) -> str:
    """How a rank task's answers are laid out: two side by side (only ever for K = 2), or a list."""
    if project.ranking_layout == RankingLayout.SIDE_BY_SIDE or (
        project.ranking_layout == RankingLayout.AUTO and project.k == 2
    ):
        return "side_by_side"
    return "list"
