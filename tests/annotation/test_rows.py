"""Rows read with hand-written SQL come back exactly as the ORM would give them, on either database."""

from __future__ import annotations

import pytest
from django.core.exceptions import FieldDoesNotExist
from django.utils import timezone

from annotation.models import Assignment, Project, RankingItem
from annotation.rows import rows_insert
from annotation.selectors.projects import projects_for_labeler, projects_for_labeler_list
from annotation.services.assignments import assignment_get_for_labeler, assignment_lease
from tests.annotation.queue_helpers import candidates_add

pytestmark = pytest.mark.django_db


def _values(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields}


def test_assignment_with_project_and_prompt_match_the_orm(project, labeler, other_labeler, make_prompts):
    (prompt,) = make_prompts(project, 1)
    candidates_add(prompt, 4)
    project.stop_sequences = ["\nQ:"]
    project.save(update_fields=["stop_sequences"])
    leased, _ = assignment_lease(labeler=labeler, kind="rank")
    Assignment.objects.filter(pk=leased.pk).update(
        draft={"order": [[1], [2]], "note": "é"}, draft_saved_at=timezone.now()
    )

    read = assignment_get_for_labeler(assignment_id=leased.pk, labeler=labeler, lock=True)
    expected = Assignment.objects.select_related("project", "prompt").get(pk=leased.pk)
    assert _values(read) == _values(expected)
    assert _values(read.project) == _values(expected.project)
    assert _values(read.prompt) == _values(expected.prompt)
    assert read.leased_at.tzinfo is not None and read.draft == {"order": [[1], [2]], "note": "é"}
    assert isinstance(read.shown_order, list) and len(read.shown_order) == 4
    with pytest.raises(Exception) as raised:
        assignment_get_for_labeler(assignment_id=leased.pk, labeler=other_labeler)
    assert raised.value.code == "assignment_not_found"


def test_project_list_matches_the_orm_and_hides_other_projects(project, labeler, admin_user):
    Project.objects.create(name="Nobody's project", k=2)
    Project.objects.create(name="Closed", k=2, is_active=False)
    mine = projects_for_labeler_list(user=labeler)
    assert [_values(p) for p in mine] == [_values(p) for p in projects_for_labeler(user=labeler)]
    assert [p.name for p in mine] == [project.name]
    everything = projects_for_labeler_list(user=admin_user)
    assert [p.name for p in everything] == [p.name for p in projects_for_labeler(user=admin_user)]
    assert "Closed" not in [p.name for p in everything] and len(everything) == 2
    assert projects_for_labeler_list(user=labeler, project_id=project.pk + 1000) == []


def test_rows_insert_writes_what_bulk_create_would(project, labeler, other_labeler, make_prompts):
    from annotation.models import Ranking

    (prompt,) = make_prompts(project, 1)
    first, second = candidates_add(prompt, 2)
    rankings = [
        Ranking.objects.create(prompt=prompt, labeler=user, order=[]) for user in (labeler, other_labeler)
    ]
    rows = [(first.pk, 0, 7, ["hallucination", "é"]), (second.pk, 1, None, [])]
    fields = ("ranking", "candidate", "rank", "rating", "flags")
    rows_insert(RankingItem, fields=fields, rows=[(rankings[0].pk, *row) for row in rows])
    RankingItem.objects.bulk_create(
        RankingItem(ranking=rankings[1], candidate_id=c, rank=r, rating=rating, flags=flags)
        for c, r, rating, flags in rows
    )

    def stored(ranking):
        values = [
            _values(item) for item in RankingItem.objects.filter(ranking=ranking).order_by("candidate_id")
        ]
        return [{k: v for k, v in row.items() if k not in ("id", "ranking_id")} for row in values]

    assert stored(rankings[0]) == stored(rankings[1]) and len(stored(rankings[0])) == 2
    assert stored(rankings[0])[0]["flags"] == ["hallucination", "é"]
    rows_insert(RankingItem, fields=fields, rows=[])  # nothing to write: no statement, no error
    with pytest.raises(FieldDoesNotExist):
        rows_insert(RankingItem, fields=("ranking", "comparisons"), rows=[(rankings[0].pk, 1)])


def test_row_update_and_row_exists(project, labeler, make_prompts):
    from annotation.rows import row_exists, row_update

    (prompt,) = make_prompts(project, 1)
    leased, _ = assignment_lease(labeler=labeler, kind="demonstrate")
    sql = f"SELECT 1 FROM {Assignment._meta.db_table} WHERE labeler_id = %s AND idempotency_key = %s LIMIT 1"
    assert not row_exists(sql, [labeler.pk, "key-1"])
    leased.status, leased.submitted_at, leased.idempotency_key = "submitted", timezone.now(), "key-1"
    row_update(leased, fields=["status", "submitted_at", "idempotency_key"])
    stored = Assignment.objects.get(pk=leased.pk)
    assert (stored.status, stored.submitted_at, stored.idempotency_key) == (
        "submitted",
        leased.submitted_at,
        "key-1",
    )
    assert stored.draft == leased.draft and stored.prompt_id == prompt.pk  # other fields untouched
    assert row_exists(sql, [labeler.pk, "key-1"])
    with pytest.raises(ValueError):
        row_update(leased, fields=["demonstration"])
