"""The labeler home as a labeler lives in it: it offers new work by itself, and fits a phone."""

from __future__ import annotations

import pytest
from django.utils import timezone

from annotation.models import Prompt
from tests.annotation.queue_helpers import candidates_add

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_rank_is_enabled_by_itself_when_answers_to_rank_appear(
    page, live_server, login, labeler, project, make_prompts
):
    (prompt,) = make_prompts(project, 1)
    Prompt.objects.filter(pk=prompt.pk).update(generation_queued_at=timezone.now())  # a worker on it
    page.add_init_script("window.labelerHomeRefreshMs = 300")  # the page's 15 s, shortened for the test
    login(page, labeler)
    rank = page.locator("button.start[data-kind=rank]")
    assert rank.is_disabled() and page.locator("[data-count=rank]").inner_text() == "0"
    assert "1 more to rank is being written by the model" in page.locator("[data-coming]").inner_text()
    candidates_add(prompt, project.k)  # the worker finished generating while the page was open
    Prompt.objects.filter(pk=prompt.pk).update(generation_queued_at=None)
    page.wait_for_selector("button.start[data-kind=rank]:not([disabled])", timeout=5000)
    assert page.locator("[data-count=rank]").inner_text() == "1"
    assert page.locator("[data-coming]").inner_text() == ""
    rank.click()
    page.wait_for_selector("article.candidate")


def test_home_fits_a_390_px_phone(page, live_server, login, labeler, project, make_prompts, artifacts):
    project.name = "A project whose name is long enough to wrap on a phone screen"
    project.save(update_fields=["name"])
    make_prompts(project, 3)
    page.set_viewport_size({"width": 390, "height": 844})
    login(page, labeler)
    page.screenshot(path=str(artifacts / "labeler-home-390.png"), full_page=True)
    overflow = page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= 390, f"the page is {overflow} px wide at 390 px"
    assert page.locator("button.start[data-kind=demonstrate]").is_visible()
