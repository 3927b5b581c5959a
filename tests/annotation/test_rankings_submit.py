"""ranking_submit: only the candidates shown, late submissions through the API, nothing half-written."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

from annotation.models import Assignment, Comparison, Ranking
from annotation.models.assignments import AssignmentStatus, TaskKind
from annotation.services.assignments import assignment_lease, assignments_expire
from annotation.services.rankings import ranking_submit
from config.errors import ValidationFailed
from tests.annotation.queue_helpers import candidates_add

pytestmark = pytest.mark.django_db


def test_only_the_k_shown_candidates_may_be_ranked(project, labeler, make_prompts):
    (prompt,) = make_prompts(project, 1)
    candidates = candidates_add(prompt, 7)
    assignment, _ = assignment_lease(labeler=labeler, kind=TaskKind.RANK)
    assert len(assignment.shown_order) == 4
    hidden = next(c.pk for c in candidates if c.pk not in assignment.shown_order)
    with pytest.raises(ValidationFailed) as error:
        ranking_submit(
            assignment_id=assignment.pk,
            labeler=labeler,
            order=[[hidden], *[[pk] for pk in assignment.shown_order]],
            idempotency_key="k",
        )
    assert error.value.code == "unknown_candidate" and error.value.details == {"unknown": [hidden]}
    assert not Ranking.objects.exists() and not Comparison.objects.exists()
    assert Assignment.objects.get(pk=assignment.pk).status == AssignmentStatus.LEASED


def test_shown_order_is_reproducible_and_differs_between_labelers(
    project, labeler, other_labeler, make_prompts
):
    (prompt,) = make_prompts(project, 1)
    candidates_add(prompt, 9)
    first, _ = assignment_lease(labeler=labeler, kind=TaskKind.RANK)
    second, _ = assignment_lease(labeler=other_labeler, kind=TaskKind.RANK)
    assert first.prompt_id == second.prompt_id
    # Seeded by each assignment's own fields: two labelers see different selections or orders.
    assert first.shown_order != second.shown_order
    from annotation.services.assignments import _shown_order

    candidate_ids = sorted(prompt.candidates.values_list("pk", flat=True))
    for assignment in (first, second):
        stored = Assignment.objects.get(pk=assignment.pk)
        again = _shown_order(
            candidate_ids=candidate_ids,
            prompt_id=stored.prompt_id,
            labeler_id=stored.labeler_id,
            leased_at=stored.leased_at,
            k=project.k,
        )
        assert again == stored.shown_order


def test_late_submission_through_the_api(project, labeler, other_labeler, make_prompts):
    project.rankings_per_prompt = 1
    project.save(update_fields=["rankings_per_prompt"])
    (prompt,) = make_prompts(project, 1)
    candidates_add(prompt, 4)
    client = APIClient()
    client.force_authenticate(labeler)
    task = client.post("/api/labeler/assignments/lease/", {"kind": "rank"}, format="json").json()
    Assignment.objects.filter(pk=task["id"]).update(expires_at=timezone.now() - timedelta(minutes=1))
    assignments_expire()
    taken, _ = assignment_lease(labeler=other_labeler, kind=TaskKind.RANK)
    assert taken.prompt_id == prompt.pk
    order = [[c["id"]] for c in task["candidates"]]
    response = client.post(
        f"/api/labeler/assignments/{task['id']}/ranking/",
        {"order": order, "idempotency_key": "late"},
        format="json",
    )
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "lease_expired" and "not stored" in error["message"]
    assert not Ranking.objects.exists()


def test_a_second_ranking_of_the_same_prompt_is_a_conflict(project, labeler, make_prompts):
    from annotation.services.rankings import ranking_record
    from config.errors import Conflict

    (prompt,) = make_prompts(project, 1)
    ids = [candidate.pk for candidate in candidates_add(prompt, 2)]
    ranking_record(prompt=prompt, candidate_ids=ids, order=[ids], labeler=labeler)
    with (
        pytest.raises(Conflict) as raised,
        transaction.atomic(),
    ):  # no savepoint of its own: see ranking_record
        ranking_record(prompt=prompt, candidate_ids=ids, order=[ids], labeler=labeler)
    assert raised.value.code == "already_ranked" and raised.value.status_code == 409
    assert Ranking.objects.count() == 1


def test_ratings_are_optional_unless_the_project_requires_them(project, labeler, other_labeler, make_prompts):
    from annotation.services.rankings import ItemInput

    for prompt in make_prompts(project, 2):
        candidates_add(prompt, project.k)
    assignment, _ = assignment_lease(labeler=labeler, kind=TaskKind.RANK)
    order = [[c] for c in assignment.shown_order]
    ranking, created = ranking_submit(
        assignment_id=assignment.pk, labeler=labeler, order=order, idempotency_key="a"
    )
    assert created and not ranking.items.exclude(rating=None).exists()

    project.ratings_required = True
    project.save(update_fields=["ratings_required"])
    assignment, _ = assignment_lease(labeler=other_labeler, kind=TaskKind.RANK)
    order = [[c] for c in assignment.shown_order]
    partly = {c: ItemInput(rating=5) for c in assignment.shown_order[:-1]}
    with pytest.raises(ValidationFailed) as raised:
        ranking_submit(
            assignment_id=assignment.pk, labeler=other_labeler, order=order, idempotency_key="b", items=partly
        )
    assert raised.value.code == "rating_required"
    assert raised.value.details == {"unrated": [assignment.shown_order[-1]]}
    assert not Ranking.objects.filter(labeler=other_labeler).exists()
    every = {c: ItemInput(rating=4) for c in assignment.shown_order}
    _, created = ranking_submit(
        assignment_id=assignment.pk, labeler=other_labeler, order=order, idempotency_key="b", items=every
    )
    assert created
