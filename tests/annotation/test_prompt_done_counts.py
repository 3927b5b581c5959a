"""The done counts on prompts: kept by the services that store work, repaired by the periodic job.

They steer which prompts the queue looks at first (partial indexes on untouched prompts); the
slot count a lease trusts is re-counted from the rows, so a wrong count may only reorder work.
"""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps

from annotation.models import Prompt, Ranking
from annotation.models.assignments import TaskKind
from annotation.models.rankings import RankingSource
from annotation.services.assignments import assignment_lease
from annotation.services.demonstrations import demonstration_submit
from annotation.services.rankings import ranking_record, ranking_submit
from annotation.services.submissions import prompt_done_counts_reconcile
from annotation.tasks import prompt_done_counts_reconcile as reconcile_task
from config.celery import app
from tests.annotation.queue_helpers import candidates_add

pytestmark = pytest.mark.django_db


def _counts(prompt: Prompt) -> tuple[int, int]:
    prompt.refresh_from_db()
    return prompt.demonstrations_done, prompt.rankings_done


def _rank(labeler, *, key: str) -> Ranking:
    assignment, _ = assignment_lease(labeler=labeler, kind=TaskKind.RANK)
    order = [[candidate_id] for candidate_id in assignment.shown_order]
    ranking, _ = ranking_submit(
        assignment_id=assignment.pk, labeler=labeler, order=order, idempotency_key=key
    )
    return ranking


def test_submitted_work_is_counted_and_imported_rankings_are_not(
    project, labeler, other_labeler, make_prompts
):
    (prompt,) = make_prompts(project, 1)
    candidates = candidates_add(prompt, 4)
    demonstrate, _ = assignment_lease(labeler=labeler, kind=TaskKind.DEMONSTRATE)
    demonstration_submit(
        assignment_id=demonstrate.pk,
        labeler=labeler,
        text="A complete and careful answer.",
        idempotency_key="d1",
    )
    assert _counts(prompt) == (1, 0)
    ranking = _rank(other_labeler, key="r1")
    ranking_submit(  # a retry stores nothing and counts nothing
        assignment_id=ranking.assignment_id, labeler=other_labeler, order=ranking.order, idempotency_key="r1"
    )
    assert _counts(prompt) == (1, 1)
    ranking_record(
        prompt=prompt,
        candidate_ids=[candidates[0].pk, candidates[1].pk],
        order=[[candidates[0].pk], [candidates[1].pk]],
        labeler=None,
        source=RankingSource.IMPORT,
    )
    assert _counts(prompt) == (1, 1)
    assert prompt_done_counts_reconcile() == 0


def test_reconcile_repairs_a_deleted_ranking_and_the_prompt_is_served_again(
    project, labeler, other_labeler, make_prompts
):
    first, second = make_prompts(project, 2)
    second.priority = 1  # served first
    second.save(update_fields=["priority"])
    for prompt in (first, second):
        candidates_add(prompt, 4)
    project.rankings_per_prompt = 1
    project.save(update_fields=["rankings_per_prompt"])
    ranking = _rank(labeler, key="r1")
    assert ranking.prompt_id == second.pk and _counts(second) == (0, 1)
    ranking.assignment.delete()  # an admin removes the work (and its assignment) by hand
    ranking.delete()
    assert _counts(second) == (0, 1)  # the services cannot see that
    assert reconcile_task.apply().get() == 1
    assert _counts(second) == (0, 0) and _counts(first) == (0, 0)
    again, created = assignment_lease(labeler=other_labeler, kind=TaskKind.RANK)
    assert created and again.prompt_id == second.pk  # untouched once more, by priority


def test_migration_counts_work_already_stored(project, labeler, make_prompts):
    (prompt,) = make_prompts(project, 1)
    candidates_add(prompt, 4)
    _rank(labeler, key="r1")
    Prompt.objects.update(rankings_done=0, demonstrations_done=0)
    migration = importlib.import_module("annotation.migrations.0002_prompt_done_counts")
    migration.count_existing_work(apps, None)
    assert _counts(prompt) == (0, 1)


def test_beat_schedules_the_reconcile():
    tasks = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert "annotation.prompt_done_counts_reconcile" in tasks
