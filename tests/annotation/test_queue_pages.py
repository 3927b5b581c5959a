"""The server-rendered labeler pages: what they show, to whom, and that guidelines cannot run script."""

from __future__ import annotations

import pytest

from annotation.models.assignments import TaskKind
from annotation.selectors.projects import guidelines_html
from annotation.services.assignments import assignment_lease
from tests.annotation.queue_helpers import candidates_add

pytestmark = pytest.mark.django_db


def test_home_needs_login(client):
    response = client.get("/")
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")


def test_home_shows_available_work_counts_and_held_tasks(client, project, labeler, make_prompts):
    prompts = make_prompts(project, 3)
    candidates_add(prompts[0], 4)
    client.force_login(labeler)
    page = client.get("/").content.decode()
    assert 'data-count="demonstrate">3<' in page and 'data-count="rank">1<' in page
    assignment, _ = assignment_lease(labeler=labeler, kind=TaskKind.RANK)
    page = client.get("/").content.decode()
    assert f'href="/tasks/{assignment.pk}/"' in page
    assert 'data-count="rank">0<' in page


def test_task_page_is_the_labelers_own(client, project, labeler, other_labeler, make_prompts):
    (prompt,) = make_prompts(project, 1)
    candidates_add(prompt, 4)
    assignment, _ = assignment_lease(labeler=labeler, kind=TaskKind.RANK)
    client.force_login(other_labeler)
    assert client.get(f"/tasks/{assignment.pk}/").status_code == 404
    client.force_login(labeler)
    page = client.get(f"/tasks/{assignment.pk}/").content.decode()
    assert "Rank the answers" in page and "secret-model-name-7b" not in page and '"model_name"' not in page


def test_guidelines_markdown_is_sanitised(project):
    project.guidelines = (
        "# Rules\n\n* be **kind**\n\n<script>alert(1)</script>\n\n<img src=x onerror=alert(2)>\n\n"
        '<a href="javascript:alert(3)">x</a> <iframe src="https://evil.example"></iframe>'
        '<p style="position:fixed" onclick="alert(4)">styled</p>'
    )
    html = guidelines_html(project=project)
    assert "<h1>Rules</h1>" in html and "<strong>kind</strong>" in html
    for forbidden in ("<script", "alert(1)", "onerror", "javascript:", "<iframe", "style=", "onclick"):
        assert forbidden not in html


def test_dashboard_link_only_for_reviewers_admins_and_staff(
    client, project, labeler, other_labeler, password
):
    from annotation.models import Membership

    client.login(username=labeler.username, password=password)
    assert 'href="/dashboard/"' not in client.get("/").content.decode()
    Membership.objects.filter(project=project, user=other_labeler).update(role="reviewer")
    client.login(username=other_labeler.username, password=password)
    assert 'href="/dashboard/"' in client.get("/").content.decode()
