"""The server-rendered labeler pages: what they show, to whom, and that guidelines cannot run script."""

from __future__ import annotations

import pytest
from django.utils import timezone

from annotation.models import Candidate, Prompt
from annotation.models.assignments import TaskKind
from annotation.selectors.projects import guidelines_html
from annotation.services.assignments import assignment_lease, assignment_skip
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


def test_work_says_how_many_more_answers_are_being_written_and_how_long_one_prompt_takes(
    client, api_client, project, labeler, other_labeler, make_prompts
):
    writing, stale, skipped, idle, earlier = make_prompts(project, 5)
    now = timezone.now()
    Prompt.objects.filter(pk__in=[writing.pk, skipped.pk]).update(generation_queued_at=now)
    # A queue mark from a worker that died long ago promises nothing.
    Prompt.objects.filter(pk=stale.pk).update(generation_queued_at=now - timezone.timedelta(hours=2))
    # A prompt this labeler skipped will not come back to them, however soon it is ready.
    candidates_add(skipped, project.k)
    assignment, _ = assignment_lease(labeler=labeler, kind=TaskKind.RANK)
    assignment_skip(assignment_id=assignment.pk, labeler=labeler, reason="not for me")
    Candidate.objects.filter(prompt=skipped).delete()
    Prompt.objects.filter(pk=skipped.pk).update(generation_queued_at=now)
    api_client.force_authenticate(labeler)

    [row] = api_client.get("/api/labeler/work/").json()["projects"]
    assert (row["rank"], row["rank_generating"], row["generation_seconds"]) == (0, 1, None)

    for seconds in (2.0, 4.0):  # earlier samples of the project: 3 s each, K of them per prompt
        Candidate.objects.create(
            prompt=earlier, text=f"sample {seconds}", content_hash=str(seconds), generation_seconds=seconds
        )
    [row] = api_client.get("/api/labeler/work/").json()["projects"]
    assert row["rank_generating"] == 1 and row["generation_seconds"] == pytest.approx(3.0 * project.k)
    client.force_login(labeler)
    page = client.get("/").content.decode()
    assert f"1 more to rank is being written by the model, about {3 * project.k} s per prompt" in page

    Prompt.objects.filter(pk=writing.pk).update(generation_queued_at=None)
    [row] = api_client.get("/api/labeler/work/").json()["projects"]
    assert (row["rank_generating"], row["generation_seconds"]) == (0, None)
    assert "being written" not in client.get("/").content.decode()
