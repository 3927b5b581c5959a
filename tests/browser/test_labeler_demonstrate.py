"""A labeler writes demonstrations in real headless Chromium: drafts survive reloads and ended sessions."""

from __future__ import annotations

import re

import pytest

from annotation.models import Assignment, Demonstration
from annotation.models.assignments import AssignmentStatus, TaskKind

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ANSWER = "Paris is the capital of France, and it has been for most of the last thousand years."


@pytest.fixture
def demo_project(project, make_prompts):
    project.guidelines = (
        "## Be helpful\n\nAnswer **truthfully**.\n\n<script>window.__xss = 1</script>\n\n"
        '<img src="x" onerror="window.__xss = 2">\n\n[click](javascript:window.__xss=3)'
    )
    project.min_demonstration_chars = 30
    project.save()
    make_prompts(project, 2)
    return project


def test_write_reload_and_submit_then_next_task_appears(
    page, live_server, login, labeler, demo_project, artifacts
):
    login(page, labeler)
    assert page.locator("[data-count=demonstrate]").inner_text() == "2"
    page.click("button.start[data-kind=demonstrate]")
    page.wait_for_url(re.compile(r"/tasks/\d+/$"))
    first_url = page.url
    # The guidelines render as Markdown with everything that could run removed.
    assert page.locator("#guidelines h2").inner_text() == "Be helpful"
    assert page.locator("#guidelines script, #guidelines [onerror]").count() == 0
    assert page.evaluate("window.__xss") is None
    page.click("#guidelines a")
    assert page.evaluate("window.__xss") is None

    page.fill("#answer", "Paris is the capital")
    page.wait_for_selector("#draft-status:has-text('Draft saved')")
    page.reload()
    assert page.input_value("#answer") == "Paris is the capital"
    assignment = Assignment.objects.get(labeler=labeler, status=AssignmentStatus.LEASED)
    assert assignment.draft["text"] == "Paris is the capital" and assignment.draft["seconds_spent"] >= 0

    page.click("#submit")
    assert "at least 30" in page.inner_text("#form-error")
    page.fill("#answer", "   ")
    page.click("#submit")
    assert "empty" in page.inner_text("#form-error")
    page.fill("#answer", ANSWER)
    page.screenshot(path=str(artifacts / "demonstrate.png"), full_page=True)
    page.click("#submit")
    page.wait_for_url(lambda url: url != first_url and re.search(r"/tasks/\d+/$", url) is not None)
    assert page.input_value("#answer") == ""

    demonstration = Demonstration.objects.get()
    assert (demonstration.labeler, demonstration.text, demonstration.prompt_id) == (
        labeler,
        ANSWER,
        assignment.prompt_id,
    )
    assignment.refresh_from_db()
    assert assignment.status == AssignmentStatus.SUBMITTED
    assert (
        Assignment.objects.filter(
            labeler=labeler, status=AssignmentStatus.LEASED, kind=TaskKind.DEMONSTRATE
        ).count()
        == 1
    )


def test_draft_survives_an_ended_session(page, live_server, login, labeler, demo_project):
    login(page, labeler)
    page.click("button.start[data-kind=demonstrate]")
    page.wait_for_url(re.compile(r"/tasks/\d+/$"))
    task_path = page.url.removeprefix(live_server.url)
    page.fill("#answer", "The first half,")
    page.wait_for_selector("#draft-status:has-text('Draft saved')")

    page.context.clear_cookies()  # the session ends while the labeler keeps typing
    page.type("#answer", " and the second half written after the session ended.")
    page.wait_for_selector("#draft-status:has-text('session has ended')")
    page.click("#draft-status a")
    page.fill("input[name=username]", labeler.username)
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}{task_path}")

    full = "The first half, and the second half written after the session ended."
    assert page.input_value("#answer") == full
    page.wait_for_selector("#draft-status:has-text('Draft saved')")
    assert Assignment.objects.get(labeler=labeler, status=AssignmentStatus.LEASED).draft["text"] == full


def test_skip_with_reason(page, live_server, login, labeler, demo_project):
    login(page, labeler)
    page.click("button.start[data-kind=demonstrate]")
    page.wait_for_url(re.compile(r"/tasks/\d+/$"))
    first_url = page.url
    page.click("#skip-panel summary")
    page.click("#skip-submit")
    assert "Choose a reason" in page.inner_text("#skip-error")
    page.check("input[name=skip-reason][value=other]")
    page.fill("#skip-other", "I do not know this topic")
    page.click("#skip-submit")
    page.wait_for_url(lambda url: url != first_url and re.search(r"/tasks/\d+/$", url) is not None)
    skipped = Assignment.objects.get(status=AssignmentStatus.SKIPPED)
    assert (skipped.labeler, skipped.skip_reason) == (labeler, "I do not know this topic")
    leased = Assignment.objects.get(status=AssignmentStatus.LEASED)
    assert leased.prompt_id != skipped.prompt_id
    assert not Demonstration.objects.exists()


def test_time_spent_keeps_counting_across_a_reload(page, live_server, login, labeler, demo_project):
    """A reload mid-task must not restart the clock: the stored time covers both page loads."""
    login(page, labeler)
    page.click("button.start[data-kind=demonstrate]")
    page.wait_for_url(re.compile(r"/tasks/\d+/$"))
    first_url = page.url
    page.fill("#answer", ANSWER)
    page.wait_for_timeout(2500)
    page.reload()
    page.wait_for_timeout(500)
    page.click("#submit")
    page.wait_for_url(lambda url: url != first_url and re.search(r"/tasks/\d+/$", url) is not None)
    demonstration = Demonstration.objects.get()
    assert demonstration.seconds_spent >= 2.9, demonstration.seconds_spent
    # The submitted task's clock is gone from the browser: leaving the page did not write it back.
    kept = page.evaluate("Object.keys(localStorage).filter((key) => key.startsWith('rlhf-time:'))")
    assert not [key for key in kept if key.endswith(f":demonstrate:{demonstration.prompt_id}")], kept
