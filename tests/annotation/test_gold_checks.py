"""Attention checks and qualification: gold served at the project's share and indistinguishable from
real tasks, gold rankings set aside, qualification gating a new labeler, pausing on a falling rolling
gold accuracy, and lifting a pause (API and admin action)."""

from __future__ import annotations

import re
from html import escape

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from annotation.models import Assignment, GoldCheck, Membership, MembershipEvent, Project, Prompt, Ranking
from annotation.models.assignments import TaskKind
from annotation.models.gold import StandingAction
from annotation.models.projects import QualificationStatus, Role
from annotation.models.quality import QualityState
from annotation.models.rankings import RankingSource
from annotation.selectors.queue import prompts_needing_work, work_available
from annotation.services.assignments import assignment_lease
from annotation.services.rankings import ranking_record, ranking_submit
from annotation.sql.queue import prompt_next_locked
from tests.annotation.queue_helpers import candidates_add

pytestmark = pytest.mark.django_db


def _user(name: str):
    return get_user_model().objects.create_user(name, f"{name}@example.com", "pw-123456789")


def _gold_prompts(project: Project, make_prompts, count: int) -> list[Prompt]:
    """Prompts with K answers and an imported gold ranking: best to worst by candidate id."""
    prompts = make_prompts(project, count, prefix="Reference question")
    for prompt in prompts:
        ids = [candidate.pk for candidate in candidates_add(prompt, project.k)]
        gold = ranking_record(
            prompt=prompt,
            candidate_ids=ids,
            order=[[pk] for pk in ids],
            labeler=None,
            source=RankingSource.IMPORT,
        )
        Ranking.objects.filter(pk=gold.pk).update(is_gold=True)
    return prompts


def _real_prompts(project: Project, make_prompts, count: int) -> list[Prompt]:
    prompts = make_prompts(project, count)
    for prompt in prompts:
        candidates_add(prompt, project.k)
    return prompts


def _submit(assignment: Assignment, labeler, *, correct: bool) -> Ranking:
    """Rank as gold does (best = lowest id) or exactly the other way round."""
    order = [[pk] for pk in sorted(assignment.shown_order, reverse=not correct)]
    ranking, _ = ranking_submit(
        assignment_id=assignment.pk, labeler=labeler, order=order, idempotency_key=f"key-{assignment.pk}"
    )
    return ranking


def _is_gold(assignment: Assignment) -> bool:
    return GoldCheck.objects.filter(assignment=assignment).exists()


def test_gold_share_holds_over_many_leases_and_gold_never_counts(make_prompts):
    # Fixed ids: the draw is seeded by (project, labeler, lease count), so the test reads the same
    # draws on every database and run.
    project = Project.objects.create(pk=9001, name="Gold share", k=4, rankings_per_prompt=1, gold_share=0.25)
    labelers = [
        get_user_model().objects.create_user(f"labeler{index}", password="pw-123456789", pk=9100 + index)
        for index in range(4)
    ]
    for labeler in labelers:
        Membership.objects.create(project=project, user=labeler)
    gold = _gold_prompts(project, make_prompts, 24)
    _real_prompts(project, make_prompts, 130)
    leases = gold_served = 0
    for labeler in labelers:
        for _ in range(40):
            assignment, created = assignment_lease(labeler=labeler, kind=TaskKind.RANK)
            assert created and assignment is not None
            leases += 1
            gold_served += _is_gold(assignment)
            _submit(assignment, labeler, correct=True)
    assert leases == 160
    assert abs(gold_served / leases - 0.25) <= 0.07, gold_served
    # Each labeler saw each gold prompt at most once, and every gold check's ranking was set aside.
    checks = GoldCheck.objects.all()
    assert checks.count() == gold_served
    assert len({(check.labeler_id, check.prompt_id) for check in checks}) == gold_served
    assert set(Ranking.objects.filter(gold_check__isnull=False).values_list("quality_state", flat=True)) == {
        QualityState.EXCLUDED
    }
    assert all(check.accuracy == 1.0 for check in checks)
    # Gold rankings fill no slot: a gold prompt is served as real work at most its capacity.
    for prompt in gold:
        prompt.refresh_from_db()
        real = Assignment.objects.filter(prompt=prompt, gold_check__isnull=True).count()
        assert real <= project.rankings_per_prompt
        assert prompt.rankings_done == real


def _keys(value):
    """The shape of a payload: dict keys all the way down, list items merged."""
    if isinstance(value, dict):
        return {key: _keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_keys(value[0])] * len(value) if value else []
    return type(value).__name__


def _page_shape(html: str) -> list[tuple[str, str]]:
    return sorted(set(re.findall(r"<([a-z0-9]+)[^>]*?(?:class=\"([^\"]*)\")?", html)))


def test_gold_task_looks_like_a_real_one_in_api_and_page(
    project, labeler, other_labeler, make_prompts, password
):
    _gold_prompts(project, make_prompts, 2)
    _real_prompts(project, make_prompts, 2)
    # Only gold for one labeler, none for the other (set per lease, as a project admin would).
    project.gold_share = 1.0
    project.save(update_fields=["gold_share"])
    gold_client, real_client = APIClient(), APIClient()
    gold_client.force_authenticate(labeler)
    gold_task = gold_client.post("/api/labeler/assignments/lease/", {"kind": "rank"}, format="json")
    project.gold_share = 0.0
    project.save(update_fields=["gold_share"])
    real_client.force_authenticate(other_labeler)
    real_task = real_client.post("/api/labeler/assignments/lease/", {"kind": "rank"}, format="json")
    assert gold_task.status_code == real_task.status_code == 201
    gold_data, real_data = gold_task.json(), real_task.json()
    assert _is_gold(Assignment.objects.get(pk=gold_data["id"]))
    assert not _is_gold(Assignment.objects.get(pk=real_data["id"]))
    assert _keys(gold_data) == _keys(real_data)
    assert "gold" not in gold_task.content.decode().lower()
    # Held again, through the detail endpoint: the same.
    detail = gold_client.get(f"/api/labeler/assignments/{gold_data['id']}/")
    assert _keys(detail.json()) == _keys(
        real_client.get(f"/api/labeler/assignments/{real_data['id']}/").json()
    )

    pages = {}
    for user, task in ((labeler, gold_data), (other_labeler, real_data)):
        browser = Client()
        browser.login(username=user.username, password=password)
        response = browser.get(f"/tasks/{task['id']}/")
        assert response.status_code == 200
        pages[user.username] = response.content.decode()
    assert "gold" not in pages[labeler.username].lower()
    assert _page_shape(pages[labeler.username]) == _page_shape(pages[other_labeler.username])

    # The submission's answer is the same shape too, and says nothing of a check.
    order = [[candidate["id"]] for candidate in gold_data["candidates"]]
    gold_submit = gold_client.post(
        f"/api/labeler/assignments/{gold_data['id']}/ranking/",
        {"order": order, "idempotency_key": "g"},
        format="json",
    )
    real_submit = real_client.post(
        f"/api/labeler/assignments/{real_data['id']}/ranking/",
        {"order": [[candidate["id"]] for candidate in real_data["candidates"]], "idempotency_key": "r"},
        format="json",
    )
    assert gold_submit.status_code == real_submit.status_code == 201
    assert _keys(gold_submit.json()) == _keys(real_submit.json())
    assert "gold" not in gold_submit.content.decode().lower()


def test_qualification_gates_a_new_labeler(
    project, labeler, other_labeler, make_prompts, password, admin_user
):
    project.qualification_tasks, project.qualification_accuracy = 3, 0.7
    project.save(update_fields=["qualification_tasks", "qualification_accuracy"])
    _gold_prompts(project, make_prompts, 6)
    _real_prompts(project, make_prompts, 4)

    [row] = work_available(labeler=labeler)
    assert row["standing"] == "qualifying" and row["rank"] == 6 and row["demonstrate"] == 0
    assert assignment_lease(labeler=labeler, kind=TaskKind.DEMONSTRATE) == (None, False)

    # Gold only until three are done; a careful labeler passes.
    for _ in range(3):
        assignment, _ = assignment_lease(labeler=labeler)
        assert assignment is not None and _is_gold(assignment) and assignment.gold_check.qualification
        _submit(assignment, labeler, correct=True)
    membership = Membership.objects.get(project=project, user=labeler)
    assert membership.qualification_status == QualificationStatus.QUALIFIED
    assert membership.events.get().action == StandingAction.QUALIFIED
    assignment, _ = assignment_lease(labeler=labeler, kind=TaskKind.RANK)
    assert assignment is not None and not _is_gold(assignment)

    # A careless one fails (one right, two reversed: 33 % pooled, below 70 %) and gets nothing.
    for correct in (True, False, False):
        assignment, _ = assignment_lease(labeler=other_labeler, kind=TaskKind.RANK)
        assert assignment is not None and _is_gold(assignment)
        _submit(assignment, other_labeler, correct=correct)
    failed = Membership.objects.get(project=project, user=other_labeler)
    assert failed.qualification_status == QualificationStatus.FAILED
    assert assignment_lease(labeler=other_labeler) == (None, False)
    api = APIClient()
    api.force_authenticate(other_labeler)
    [row] = api.get("/api/labeler/work/").json()["projects"]
    assert row["standing"] == "not_qualified" and row["rank"] == 0
    assert "did not qualify" in row["standing_message"]
    browser = Client()
    browser.login(username=other_labeler.username, password=password)
    assert "You did not qualify for this project" in browser.get("/").content.decode()

    # An admin waives it: real work opens.
    admin_api = APIClient()
    admin_api.force_authenticate(admin_user)
    lifted = admin_api.post(
        f"/api/projects/{project.pk}/gold/labelers/{other_labeler.pk}/lift",
        {"reason": "retrained"},
        format="json",
    )
    assert lifted.status_code == 200, lifted.content
    assert lifted.json()["standing"] == "working"
    assert lifted.json()["events"][0]["action"] == StandingAction.QUALIFICATION_WAIVED
    assignment, _ = assignment_lease(labeler=other_labeler, kind=TaskKind.RANK)
    assert assignment is not None and not _is_gold(assignment)


def test_rolling_gold_accuracy_pauses_and_a_lift_restores(
    project, labeler, other_labeler, make_prompts, admin_user
):
    project.gold_share, project.pause_accuracy, project.pause_window = 1.0, 0.6, 3
    project.save(update_fields=["gold_share", "pause_accuracy", "pause_window"])
    _gold_prompts(project, make_prompts, 10)
    membership = Membership.objects.get(project=project, user=labeler)

    for correct in (True, True, True, False):
        assignment, _ = assignment_lease(labeler=labeler, kind=TaskKind.RANK)
        _submit(assignment, labeler, correct=correct)
    membership.refresh_from_db()
    assert membership.paused_at is None  # 2 of 3 right: 67 % >= 60 %
    assignment, _ = assignment_lease(labeler=labeler, kind=TaskKind.RANK)
    _submit(assignment, labeler, correct=False)
    membership.refresh_from_db()
    assert membership.paused_at is not None and "below" in membership.pause_reason
    event = membership.events.get()
    assert event.action == StandingAction.PAUSED and event.accuracy == pytest.approx(1 / 3)
    assert assignment_lease(labeler=labeler) == (None, False)
    [row] = work_available(labeler=labeler)
    assert row["standing"] == "paused" and row["rank"] == 0 and "paused" in row["standing_message"]

    # Admins (and reviewers) read why; a labeler may not lift their own pause.
    admin_api = APIClient()
    admin_api.force_authenticate(admin_user)
    standings = {
        row["username"]: row
        for row in admin_api.get(f"/api/projects/{project.pk}/gold/labelers/").json()["results"]
    }
    assert standings[labeler.username]["standing"] == "paused"
    assert standings[labeler.username]["pause_reason"] == membership.pause_reason
    assert standings[labeler.username]["rolling_accuracy"] == pytest.approx(1 / 3)
    own = APIClient()
    own.force_authenticate(labeler)
    assert (
        own.post(f"/api/projects/{project.pk}/gold/labelers/{labeler.pk}/lift", {}, format="json").status_code
        == 403
    )
    nothing = admin_api.post(
        f"/api/projects/{project.pk}/gold/labelers/{other_labeler.pk}/lift", {}, format="json"
    )
    assert nothing.status_code == 409

    lifted = admin_api.post(f"/api/projects/{project.pk}/gold/labelers/{labeler.pk}/lift", {}, format="json")
    assert lifted.status_code == 200
    membership.refresh_from_db()
    assert membership.paused_at is None and membership.pause_lifted_by == admin_user
    # The checks before the lift no longer count: one more miss does not pause again at once.
    assignment, _ = assignment_lease(labeler=labeler, kind=TaskKind.RANK)
    assert assignment is not None
    _submit(assignment, labeler, correct=False)
    membership.refresh_from_db()
    assert membership.paused_at is None


def test_admin_action_lifts_a_pause_and_shows_why(project, labeler, make_prompts, admin_user, password):
    project.gold_share, project.pause_accuracy, project.pause_window = 1.0, 0.9, 1
    project.save(update_fields=["gold_share", "pause_accuracy", "pause_window"])
    _gold_prompts(project, make_prompts, 2)
    assignment, _ = assignment_lease(labeler=labeler, kind=TaskKind.RANK)
    _submit(assignment, labeler, correct=False)
    membership = Membership.objects.get(project=project, user=labeler)
    assert membership.paused_at is not None
    browser = Client()
    browser.login(username=admin_user.username, password=password)
    change = browser.get(f"/admin/annotation/membership/{membership.pk}/change/")
    assert change.status_code == 200 and escape(membership.pause_reason) in change.content.decode()
    response = browser.post(
        "/admin/annotation/membership/",
        {"action": "lift_pause", "_selected_action": [membership.pk]},
    )
    assert response.status_code == 302
    membership.refresh_from_db()
    assert membership.paused_at is None and membership.pause_lifted_by == admin_user
    assert list(MembershipEvent.objects.values_list("action", flat=True)) == [
        StandingAction.PAUSE_LIFTED,
        StandingAction.PAUSED,
    ]


def test_reviewer_reads_standings_and_gold_check_is_recorded(project, labeler, make_prompts):
    project.gold_share = 1.0
    project.save(update_fields=["gold_share"])
    (prompt,) = _gold_prompts(project, make_prompts, 1)
    reviewer = _user("rita")
    Membership.objects.create(project=project, user=reviewer, role=Role.REVIEWER)
    assignment, _ = assignment_lease(labeler=labeler, kind=TaskKind.RANK)
    ranking = _submit(assignment, labeler, correct=True)
    ranking.refresh_from_db()
    assert ranking.quality_state == QualityState.EXCLUDED
    assert ranking.quality_events.get().reason == "gold check"
    prompt.refresh_from_db()
    assert prompt.rankings_done == 0
    api = APIClient()
    api.force_authenticate(reviewer)
    rows = {
        row["username"]: row
        for row in api.get(f"/api/projects/{project.pk}/gold/labelers/").json()["results"]
    }
    assert rows[labeler.username]["gold_checks"] == 1 and rows[labeler.username]["gold_accuracy"] == 1.0
    assert reviewer.username not in rows
    assert (
        api.post(f"/api/projects/{project.pk}/gold/labelers/{labeler.pk}/lift", {}, format="json").status_code
        == 403
    )


def test_fast_path_and_specification_agree_with_gold_checks_present(
    project, labeler, other_labeler, make_prompts
):
    """Gold checks (submitted and excluded, or leased and live) change nothing the queue's fast path
    and its specification disagree on: for another labeler both pick the same prompts in order."""
    project.gold_share = 1.0
    project.save(update_fields=["gold_share"])
    _gold_prompts(project, make_prompts, 3)
    _real_prompts(project, make_prompts, 2)
    for _ in range(2):
        assignment, _ = assignment_lease(labeler=labeler, kind=TaskKind.RANK)
        _submit(assignment, labeler, correct=True)
    held, _ = assignment_lease(labeler=labeler, kind=TaskKind.RANK)  # a live gold lease holds a slot
    assert _is_gold(held)
    now = timezone.now()
    expected = list(
        prompts_needing_work(project=project, labeler=other_labeler, kind=TaskKind.RANK, now=now).values_list(
            "pk", flat=True
        )
    )
    served, rejected = [], []
    with transaction.atomic():
        while True:
            prompt_id = prompt_next_locked(
                project=project,
                labeler_id=other_labeler.pk,
                kind=TaskKind.RANK,
                capacity=project.rankings_per_prompt,
                now=now,
                rejected=rejected,
            )
            if prompt_id is None:
                break
            served.append(prompt_id)
            rejected.append(prompt_id)
    assert served == expected and len(expected) == 5
