"""The triage page in headless Chromium: a reviewer excludes a ranking with a reason (the page asks
for it inline) and sees it move to the excluded list, then restores it; the threshold control; an
admin's gold mark refused once the role is gone, a network failure and "one more ranking"; no active
model; a 390 px phone. Screenshots: test-artifacts/triage*.png."""

from __future__ import annotations

import re

import pytest

from annotation.models import Membership, Prompt, QualityEvent, Ranking
from annotation.models.projects import Role
from annotation.models.quality import QualityState
from tests.annotation.test_dashboard_triage import disputed_prompt_make, member_make
from tests.browser.conftest import open_page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _open(page, login, user, project) -> None:
    login(page, user, f"/dashboard/projects/{project.pk}/triage/")
    page.locator("#triage-status").filter(has_text="Reward model v1").wait_for()


def test_a_reviewer_excludes_a_ranking_with_a_reason_then_restores_it(
    page, live_server, login, project, labeler, other_labeler, django_user_model, password, artifacts
):
    prompt = disputed_prompt_make(project, [labeler, other_labeler])
    reviewer = member_make(project, django_user_model, password, "rita", Role.REVIEWER)
    alice_ranking = Ranking.objects.get(prompt=prompt, labeler=labeler)
    _open(page, login, reviewer, project)

    block = page.locator(f".triage-prompt[data-prompt-id='{prompt.pk}']")
    assert (
        block.locator("h3 a").get_attribute("href")
        == f"/dashboard/projects/{project.pk}/prompts/{prompt.pk}/"
    )
    assert block.locator(".triage-pair").count() == 6  # the model reverses every consensus pair
    first_pair = block.locator(".triage-pair").first
    assert "Answer 0 to prompt" in first_pair.locator(".triage-better").inner_text()
    assert "Answer 3 to prompt" in first_pair.locator(".triage-worse").inner_text()
    assert "99.8%" in first_pair.locator(".triage-probability").inner_text()  # sigmoid(6) = 0.9975
    assert block.locator(".triage-ranking").count() == 2
    assert "6 as the consensus, 0 reversed" in block.locator(".triage-ranking").first.inner_text()
    assert page.locator(".triage-gold-toggle").count() == 0  # gold is for admins
    assert page.locator("#triage-labelers tbody tr").count() == 2
    assert "No ranking is excluded" in page.locator("#triage-excluded").inner_text()

    # Exclude asks for the reason inline; a blank one is refused before anything is sent.
    row = block.locator(f".triage-ranking[data-ranking-id='{alice_ranking.pk}']")
    form = row.locator("form.triage-exclude-form")
    assert page.locator("form.triage-exclude-form:visible").count() == 0  # closed until asked for
    row.locator("button.triage-exclude").click()
    assert form.is_visible()
    form.locator("button[type=submit]").click()
    assert "Say why" in block.locator(".triage-message").inner_text()
    alice_ranking.refresh_from_db()
    assert alice_ranking.quality_state == QualityState.COUNTED
    form.locator("input[name=reason]").fill("clicked through in 4 seconds")
    page.screenshot(path=str(artifacts / "triage-exclude-form.png"), full_page=True)
    form.locator("button[type=submit]").click()

    excluded_row = page.locator(f"#triage-excluded tbody tr[data-ranking-id='{alice_ranking.pk}']")
    excluded_row.wait_for()
    assert "alice" in excluded_row.inner_text() and "excluded" in excluded_row.inner_text()
    assert page.locator(f".triage-ranking[data-ranking-id='{alice_ranking.pk}']").count() == 0
    assert "no longer counts" in page.locator("#triage-notice").inner_text()
    assert page.locator("form.triage-exclude-form:visible").count() == 0
    alice_ranking.refresh_from_db()
    assert alice_ranking.quality_state == QualityState.EXCLUDED
    event = QualityEvent.objects.get(ranking=alice_ranking)
    assert (event.actor, event.reason) == (reviewer, "clicked through in 4 seconds")
    page.screenshot(path=str(artifacts / "triage.png"), full_page=True)

    excluded_row.locator("button.triage-restore").click()
    page.locator(f".triage-ranking[data-ranking-id='{alice_ranking.pk}']").wait_for()
    assert "No ranking is excluded" in page.locator("#triage-excluded").inner_text()
    alice_ranking.refresh_from_db()
    assert alice_ranking.quality_state == QualityState.COUNTED

    # The threshold: out of range is refused on the page; 0.95 keeps the pairs 4 and 6 points apart.
    page.fill("#triage-confident", "1.5")
    page.click("#triage-threshold button[type=submit]")
    assert "from 0.5 to 0.999" in page.locator("#triage-status").inner_text()
    page.fill("#triage-confident", "0.95")
    page.click("#triage-threshold button[type=submit]")
    page.locator("#triage-status").filter(has_text="95%").wait_for()
    assert block.locator(".triage-pair").count() == 3
    assert "confident=0.95" in page.url
    page.fill("#triage-confident", "0.999")
    page.click("#triage-threshold button[type=submit]")
    page.locator("#triage-prompts").filter(has_text="None at this threshold").wait_for()


def test_an_admin_sees_clear_errors_and_asks_for_one_more_ranking(
    page, live_server, login, project, labeler, other_labeler, django_user_model, password
):
    prompt = disputed_prompt_make(project, [labeler, other_labeler])
    admin = member_make(project, django_user_model, password, "boss", Role.ADMIN)
    bob_ranking = Ranking.objects.get(prompt=prompt, labeler=other_labeler)
    _open(page, login, admin, project)
    block = page.locator(f".triage-prompt[data-prompt-id='{prompt.pk}']")
    row = block.locator(f".triage-ranking[data-ranking-id='{bob_ranking.pk}']")
    message = block.locator(".triage-message")

    # The admin is made a reviewer while the page is open: the gold mark is refused, and said why.
    Membership.objects.filter(project=project, user=admin).update(role=Role.REVIEWER)
    row.locator("button.triage-gold-toggle").click()
    message.filter(has_text="403").wait_for()
    assert "Only the project's admins can mark a ranking gold" in message.inner_text()
    bob_ranking.refresh_from_db()
    assert bob_ranking.is_gold is False

    # The network fails on the exclusion: said plainly, nothing changed, the form still there.
    page.route("**/api/rankings/*/exclude", lambda route: route.abort())
    row.locator("button.triage-exclude").click()
    row.locator("input[name=reason]").fill("duplicate account")
    row.locator("form.triage-exclude-form button[type=submit]").click()
    message.filter(has_text="could not reach the server").wait_for()
    assert row.locator("form.triage-exclude-form").is_visible()
    bob_ranking.refresh_from_db()
    assert bob_ranking.quality_state == QualityState.COUNTED
    page.unroute("**/api/rankings/*/exclude")

    # One more ranking than the two it has: one beyond the overlap, then another.
    block.locator("button.triage-more").click()
    message.filter(has_text="1 ranking beyond the overlap of 2").wait_for()
    assert Prompt.objects.get(pk=prompt.pk).extra_rankings == 1
    block.locator("button.triage-more").click()
    message.filter(has_text="2 rankings beyond").wait_for()
    assert Prompt.objects.get(pk=prompt.pk).extra_rankings == 2


def test_without_an_active_model_the_page_says_so_and_still_lists_labelers(
    page, live_server, login, project, labeler, other_labeler, django_user_model, password
):
    disputed_prompt_make(project, [labeler, other_labeler], active_model=False)
    reviewer = member_make(project, django_user_model, password, "rita", Role.REVIEWER)
    login(page, reviewer, f"/dashboard/projects/{project.pk}/triage/")
    page.locator("#triage-status").filter(has_text="No reward model is active").wait_for()
    assert page.locator(".triage-prompt").count() == 0
    labelers = page.locator("#triage-labelers tbody tr")
    assert labelers.count() == 2
    assert "100% of 6 pairs" in labelers.first.inner_text()  # with each other
    assert "– of 0 pairs" in labelers.first.inner_text()  # no model to agree with


def test_the_page_fits_a_390_px_phone(
    page, live_server, login, project, labeler, other_labeler, django_user_model, password, artifacts
):
    prompt = disputed_prompt_make(project, [labeler, other_labeler])
    reviewer = member_make(project, django_user_model, password, "rita", Role.REVIEWER)
    Ranking.objects.filter(prompt=prompt, labeler=labeler).update(quality_state=QualityState.EXCLUDED)
    page.set_viewport_size({"width": 390, "height": 844})
    _open(page, login, reviewer, project)
    page.locator("#triage-excluded tbody tr[data-ranking-id]").wait_for()
    page.locator(".triage-ranking button.triage-exclude").first.click()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    restore = page.locator("#triage-excluded button.triage-restore").bounding_box()
    assert restore["x"] + restore["width"] <= 390  # in reach, not scrolled off to the side
    # The pair's two texts stack rather than squeeze side by side.
    sides = page.locator(".triage-pair").first.locator(".triage-side")
    assert sides.nth(1).bounding_box()["y"] > sides.nth(0).bounding_box()["y"]
    page.screenshot(path=str(artifacts / "triage-390.png"), full_page=True)


def test_the_page_works_under_the_content_security_policy(
    chromium, live_server, login, project, labeler, other_labeler, django_user_model, password
):
    disputed_prompt_make(project, [labeler, other_labeler])
    reviewer = member_make(project, django_user_model, password, "rita", Role.REVIEWER)
    with open_page(chromium, bypass_csp=False, viewport={"width": 1280, "height": 900}) as page:
        violations: list[str] = []
        csp = re.compile(r"Content[- ]Security[- ]Policy", re.IGNORECASE)
        page.on(
            "console", lambda message: violations.append(message.text) if csp.search(message.text) else None
        )
        _open(page, login, reviewer, project)
        page.locator(".triage-ranking button.triage-exclude").first.click()
        assert page.locator("form.triage-exclude-form:visible").count() == 1  # the script ran
        assert not violations, violations
