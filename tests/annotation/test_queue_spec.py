"""The queue has one specification (`prompts_needing_work`); the lease's fast paths are checked equal to it.

Queue states are generated from a seed: prompts of several priorities, candidates short of K or
written from the labeler's own demonstration, other labelers' submitted work, live and timed-out
leases, the labeler's own skips, expired leases and finished work, imported rankings, and capacities
changed after the work was done. For every state the fast paths (annotation/sql.py), asked again
and again with what they gave so far left out, must name exactly the specification's prompts in the
specification's order, and a real lease must hand out the specification's first prompt. With done
counts knocked out of step (work deleted by hand), the order may differ but a lease must still
hand out only a prompt the specification lists, and one whenever it lists any.

Runs on the database the suite runs on: SQLite by default, PostgreSQL under DATABASE_URL (CI).
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone

from annotation.models import Assignment, Candidate, Demonstration, Membership, Project, Prompt
from annotation.models.assignments import AssignmentStatus, TaskKind
from annotation.models.projects import Role
from annotation.models.prompts import CandidateSource
from annotation.models.quality import QualityAction, QualityState
from annotation.models.rankings import RankingSource
from annotation.selectors.queue import prompts_needing_work, slot_capacity
from annotation.services.assignments import assignment_lease
from annotation.services.prompts import prompt_create
from annotation.services.quality import demonstration_quality_set, ranking_quality_set
from annotation.services.rankings import ranking_record
from annotation.services.submissions import prompt_done_counts_add
from annotation.sql.queue import prompt_next_locked
from tests.annotation.queue_helpers import candidates_add

pytestmark = pytest.mark.django_db(transaction=False)

STATES = 40  # per kind; each state is built and rolled back inside one test
KINDS = (TaskKind.RANK, TaskKind.DEMONSTRATE)


class _Rollback(Exception):
    """Raised to roll a generated state back once it has been checked."""


@dataclass
class World:
    project: Project
    labeler: object  # the labeler whose queue is checked
    others: list
    now: object
    rng: random.Random


def _world(rng: random.Random, index: int) -> World:
    users = get_user_model().objects
    labeler = users.create_user(f"spec-{index}-me")
    others = [users.create_user(f"spec-{index}-other-{n}") for n in range(4)]
    capacity = rng.choice([1, 2, 3])
    project = Project.objects.create(
        name=f"Spec {index}",
        k=rng.choice([2, 3, 4]),
        rankings_per_prompt=capacity,
        demonstrations_per_prompt=rng.choice([1, 2, 3]),
        lease_seconds=600,
    )
    for user in [labeler, *others]:
        Membership.objects.create(project=project, user=user, role=Role.LABELER)
    return World(project=project, labeler=labeler, others=others, now=timezone.now(), rng=rng)


def _assignment(world: World, *, prompt: Prompt, user, kind: str, status: str, expired: bool = False):
    leased_at = world.now - timedelta(seconds=900 if expired else 30)
    return Assignment.objects.create(
        project=world.project,
        prompt=prompt,
        labeler=user,
        kind=kind,
        status=status,
        leased_at=leased_at,
        expires_at=leased_at + timedelta(seconds=world.project.lease_seconds),
        submitted_at=world.now if status == AssignmentStatus.SUBMITTED else None,
        shown_order=[],
    )


def _submit(world: World, *, prompt: Prompt, user, kind: str) -> None:
    """Submitted work as the services leave it: the row, its done count, the submitted assignment."""
    assignment = _assignment(world, prompt=prompt, user=user, kind=kind, status=AssignmentStatus.SUBMITTED)
    if kind == TaskKind.RANK:
        ids = list(prompt.candidates.order_by("id").values_list("id", flat=True))[: world.project.k]
        ranking = ranking_record(
            prompt=prompt, candidate_ids=ids, order=[[i] for i in ids], labeler=user, assignment=assignment
        )
        if world.rng.random() < 0.15:  # excluded by triage or rejected in review: its slot is free again
            ranking_quality_set(
                ranking_id=ranking.pk,
                state=world.rng.choice([QualityState.EXCLUDED, QualityState.REJECTED]),
                actor=None,
                action=QualityAction.EXCLUDE,
                reason="spec",
            )
    else:
        demonstration = Demonstration.objects.create(
            prompt=prompt, labeler=user, assignment=assignment, text="A careful answer."
        )
        prompt_done_counts_add(prompt_id=prompt.pk, kind=kind)
        if world.rng.random() < 0.15:
            demonstration_quality_set(
                demonstration_id=demonstration.pk,
                state=QualityState.REJECTED,
                actor=None,
                action=QualityAction.REVIEW_REJECT,
                reason="spec",
            )


def _populate(world: World, rng: random.Random, *, kind: str) -> None:
    project, me = world.project, world.labeler
    prompts = [
        prompt_create(project=project, turns=[{"role": "user", "content": f"Spec prompt {n}?"}])
        for n in range(rng.randint(4, 11))
    ]
    for prompt in prompts:
        prompt.priority = rng.choice([-1, 0, 0, 0, 1, 2, 5])
        # A queue strategy's order within a priority (0 under breadth-first), as the job writes it.
        prompt.queue_rank = rng.choice([0, 0, 0, 3, 7, 12])
        # Triage asked some prompts for rankings beyond the overlap.
        prompt.extra_rankings = rng.choice([0, 0, 0, 0, 1, 2])
        prompt.save(update_fields=["priority", "queue_rank", "extra_rankings"])
        candidates_add(prompt, rng.choice([0, project.k - 1, project.k, project.k, project.k + 1]))
        own_demonstration = rng.random() < 0.1
        if own_demonstration:  # the labeler's own demonstration became a candidate: never theirs to rank
            demonstration = Demonstration.objects.create(prompt=prompt, labeler=me, text="My own answer.")
            prompt_done_counts_add(prompt_id=prompt.pk, kind=TaskKind.DEMONSTRATE)
            Candidate.objects.create(
                prompt=prompt,
                text=f"My own answer to {prompt.pk}.",
                content_hash=f"own-{prompt.pk}",
                source=CandidateSource.DEMONSTRATION,
                demonstration=demonstration,
            )
        ready = prompt.candidates.count() >= project.k
        capacity = slot_capacity(project=project, kind=kind)
        takers = rng.sample(world.others, rng.randint(0, min(len(world.others), capacity)))
        for user in takers:
            event = rng.choice(["submitted", "submitted", "live", "timed_out", "expired", "skipped"])
            if event == "submitted" and (ready or kind == TaskKind.DEMONSTRATE):
                _submit(world, prompt=prompt, user=user, kind=kind)
            elif event == "live":
                _assignment(world, prompt=prompt, user=user, kind=kind, status=AssignmentStatus.LEASED)
            elif event == "timed_out":  # still marked leased, past expiry: the slot is free again
                _assignment(
                    world, prompt=prompt, user=user, kind=kind, status=AssignmentStatus.LEASED, expired=True
                )
            elif event == "expired":
                _assignment(
                    world, prompt=prompt, user=user, kind=kind, status=AssignmentStatus.EXPIRED, expired=True
                )
            elif event == "skipped":
                _assignment(world, prompt=prompt, user=user, kind=kind, status=AssignmentStatus.SKIPPED)
        mine = rng.random()
        if mine < 0.08:
            _assignment(world, prompt=prompt, user=me, kind=kind, status=AssignmentStatus.SKIPPED)
        elif mine < 0.16:
            _assignment(
                world, prompt=prompt, user=me, kind=kind, status=AssignmentStatus.EXPIRED, expired=True
            )
        elif mine < 0.22 and (ready if kind == TaskKind.RANK else not own_demonstration):
            _submit(world, prompt=prompt, user=me, kind=kind)
        if kind == TaskKind.RANK and ready and rng.random() < 0.1:  # imported: no slot of a labeler's
            ids = list(prompt.candidates.order_by("id").values_list("id", flat=True))[: project.k]
            ranking_record(
                prompt=prompt, candidate_ids=ids, order=[ids], labeler=None, source=RankingSource.IMPORT
            )
    if rng.random() < 0.25:  # the admin changed the overlap after the work was done
        field = "rankings_per_prompt" if kind == TaskKind.RANK else "demonstrations_per_prompt"
        setattr(project, field, rng.choice([1, 2, 3]))
        project.save(update_fields=[field])


def _fast_order(world: World, *, kind: str) -> list[int]:
    """Every prompt the fast paths serve, in their order, by asking again with the ones served left out."""
    capacity = slot_capacity(project=world.project, kind=kind)
    served: list[int] = []
    while len(served) < 100:
        prompt_id = prompt_next_locked(
            project=world.project,
            labeler_id=world.labeler.pk,
            kind=kind,
            capacity=capacity,
            now=world.now,
            rejected=served,
        )
        if prompt_id is None:
            return served
        served.append(prompt_id)
    raise AssertionError("the fast paths never ran dry")


def _spec(world: World, *, kind: str) -> list[int]:
    return list(
        prompts_needing_work(
            project=world.project, labeler=world.labeler, kind=kind, now=world.now
        ).values_list("pk", flat=True)
    )


def _check_states(*, kind: str, seed: int, stale_counts: bool) -> int:
    """Build, check and roll back STATES generated states; returns how many had work to serve."""
    rng = random.Random(seed)
    with_work = 0
    for index in range(STATES):
        try:
            with transaction.atomic():
                world = _world(rng, index)
                _populate(world, rng, kind=kind)
                if stale_counts:
                    for prompt in Prompt.objects.filter(project=world.project):
                        if rng.random() < 0.4:
                            prompt.rankings_done = rng.randint(0, 3)
                            prompt.demonstrations_done = rng.randint(0, 3)
                            prompt.save(update_fields=["rankings_done", "demonstrations_done"])
                expected = _spec(world, kind=kind)
                with_work += bool(expected)
                context = f"state {index} (seed {seed}, {kind}): spec {expected}"
                if not stale_counts:
                    assert _fast_order(world, kind=kind) == expected, context
                leased, created = assignment_lease(
                    labeler=world.labeler, kind=kind, project_id=world.project.pk, now=world.now
                )
                if not expected:
                    assert leased is None, context
                elif stale_counts:
                    assert created and leased.prompt_id in expected, context
                else:
                    assert created and leased.prompt_id == expected[0], context
                raise _Rollback
        except _Rollback:
            pass
    return with_work


@pytest.mark.parametrize("kind", KINDS)
def test_fast_paths_serve_exactly_the_specification_in_its_order(kind):
    with_work = _check_states(kind=kind, seed=20261202, stale_counts=False)
    assert with_work >= STATES // 2, "the generator made too few states with work to tell orders apart"


@pytest.mark.parametrize("kind", KINDS)
def test_with_done_counts_out_of_step_a_lease_still_takes_only_what_the_specification_allows(kind):
    with_work = _check_states(kind=kind, seed=7, stale_counts=True)
    assert with_work >= STATES // 2


def test_partly_done_prompts_come_first_then_priority_then_age(project, labeler, other_labeler, make_prompts):
    """The order the README states, on a state small enough to read."""
    low_partly, high_untouched, high_partly, low_untouched = make_prompts(project, 4)
    for prompt, priority in ((low_partly, 0), (high_untouched, 9), (high_partly, 3), (low_untouched, 0)):
        candidates_add(prompt, project.k)
        prompt.priority = priority
        prompt.save(update_fields=["priority"])
    now = timezone.now()
    world = World(project=project, labeler=labeler, others=[other_labeler], now=now, rng=random.Random(0))
    _submit(world, prompt=low_partly, user=other_labeler, kind=TaskKind.RANK)
    _assignment(
        world, prompt=high_partly, user=other_labeler, kind=TaskKind.RANK, status=AssignmentStatus.LEASED
    )
    expected = [high_partly.pk, low_partly.pk, high_untouched.pk, low_untouched.pk]
    assert _spec(world, kind=TaskKind.RANK) == expected
    assert _fast_order(world, kind=TaskKind.RANK) == expected


def test_the_same_checks_pass_on_the_embedded_sqlite_when_this_run_is_on_postgresql(tmp_path):
    """CI runs the suite on PostgreSQL; the embedded default must hold too, so run this file on SQLite."""
    if connection.vendor == "sqlite":
        pytest.skip("this run is on SQLite already: the tests above are the SQLite run")
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env["VAR_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert re.search(r"\b5 passed, 1 skipped\b", result.stdout), result.stdout[-2000:]
