"""The task queue through its services: which prompt is served, leases, expiry, skip, drafts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from annotation.models import Assignment, Demonstration, Membership, Project, Prompt
from annotation.models.assignments import AssignmentStatus, TaskKind
from annotation.selectors.queue import labeler_counts, work_available
from annotation.services.assignments import (
    assignment_draft_save,
    assignment_lease,
    assignment_skip,
    assignments_expire,
)
from annotation.services.demonstrations import demonstration_submit
from annotation.services.rankings import ranking_submit
from config.errors import Conflict, NotFound, ValidationFailed
from tests.annotation.queue_helpers import candidates_add

pytestmark = pytest.mark.django_db


def _user(name: str):
    return get_user_model().objects.create_user(name, f"{name}@example.com", "pw-123456789")


def test_rank_lease_needs_k_candidates_and_shuffles_per_assignment(project, labeler, make_prompts):
    not_ready, ready = make_prompts(project, 2)
    candidates_add(not_ready, 3)
    candidates = candidates_add(ready, 6)
    assignment, created = assignment_lease(labeler=labeler, kind=TaskKind.RANK)
    assert created and assignment.prompt == ready
    assert len(assignment.shown_order) == project.k == 4
    assert set(assignment.shown_order) <= {c.pk for c in candidates}
    again, created_again = assignment_lease(labeler=labeler, kind=TaskKind.RANK)
    assert (again.pk, created_again) == (assignment.pk, False)
    assert again.shown_order == assignment.shown_order


def test_partly_done_prompts_first_then_priority(project, labeler, other_labeler, make_prompts):
    low, high = make_prompts(project, 2)
    high.priority = 5
    high.save(update_fields=["priority"])
    for prompt in (low, high):
        candidates_add(prompt, 4)
    third = _user("carol")
    Membership.objects.create(project=project, user=third)
    first, _ = assignment_lease(labeler=labeler, kind=TaskKind.RANK)
    assert first.prompt == high
    # `low` is untouched and `high` has one of its two slots taken: finish `high` first.
    second, _ = assignment_lease(labeler=other_labeler, kind=TaskKind.RANK)
    assert second.prompt == high
    third_assignment, _ = assignment_lease(labeler=third, kind=TaskKind.RANK)
    assert third_assignment.prompt == low


def test_slots_are_capped_and_expired_leases_return(project, labeler, other_labeler, make_prompts):
    project.rankings_per_prompt = 1
    project.save(update_fields=["rankings_per_prompt"])
    (prompt,) = make_prompts(project, 1)
    candidates_add(prompt, 4)
    first, _ = assignment_lease(labeler=labeler, kind=TaskKind.RANK)
    assert assignment_lease(labeler=other_labeler, kind=TaskKind.RANK) == (None, False)
    later = timezone.now() + timedelta(seconds=project.lease_seconds + 1)
    assert assignments_expire(now=later) == 1
    second, created = assignment_lease(labeler=other_labeler, kind=TaskKind.RANK, now=later)
    assert created and second.prompt == prompt
    first.refresh_from_db()
    assert first.status == AssignmentStatus.EXPIRED


def test_either_kind_and_counts(project, labeler, make_prompts):
    (prompt,) = make_prompts(project, 1)
    [row] = work_available(labeler=labeler)
    assert (row["project"], row["demonstrate"], row["rank"]) == (project, 1, 0)
    assignment, _ = assignment_lease(labeler=labeler)
    assert assignment.kind == TaskKind.DEMONSTRATE
    demonstration_submit(
        assignment_id=assignment.pk, labeler=labeler, text="A careful, complete answer.", idempotency_key="k1"
    )
    assert labeler_counts(labeler=labeler) == {
        "demonstrations_today": 1,
        "demonstrations_total": 1,
        "rankings_today": 0,
        "rankings_total": 0,
    }
    assert work_available(labeler=labeler)[0]["demonstrate"] == 0


def test_membership_decides_projects(project, labeler, make_prompts, admin_user):
    hidden = Project.objects.create(name="Hidden")
    make_prompts(hidden, 1)
    assert [row["project"] for row in work_available(labeler=labeler)] == [project]
    with pytest.raises(NotFound):
        assignment_lease(labeler=labeler, project_id=hidden.pk)
    # Staff see every active project.
    assert {row["project"] for row in work_available(labeler=admin_user)} == {project, hidden}
    hidden.is_active = False
    hidden.save(update_fields=["is_active"])
    assert [row["project"] for row in work_available(labeler=admin_user)] == [project]


def test_skip_is_final_for_that_kind(project, labeler, make_prompts):
    (prompt,) = make_prompts(project, 1)
    candidates_add(prompt, 4)
    assignment, _ = assignment_lease(labeler=labeler, kind=TaskKind.DEMONSTRATE)
    with pytest.raises(ValidationFailed) as error:
        assignment_skip(assignment_id=assignment.pk, labeler=labeler, reason="   ")
    assert error.value.code == "reason_required"
    skipped = assignment_skip(assignment_id=assignment.pk, labeler=labeler, reason="unclear")
    assert (skipped.status, skipped.skip_reason) == (AssignmentStatus.SKIPPED, "unclear")
    assert assignment_lease(labeler=labeler, kind=TaskKind.DEMONSTRATE) == (None, False)
    # Skipping the demonstration does not hide the ranking task of the same prompt.
    rank, created = assignment_lease(labeler=labeler, kind=TaskKind.RANK)
    assert created and rank.prompt == prompt


def test_no_ranking_of_a_prompt_where_own_demonstration_is_a_candidate(project, labeler, make_prompts):
    (prompt,) = make_prompts(project, 1)
    candidates = candidates_add(prompt, 4)
    demonstration = Demonstration.objects.create(prompt=prompt, labeler=labeler, text="my own answer here")
    candidates[0].demonstration = demonstration
    candidates[0].save(update_fields=["demonstration"])
    assert assignment_lease(labeler=labeler, kind=TaskKind.RANK) == (None, False)


def test_draft_saved_and_carried_to_a_new_lease(project, labeler, make_prompts):
    make_prompts(project, 1)
    assignment, _ = assignment_lease(labeler=labeler, kind=TaskKind.DEMONSTRATE)
    assignment_draft_save(assignment_id=assignment.pk, labeler=labeler, draft={"text": "half an answer"})
    with pytest.raises(ValidationFailed):
        assignment_draft_save(assignment_id=assignment.pk, labeler=labeler, draft=["not", "an", "object"])
    later = timezone.now() + timedelta(seconds=project.lease_seconds + 5)
    again, created = assignment_lease(labeler=labeler, kind=TaskKind.DEMONSTRATE, now=later)
    assert created and again.pk != assignment.pk and again.prompt_id == assignment.prompt_id
    assert again.draft == {"text": "half an answer"}


def test_late_submission_kept_when_slot_free_refused_when_taken(
    project, labeler, other_labeler, make_prompts
):
    project.rankings_per_prompt = 1
    project.save(update_fields=["rankings_per_prompt"])
    first_prompt, second_prompt = make_prompts(project, 2)
    for prompt in (first_prompt, second_prompt):
        candidates_add(prompt, 4)
    kept, _ = assignment_lease(labeler=labeler, kind=TaskKind.RANK)
    Assignment.objects.filter(pk=kept.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assignments_expire()
    ranking, created = ranking_submit(
        assignment_id=kept.pk, labeler=labeler, order=[[c] for c in kept.shown_order], idempotency_key="late"
    )
    assert created and ranking.comparisons.count() == 6
    kept.refresh_from_db()
    assert kept.status == AssignmentStatus.SUBMITTED

    lost, _ = assignment_lease(labeler=labeler, kind=TaskKind.RANK)
    Assignment.objects.filter(pk=lost.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assignments_expire()
    taken, _ = assignment_lease(labeler=other_labeler, kind=TaskKind.RANK)
    assert taken.prompt_id == lost.prompt_id
    with pytest.raises(Conflict) as error:
        ranking_submit(
            assignment_id=lost.pk, labeler=labeler, order=[lost.shown_order], idempotency_key="too-late"
        )
    assert error.value.code == "lease_expired"
    assert not lost.prompt.rankings.exists()


def test_rankings_without_assignments_count_and_the_exact_path_finds_them(
    project, labeler, other_labeler, make_prompts
):
    """Work written outside the queue (no assignment) still fills slots; the fallback query serves the rest."""
    from annotation.services.rankings import ranking_record

    (prompt,) = make_prompts(project, 1)
    ids = [c.pk for c in candidates_add(prompt, 4)]
    third = _user("carol")
    Membership.objects.create(project=project, user=third)
    # One of two rank slots taken by a ranking recorded directly (as a script or an import would).
    ranking_record(prompt=prompt, candidate_ids=ids, order=[ids], labeler=third)
    # Counts out of step with the rows (work written by hand): neither fast path sees the prompt.
    Prompt.objects.filter(pk=prompt.pk).update(rankings_done=5)
    first, created = assignment_lease(labeler=labeler, kind=TaskKind.RANK)
    assert created and first.prompt == prompt
    # Now one direct ranking plus one live lease: full.
    assert assignment_lease(labeler=other_labeler, kind=TaskKind.RANK) == (None, False)
    assert work_available(labeler=other_labeler)[0]["rank"] == 0


def test_fast_paths_agree_with_the_exact_query(project, labeler, other_labeler, make_prompts):
    """Every prompt the exact selector lists is leased, one by one, and nothing else."""
    from annotation.selectors.queue import prompts_needing_work

    prompts = make_prompts(project, 6)
    for index, prompt in enumerate(prompts):
        candidates_add(prompt, 4 if index != 2 else 3)  # prompt 2 is not ready
        prompt.priority = index % 3
        prompt.save(update_fields=["priority"])
    assignment, _ = assignment_lease(labeler=other_labeler, kind=TaskKind.RANK)
    assignment_skip(assignment_id=assignment.pk, labeler=other_labeler, reason="not for me")
    expected = list(prompts_needing_work(project=project, labeler=labeler, kind=TaskKind.RANK))
    leased = []
    while True:
        assignment, created = assignment_lease(labeler=labeler, kind=TaskKind.RANK)
        if assignment is None:
            break
        leased.append(assignment.prompt)
        ranking_submit(
            assignment_id=assignment.pk,
            labeler=labeler,
            order=[assignment.shown_order],
            idempotency_key=f"k{assignment.pk}",
        )
    assert leased == expected and len(leased) == 5
