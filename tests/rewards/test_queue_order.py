"""Queue strategies: the order each stores is the order labelers are served in, on both databases."""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from annotation.models import Assignment, Membership, Project, Prompt
from annotation.models.assignments import AssignmentStatus, TaskKind
from annotation.services.assignments import assignment_lease
from annotation.services.prompts import prompt_create
from annotation.services.rankings import ranking_record
from rewards.models import CandidateScore, RewardModel, RewardModelStatus, RewardModelTrigger
from rewards.services.queue_order import queue_order_compute, queue_order_refresh
from tests.annotation.queue_helpers import candidates_add


def _active_model(project: Project) -> RewardModel:
    return RewardModel.objects.create(
        project=project,
        version=1,
        status=RewardModelStatus.SUCCEEDED,
        trigger=RewardModelTrigger.ADMIN,
        is_active=True,
        finished_at=timezone.now(),
    )


def _prompts_with_gaps(project: Project, model: RewardModel, gaps: list[float]) -> list[Prompt]:
    """One prompt per gap: K candidates scored gap apart (a small gap: the model is unsure)."""
    prompts = []
    for index, gap in enumerate(gaps):
        prompt = prompt_create(
            project=project, turns=[{"role": "user", "content": f"Strategy question {index}?"}]
        )
        for rank, candidate in enumerate(candidates_add(prompt, project.k)):
            CandidateScore.objects.create(candidate=candidate, reward_model=model, score=rank * gap)
        prompts.append(prompt)
    return prompts


def _lease_order(labeler, count: int) -> list[int]:
    served = []
    for _ in range(count):
        assignment, created = assignment_lease(labeler=labeler, kind=TaskKind.RANK)
        assert assignment is not None and created
        served.append(assignment.prompt_id)
        assignment.status = AssignmentStatus.SKIPPED
        assignment.skip_reason = "test: next"
        assignment.save(update_fields=["status", "skip_reason"])
    return served


@pytest.mark.django_db
def test_uncertainty_serves_the_prompts_the_model_is_least_sure_of_first(project, labeler):
    project.queue_strategy, project.exploration_share, project.rankings_per_prompt = "uncertainty", 0.0, 1
    project.save()
    model = _active_model(project)
    gaps = [3.0, 0.05, 1.0, 0.3, 6.0, 0.01]
    prompts = _prompts_with_gaps(project, model, gaps)
    unscored = prompt_create(project=project, turns=[{"role": "user", "content": "Not scored yet?"}])
    candidates_add(unscored, project.k)

    queue_order_refresh(project=project)

    by_gap = [prompt.pk for _, prompt in sorted(zip(gaps, prompts, strict=True), key=lambda pair: pair[0])]
    assert _lease_order(labeler, len(prompts) + 1) == [*by_gap, unscored.pk]


@pytest.mark.django_db
def test_a_version_with_uncertainty_heads_is_judged_by_their_disagreement_not_its_closeness(project, labeler):
    """Where the version has heads, a prompt whose members disagree comes first even when the mean
    model calls its order clearly, and a prompt every member calls a coin flip alike comes last."""
    project.queue_strategy, project.exploration_share, project.rankings_per_prompt = "uncertainty", 0.0, 1
    project.save()
    model = _active_model(project)
    # Per prompt, each candidate's three member scores: how far apart the members see the candidates.
    spreads = {"members disagree": 2.0, "members agree, far apart": 0.0, "a little": 0.5}
    prompts = {}
    for name, spread in spreads.items():
        prompt = prompt_create(project=project, turns=[{"role": "user", "content": f"{name}?"}])
        for rank, candidate in enumerate(candidates_add(prompt, project.k)):
            # The mean score is 3 * rank apart (closeness alone would call every prompt sure).
            members = [3.0 * rank + spread * ((rank * (m + 1)) % 3 - 1) for m in range(3)]
            CandidateScore.objects.create(
                candidate=candidate, reward_model=model, score=3.0 * rank, member_scores=members
            )
        prompts[name] = prompt
    # A prompt scored with no members (say, mid-way through scoring) is unscored for this order.
    half = prompt_create(project=project, turns=[{"role": "user", "content": "Members missing?"}])
    for candidate in candidates_add(half, project.k):
        CandidateScore.objects.create(candidate=candidate, reward_model=model, score=0.0)

    queue_order_refresh(project=project)

    expected = [
        prompts["members disagree"].pk,
        prompts["a little"].pk,
        prompts["members agree, far apart"].pk,
    ]
    assert _lease_order(labeler, 4) == [*expected, half.pk]


@pytest.mark.django_db
def test_disagreement_serves_the_most_disputed_prompts_first(project, labeler, other_labeler):
    project.queue_strategy, project.exploration_share, project.rankings_per_prompt = "disagreement", 0.0, 3
    project.save()
    third = get_user_model().objects.create(username="third", password="!")
    Membership.objects.create(project=project, user=third)
    agreed, disputed, fresh = (
        prompt_create(project=project, turns=[{"role": "user", "content": f"Disagreement {name}?"}])
        for name in ("agreed", "disputed", "fresh")
    )
    for prompt in (agreed, disputed, fresh):
        candidates_add(prompt, project.k)
    for prompt, reverse in ((agreed, False), (disputed, True)):
        ids = sorted(prompt.candidates.values_list("pk", flat=True))
        ranking_record(prompt=prompt, candidate_ids=ids, order=[[i] for i in ids], labeler=labeler)
        second = ids[::-1] if reverse else ids
        ranking_record(prompt=prompt, candidate_ids=ids, order=[[i] for i in second], labeler=other_labeler)

    queue_order_refresh(project=project)

    # Both partly done prompts come first (the breadth-first tier); within it, the disputed one.
    assert _lease_order(third, 3) == [disputed.pk, agreed.pk, fresh.pk]


@pytest.mark.django_db
def test_the_exploration_share_holds_in_every_prefix(project):
    project.queue_strategy, project.exploration_share = "uncertainty", 0.25
    project.save()
    model = _active_model(project)
    rng = random.Random(7)
    gaps = [rng.uniform(0.0, 5.0) for _ in range(120)]
    prompts = _prompts_with_gaps(project, model, gaps)
    strategy = [prompt.pk for _, prompt in sorted(zip(gaps, prompts, strict=True), key=lambda pair: pair[0])]

    mixed = queue_order_compute(project=project, seed=3)

    assert sorted(mixed) == sorted(strategy)  # every prompt once
    # A pick is exploration when it is not the strategy's next prompt among those still unplaced.
    unplaced, explored = list(strategy), []
    for prompt_id in mixed:
        explored.append(prompt_id != unplaced[0])
        unplaced.remove(prompt_id)
    for prefix in (20, 40, 80, 120):
        # floor(share * n + offset) slots, give or take one; a slot that draws the strategy's own
        # next prompt (chance 1 in the prompts left) counts as none, hence the slack below.
        assert 0.25 * prefix - 3 <= sum(explored[:prefix]) <= 0.25 * prefix + 1, prefix


@pytest.mark.django_db
def test_breadth_first_clears_an_old_order(project, labeler):
    project.queue_strategy, project.exploration_share, project.rankings_per_prompt = "uncertainty", 0.0, 1
    project.save()
    model = _active_model(project)
    prompts = _prompts_with_gaps(project, model, [5.0, 0.1])
    queue_order_refresh(project=project)
    assert Prompt.objects.filter(project=project).exclude(queue_rank=0).count() == 2
    project.queue_strategy = "breadth_first"
    project.save()
    queue_order_refresh(project=project)
    assert not Prompt.objects.filter(project=project).exclude(queue_rank=0).exists()
    assert _lease_order(labeler, 2) == [prompts[0].pk, prompts[1].pk]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_leases_stay_exclusive_under_the_uncertainty_order():
    project = Project.objects.create(
        name="Concurrent uncertainty",
        k=4,
        rankings_per_prompt=2,
        queue_strategy="uncertainty",
        exploration_share=0.2,
    )
    labelers = get_user_model().objects.bulk_create(
        get_user_model()(username=f"u-labeler{i}", password="!") for i in range(16)
    )
    Membership.objects.bulk_create(Membership(project=project, user=user) for user in labelers)
    model = _active_model(project)
    _prompts_with_gaps(project, model, [0.1 * i for i in range(10)])
    queue_order_refresh(project=project, seed=1)
    barrier = threading.Barrier(len(labelers))
    granted: list[int] = []
    errors: list[BaseException] = []

    def work(user) -> None:
        try:
            barrier.wait(timeout=30)
            assignment, _ = assignment_lease(labeler=user, kind=TaskKind.RANK)
            if assignment is not None:
                granted.append(assignment.pk)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(user,)) for user in labelers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert len(granted) == len(set(granted)) == 16
    per_prompt = Counter(
        Assignment.objects.filter(status=AssignmentStatus.LEASED).values_list("prompt_id", flat=True)
    )
    assert max(per_prompt.values()) <= 2
