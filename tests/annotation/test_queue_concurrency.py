"""Leasing under real concurrency on PostgreSQL: SELECT ... FOR UPDATE SKIP LOCKED hands out each slot once."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from annotation.models import Assignment, Membership, Project
from annotation.models.assignments import AssignmentStatus, TaskKind
from annotation.services.assignments import assignment_lease
from annotation.services.prompts import prompt_create
from tests.annotation.queue_helpers import candidates_add

THREADS = 20


def _lease_all_at_once(labelers: list, kind: str) -> list:
    barrier = threading.Barrier(len(labelers))
    results: list = [None] * len(labelers)
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            assignment, created = assignment_lease(labeler=labelers[index], kind=kind)
            results[index] = (assignment.pk if assignment else None, created)
        except BaseException as error:  # surfaced in the main thread below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(labelers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("kind", "prompts", "per_prompt", "slots"),
    [
        (TaskKind.RANK, 10, 2, 20),  # exactly as many slots as labelers: every one must be handed out
        (TaskKind.RANK, 4, 3, 12),  # fewer slots than labelers: each handed out once, the rest get none
        (TaskKind.DEMONSTRATE, 20, 1, 20),
    ],
)
def test_concurrent_leases_hand_out_each_slot_exactly_once(kind, prompts, per_prompt, slots):
    project = Project.objects.create(
        name=f"Concurrency {kind}", k=4, rankings_per_prompt=per_prompt, demonstrations_per_prompt=per_prompt
    )
    User = get_user_model()
    # No password: hashing 20 of them would dominate the test's run time.
    labelers = User.objects.bulk_create(User(username=f"labeler{i}", password="!") for i in range(THREADS))
    Membership.objects.bulk_create(Membership(project=project, user=user) for user in labelers)
    for index in range(prompts):
        prompt = prompt_create(project=project, turns=[{"role": "user", "content": f"Question {index}?"}])
        candidates_add(prompt, 4)

    results = _lease_all_at_once(labelers, kind)

    granted = [pk for pk, created in results if pk is not None]
    assert all(created for pk, created in results if pk is not None)
    assert len(granted) == len(set(granted)) == min(slots, THREADS), results
    leases = Assignment.objects.filter(status=AssignmentStatus.LEASED, kind=kind)
    assert sorted(leases.values_list("pk", flat=True)) == sorted(granted)
    per_prompt_counts = Counter(leases.values_list("prompt_id", flat=True))
    assert len(per_prompt_counts) == min(prompts, THREADS)
    assert all(count == per_prompt for count in per_prompt_counts.values()), per_prompt_counts
    assert len(set(leases.values_list("labeler_id", flat=True))) == len(granted)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_simultaneous_retries_store_one_ranking():
    """Two copies of the same POST racing: one stores (201), the other replays it (200)."""
    from rest_framework.test import APIClient

    project = Project.objects.create(name="Retry race", k=4, rankings_per_prompt=1)
    labeler = get_user_model().objects.create(username="racer", password="!")
    Membership.objects.create(project=project, user=labeler)
    prompt = prompt_create(project=project, turns=[{"role": "user", "content": "Race?"}])
    candidates_add(prompt, 4)
    assignment, _ = assignment_lease(labeler=labeler, kind=TaskKind.RANK)
    payload = {"order": [[pk] for pk in assignment.shown_order], "idempotency_key": "same-key"}
    barrier = threading.Barrier(2)
    responses: list = []

    def post() -> None:
        try:
            client = APIClient()
            client.force_authenticate(labeler)
            barrier.wait(timeout=30)
            responses.append(
                client.post(f"/api/labeler/assignments/{assignment.pk}/ranking/", payload, format="json")
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(r.status_code for r in responses) == [200, 201]
    assert responses[0].json() == responses[1].json()
    from annotation.models import Comparison, Ranking

    assert Ranking.objects.count() == 1 and Comparison.objects.count() == 6
