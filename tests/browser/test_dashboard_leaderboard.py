"""A reviewer opens the project dashboard in headless Chromium: the leaderboard panel queues a run,
follows it to the end, and draws the generators with their intervals and the win-rate matrix.
Screenshot: test-artifacts/dashboard-leaderboard.png."""

from __future__ import annotations

import pytest

from annotation.models import Membership
from annotation.models.projects import Role
from config.celery import app as celery_app
from rewards.models import LeaderboardRun
from tests.rewards.test_leaderboard_runs import COOL_NAME, HOT_NAME, world_make

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def eager_celery():
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


def test_reviewer_sees_the_leaderboard_computed_and_drawn(
    page,
    live_server,
    login,
    project,
    labeler,
    other_labeler,
    django_user_model,
    password,
    artifacts,
    eager_celery,
):
    reviewer = django_user_model.objects.create_user("rita", "rita@example.com", password)
    Membership.objects.create(project=project, user=reviewer, role=Role.REVIEWER)
    world_make(project, [labeler, other_labeler], prompts=4)
    login(page, reviewer, f"/dashboard/projects/{project.pk}/")

    rows = page.locator("#leaderboard-standings tbody tr")
    rows.nth(2).wait_for()
    assert rows.count() == 3
    names = [rows.nth(i).locator("td").first.inner_text() for i in range(3)]
    assert set(names) == {"demonstration", COOL_NAME, HOT_NAME}
    assert page.locator("#leaderboard-standings svg circle").count() == 3  # one interval bar each
    assert page.locator("#leaderboard-matrix tbody tr").count() == 3
    run = LeaderboardRun.objects.get(project=project)
    assert run.status == "done" and run.requested_by == reviewer
    page.screenshot(path=str(artifacts / "dashboard-leaderboard.png"), full_page=True)

    # Recompute: a new run on the same data, drawn the same way.
    page.click("#leaderboard button")
    page.locator("#leaderboard [role=status]").wait_for()
    rows.nth(2).wait_for()
    assert LeaderboardRun.objects.filter(project=project).count() == 2
