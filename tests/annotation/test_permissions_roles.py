"""Roles are enforced where work is done: reviewers take no labeler tasks (403), a labeler removed from
a project loses their tasks there on the page and the API (404), and staff users without superuser
rights are scoped by their memberships like anyone."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from annotation.models import Membership, Project
from annotation.models.projects import Role
from annotation.permissions import project_role, projects_for_labeler, projects_for_role
from annotation.services.assignments import assignment_lease
from config.errors import Forbidden
from tests.annotation.queue_helpers import candidates_add

LEASE = "/api/labeler/assignments/lease/"


@pytest.fixture
def ready(project, make_prompts):
    for prompt in make_prompts(project, 2):
        candidates_add(prompt, 4)
    return project


def test_a_reviewer_cannot_lease_or_submit(ready, labeler, make_prompts):
    client = APIClient()
    client.force_authenticate(labeler)
    task = client.post(LEASE, {"kind": "rank", "project": ready.pk}, format="json").json()
    Membership.objects.filter(project=ready, user=labeler).update(role=Role.REVIEWER)

    with pytest.raises(Forbidden):
        assignment_lease(labeler=labeler, kind="rank", project_id=ready.pk)
    response = client.post(LEASE, {"kind": "rank", "project": ready.pk}, format="json")
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    # Without a project named, a reviewer's projects simply offer no work.
    assert client.post(LEASE, {"kind": "rank"}, format="json").status_code == 204
    ids = [candidate["id"] for candidate in task["candidates"]]
    response = client.post(
        f"/api/labeler/assignments/{task['id']}/ranking/",
        {"order": [ids], "idempotency_key": "r"},
        format="json",
    )
    assert response.status_code == 403
    assert not ready.prompts.filter(rankings__isnull=False).exists()


def test_a_removed_labeler_loses_their_tasks_on_page_and_api(ready, labeler, client, password):
    ready.guidelines = "Secret-ish guideline text 4711"
    ready.save(update_fields=["guidelines"])
    api = APIClient()
    api.force_authenticate(labeler)
    task = api.post(LEASE, {"kind": "rank"}, format="json").json()
    base = f"/api/labeler/assignments/{task['id']}/"
    client.login(username=labeler.username, password=password)
    assert api.get(base).status_code == 200 and client.get(f"/tasks/{task['id']}/").status_code == 200

    Membership.objects.filter(project=ready, user=labeler).delete()
    assert api.get(base).status_code == 404
    assert api.put(base + "draft/", {"draft": {"x": 1}}, format="json").status_code == 404
    assert api.post(base + "skip/", {"reason": "x"}, format="json").status_code == 404
    page = client.get(f"/tasks/{task['id']}/")
    assert page.status_code == 404 and b"guideline text 4711" not in page.content


def test_staff_without_superuser_are_scoped_by_membership(project, django_user_model):
    other = Project.objects.create(name="Elsewhere", k=2)
    staff = django_user_model.objects.create_user("staffer", is_staff=True)
    Membership.objects.create(project=project, user=staff, role=Role.ADMIN)
    assert project_role(user=staff, project=other) is None
    assert list(projects_for_role(user=staff)) == [project]
    assert list(projects_for_labeler(user=staff)) == [project]
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    assert project_role(user=root, project=other) == Role.ADMIN
    client = APIClient()
    client.force_authenticate(staff)
    assert client.get(f"/api/projects/{other.pk}/exports/").status_code == 404
    assert client.get(f"/api/projects/{project.pk}/exports/").status_code == 200
