"""Writes for the task queue: leasing a task, expiring leases, skipping a task, saving its draft.

Submitting one is annotation.services.submissions.

Concurrency: on PostgreSQL the lease locks the chosen prompt row with
`SELECT ... FOR UPDATE SKIP LOCKED`, so labelers asking at once take different prompts and never
wait on each other, then re-counts the slot under that lock (every lease of a prompt holds the
lock while it writes, so the count cannot change underneath). On SQLite the IMMEDIATE transaction
takes the database write lock at BEGIN, which serialises leases by itself.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from annotation.models import Assignment, Project, Prompt
from annotation.models.assignments import AssignmentStatus, TaskKind
from annotation.permissions import MAX_ID, labeler_task_access_check, project_role
from annotation.selectors.gold import (
    QUALIFYING,
    WORKING,
    gold_choice,
    gold_draw,
    gold_standing,
    membership_for,
)
from annotation.selectors.queue import KINDS, LEASE_KINDS, prompts_needing_work, slot_capacity
from annotation.services.gold import gold_check_open
from annotation.services.live import live_generation_start
from annotation.sql.queue import (
    PromptForLease,
    labeler_leases_locked,
    projects_for_labeler_list,
    prompt_for_lease,
    prompt_next_locked,
)
from annotation.sql.requests import assignment_for_labeler
from config.errors import Conflict, NotFound, ValidationFailed

MAX_DRAFT_CHARS = 200_000
MAX_SKIP_REASON_CHARS = 500
# When every prompt with a free slot is locked by labelers mid-lease, try again shortly: their
# transactions last milliseconds. Bounded so a request never hangs (under 0.3 s of sleep in all).
LEASE_ATTEMPTS = 8
LEASE_RETRY_SECONDS = 0.005
LEASE_RETRY_MAX_SECONDS = 0.05
# Prompts found full on re-check before giving up (each costs one count under lock).
MAX_REJECTED = 50


def assignment_get_for_labeler(*, assignment_id: int, labeler: User, lock: bool = False) -> Assignment:
    """The labeler's own assignment, or NotFound: another labeler's task looks like no task at all.

    Its project and prompt come with it. `lock` takes the assignment's row lock (PostgreSQL) until
    the transaction ends.
    """
    if not 0 < assignment_id <= MAX_ID:  # the database cannot hold it (and SQLite would overflow)
        raise NotFound(f"assignment {assignment_id} not found", code="assignment_not_found")
    assignment = assignment_for_labeler(assignment_id=assignment_id, labeler_id=labeler.pk, lock=lock)
    if assignment is None:
        raise NotFound(f"assignment {assignment_id} not found", code="assignment_not_found")
    # Still allowed to label there: a removed labeler (404) or one made reviewer (403) loses the task,
    # its guidelines and its draft, on the page and the API alike.
    labeler_task_access_check(user=labeler, role=assignment.labeler_role)  # type: ignore[attr-defined]
    return assignment


def _shown_order(
    *, candidate_ids: list[int], prompt_id: int, labeler_id: int, leased_at: datetime, k: int
) -> list[int]:
    """K of the prompt's candidates (`candidate_ids`, sorted) in a shuffled order, seeded by the assignment's own fields.

    The seed (prompt, labeler, lease time) is stored on the row, so the choice can be reproduced.
    """
    rng = random.Random(f"assignment-{prompt_id}-{labeler_id}-{leased_at.isoformat()}")
    chosen = rng.sample(candidate_ids, k) if len(candidate_ids) > k else list(candidate_ids)
    rng.shuffle(chosen)
    return chosen


def _lease_in_project(*, project: Project, labeler: User, kind: str, now: datetime) -> Assignment | None:
    capacity = slot_capacity(project=project, kind=kind)
    if capacity <= 0:
        return None
    rejected: list[int] = []
    attempt = 0
    while attempt < LEASE_ATTEMPTS:
        attempt += 1
        # The fast paths first (they read the prompts' done counts); the specification itself is
        # the last resort: it counts the rows, so it also finds a prompt whose counts are out of
        # step (work deleted by hand) until the periodic job repairs them.
        prompt_id = prompt_next_locked(
            project=project, labeler_id=labeler.pk, kind=kind, capacity=capacity, now=now, rejected=rejected
        )
        if prompt_id is None:
            prompt_id = (
                prompts_needing_work(project=project, labeler=labeler, kind=kind, now=now)
                .exclude(pk__in=rejected)
                .select_for_update(skip_locked=True, of=("self",))
                .values_list("pk", flat=True)
                .first()
            )
        if prompt_id is None:
            # Nothing unlocked. If some prompt still shows a free slot, others hold it mid-lease:
            # their lease may not take its last slot, so look again once they commit.
            exact = prompts_needing_work(project=project, labeler=labeler, kind=kind, now=now)
            if connection.vendor != "postgresql" or not exact.exclude(pk__in=rejected).exists():
                return None
            time.sleep(min(LEASE_RETRY_SECONDS * (2**attempt), LEASE_RETRY_MAX_SECONDS))
            continue
        # Re-count under the lock: the paths' counts may predate a lease that just committed.
        details = prompt_for_lease(prompt_id=prompt_id, labeler_id=labeler.pk, kind=kind, now=now)
        if details.taken >= capacity + details.extra:
            rejected.append(prompt_id)
            attempt -= 1  # a full prompt is not contention; only sleeps count against the limit
            if len(rejected) > MAX_REJECTED:
                return None
            continue
        return _assignment_create(
            project=project, prompt_id=prompt_id, details=details, labeler=labeler, kind=kind, now=now
        )
    return None


def _assignment_create(
    *, project: Project, prompt_id: int, details: PromptForLease, labeler: User, kind: str, now: datetime
) -> Assignment:
    draft: dict[str, Any] = {}
    draft_saved_at: datetime | None = None
    if details.carried_from is not None:  # re-leasing a task whose lease ran out: its draft comes along
        draft, draft_saved_at = Assignment.objects.values_list("draft", "draft_saved_at").get(
            pk=details.carried_from
        )
    shown_order = (
        _shown_order(
            candidate_ids=details.candidate_ids,
            prompt_id=prompt_id,
            labeler_id=labeler.pk,
            leased_at=now,
            k=project.k,
        )
        if kind == TaskKind.RANK
        else []
    )
    # The prompt as read under the lock, so that the task shown next needs no second read of it;
    # its other fields load on first access.
    prompt = Prompt.from_db(
        connection.alias, ["id", "project_id", "turns"], [prompt_id, project.pk, details.turns]
    )
    assignment = Assignment.objects.create(
        project=project,
        prompt=prompt,
        labeler=labeler,
        kind=kind,
        status=AssignmentStatus.LEASED,
        leased_at=now,
        expires_at=now + timedelta(seconds=project.lease_seconds),
        shown_order=shown_order,
        draft=draft,
        draft_saved_at=draft_saved_at,
    )
    if kind == TaskKind.CONVERSE:  # its K replies start streaming as soon as the lease commits
        live_generation_start(assignment=assignment, now=now)
    return assignment


@transaction.atomic
def assignment_lease(
    *,
    labeler: User,
    kind: str | None = None,
    project_id: int | None = None,
    now: datetime | None = None,
) -> tuple[Assignment | None, bool]:
    """Hand the labeler their next task: (assignment, True) when new, (held lease, False), or (None, False).

    `kind` is "demonstrate", "rank" or None for either (ranking first). `project_id` limits the
    search to one project the labeler belongs to (NotFound otherwise). A labeler who already
    holds a live lease matching the request gets that same lease back.
    """
    if kind is not None and kind not in LEASE_KINDS:
        raise ValidationFailed(
            f"kind must be one of {', '.join(LEASE_KINDS)} or empty for the next rank or demonstrate task",
            code="invalid_kind",
        )
    now = now or timezone.now()
    if project_id is not None and not 0 < project_id <= MAX_ID:
        raise NotFound(f"no active project {project_id} that you belong to", code="project_not_found")
    projects = projects_for_labeler_list(user=labeler, project_id=project_id)
    if project_id is not None and not projects:
        if Project.objects.filter(pk=project_id, is_active=True).exists():
            # A member who may not label there (a reviewer) is told so: 403, not "no such project".
            labeler_task_access_check(user=labeler, role=project_role(user=labeler, project=project_id))
        raise NotFound(f"no active project {project_id} that you belong to", code="project_not_found")
    held = labeler_leases_locked(labeler_id=labeler.pk, now=now)
    # The labeler's own stale leases would otherwise keep them from the same prompt until the job runs.
    stale = [lease.assignment_id for lease in held if not lease.live]
    if stale:
        Assignment.objects.filter(pk__in=stale, status=AssignmentStatus.LEASED).update(
            status=AssignmentStatus.EXPIRED
        )
    project_ids = {project.pk for project in projects}
    for lease in held:
        if lease.live and lease.project_id in project_ids and (kind is None or lease.kind == kind):
            return assignment_get_for_labeler(assignment_id=lease.assignment_id, labeler=labeler), False
    for project in projects:
        standing = gold_standing(project=project, membership=membership_for(project=project, labeler=labeler))
        for wanted in [kind] if kind is not None else list(KINDS):
            # Attention checks come before the queue: a qualifying labeler is served gold only, a
            # paused or unqualified one nothing here; the rest get gold at the project's share.
            if standing.state != WORKING:
                leased = (
                    _lease_gold(project=project, labeler=labeler, now=now, qualification=True)
                    if standing.state == QUALIFYING and wanted == TaskKind.RANK
                    else None
                )
            elif wanted == TaskKind.RANK and gold_draw(project=project, labeler=labeler):
                # No gold prompt left for them: real work, so the draw never starves anyone.
                leased = _lease_gold(project=project, labeler=labeler, now=now, qualification=False)
                leased = leased or _lease_in_project(project=project, labeler=labeler, kind=wanted, now=now)
            else:
                leased = _lease_in_project(project=project, labeler=labeler, kind=wanted, now=now)
            if leased is not None:
                return leased, True
    return None, False


def _lease_gold(*, project: Project, labeler: User, now: datetime, qualification: bool) -> Assignment | None:
    """Lease a gold prompt as an ordinary rank task (same row, same shown order) and record it as a check.

    Gold prompts have no slot to lock: the labeler's own lock (held) serialises their requests.
    """
    choice = gold_choice(project=project, labeler=labeler, now=now)
    if choice is None:
        return None
    details = prompt_for_lease(prompt_id=choice.prompt_id, labeler_id=labeler.pk, kind=TaskKind.RANK, now=now)
    details = replace(details, candidate_ids=choice.candidate_ids)
    assignment = _assignment_create(
        project=project,
        prompt_id=choice.prompt_id,
        details=details,
        labeler=labeler,
        kind=TaskKind.RANK,
        now=now,
    )
    gold_check_open(assignment=assignment, choice=choice, qualification=qualification)
    return assignment


@transaction.atomic
def assignments_expire(*, now: datetime | None = None) -> int:
    """Mark every lease past its expiry as expired, returning its slot to the queue.

    Returns how many leases expired. Safe to run concurrently and repeatedly: the update only
    touches rows still leased, so a submission that lands first keeps its status.
    """
    now = now or timezone.now()
    return Assignment.objects.filter(status=AssignmentStatus.LEASED, expires_at__lte=now).update(
        status=AssignmentStatus.EXPIRED
    )


@transaction.atomic
def assignment_skip(*, assignment_id: int, labeler: User, reason: str) -> Assignment:
    """Give the task back with a reason; the prompt is never offered to this labeler for this kind again."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("say why you skip this task", code="reason_required")
    if len(reason) > MAX_SKIP_REASON_CHARS:
        raise ValidationFailed(
            f"the reason is longer than {MAX_SKIP_REASON_CHARS} characters", code="reason_too_long"
        )
    assignment = assignment_get_for_labeler(assignment_id=assignment_id, labeler=labeler, lock=True)
    if assignment.status == AssignmentStatus.SKIPPED:
        return assignment
    if assignment.status == AssignmentStatus.SUBMITTED:
        raise Conflict("this task was already submitted; it cannot be skipped", code="already_submitted")
    if (
        assignment.status == AssignmentStatus.EXPIRED
        and assignment_newer_leases(assignment=assignment).exists()
    ):
        raise Conflict("you hold a newer lease on this task; skip that one", code="newer_lease")
    assignment.status = AssignmentStatus.SKIPPED
    assignment.skip_reason = reason
    # When the task was closed, as for a submission: the labeler's history lists skips by it.
    assignment.submitted_at = timezone.now()
    assignment.save(update_fields=["status", "skip_reason", "submitted_at"])
    return assignment


@transaction.atomic
def assignment_draft_save(*, assignment_id: int, labeler: User, draft: Any) -> datetime:
    """Store the page's work in progress on the assignment; returns when it was saved."""
    if not isinstance(draft, dict):
        raise ValidationFailed("draft must be a JSON object", code="invalid_draft")
    if len(json.dumps(draft)) > MAX_DRAFT_CHARS:
        raise ValidationFailed(f"draft is larger than {MAX_DRAFT_CHARS} characters", code="draft_too_large")
    assignment = assignment_get_for_labeler(assignment_id=assignment_id, labeler=labeler)
    if assignment.status in (AssignmentStatus.SUBMITTED, AssignmentStatus.SKIPPED):
        raise Conflict(
            f"this task is {assignment.status}; there is no draft to keep",
            code=f"already_{assignment.status}",
        )
    saved_at = timezone.now()
    # A plain UPDATE, no row lock: autosave must never queue behind a submission.
    stored = Assignment.objects.filter(
        pk=assignment.pk, status__in=[AssignmentStatus.LEASED, AssignmentStatus.EXPIRED]
    ).update(draft=draft, draft_saved_at=saved_at)
    if not stored:  # submitted or skipped since it was read
        raise Conflict("this task was closed while the draft was saved", code="task_closed")
    return saved_at


def assignment_newer_leases(*, assignment: Assignment) -> QuerySet[Assignment]:
    """The labeler's other assignments of the same task that still count (leased, submitted, skipped)."""
    return (
        Assignment.objects.filter(
            labeler_id=assignment.labeler_id, prompt_id=assignment.prompt_id, kind=assignment.kind
        )
        .exclude(status=AssignmentStatus.EXPIRED)
        .exclude(pk=assignment.pk)
    )
