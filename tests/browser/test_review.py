"""Review and adjudication in headless Chromium under the real Content-Security-Policy: a reviewer
records an adjudicated order of a disputed prompt with the rank widget, which becomes gold; then
rejects a sampled ranking (a blank note is refused on the page), accepts the next, and the labeler
reads the note on their history page.

Adjudication comes first: once Alice's ranking is rejected, one counted ranking is left and the
prompt no longer has a disagreement to settle. Screenshots: test-artifacts/review*.png."""

from __future__ import annotations

import pytest

from annotation.models import Prompt, QualityEvent, Ranking
from annotation.models.projects import Role
from annotation.models.quality import QualityAction, QualityState
from annotation.models.rankings import RankingSource
from annotation.services.assignments import assignment_lease
from annotation.services.rankings import ranking_submit
from annotation.services.review import ranking_review_request
from tests.annotation.queue_helpers import candidates_add
from tests.annotation.test_dashboard_triage import member_make
from tests.browser.conftest import open_page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _ranked_prompt(project, labelers, *, reverse_second: bool) -> Prompt:
    prompt = Prompt.objects.create(
        project=project,
        turns=[{"role": "user", "content": "Which answer is kinder?"}],
        content_hash=f"review-{project.pk}",
    )
    ids = [candidate.pk for candidate in candidates_add(prompt, project.k)]
    # Through a lease, as the rank page submits: the labeler's history lists assignments.
    for index, user in enumerate(labelers):
        order = ids[::-1] if reverse_second and index == 1 else ids
        assignment, _new = assignment_lease(labeler=user, kind="rank", project_id=project.pk)
        assert assignment is not None and assignment.prompt_id == prompt.pk
        ranking_submit(
            assignment_id=assignment.pk,
            labeler=user,
            order=[[i] for i in order],
            idempotency_key=f"browser-review-{index}",
        )
    return prompt


def test_a_reviewer_rejects_and_accepts_and_adjudicates(
    chromium, live_server, login, project, labeler, other_labeler, django_user_model, password, artifacts
):
    project.adjudication_threshold = 0.5
    project.save(update_fields=["adjudication_threshold"])
    prompt = _ranked_prompt(project, [labeler, other_labeler], reverse_second=True)
    alices = Ranking.objects.get(labeler=labeler)
    bobs = Ranking.objects.get(labeler=other_labeler)
    ranking_review_request(ranking_id=alices.pk, reason="sample")
    ranking_review_request(ranking_id=bobs.pk, reason="position_bias")
    reviewer = member_make(project, django_user_model, password, "rita", Role.REVIEWER)

    with open_page(chromium, bypass_csp=False, viewport={"width": 1280, "height": 900}) as page:
        login(page, reviewer, f"/dashboard/projects/{project.pk}/adjudication/")
        page.locator(f"#adjudication-prompts tr[data-prompt='{prompt.pk}'] a").click()
        page.locator("#adjudication-widget").wait_for()
        assert page.locator(".review-ranking").count() == 2
        page.screenshot(path=str(artifacts / "review-adjudicate.png"), full_page=True)
        # With the widget: the second answer shown moves to the top, the (new) third ties with the second.
        a, b, c, d = alices.assignment.shown_order
        widget = page.locator("#adjudication-widget")
        widget.locator(f"article.candidate[data-id='{b}'] button[data-act='up']").click()
        widget.locator(f"article.candidate[data-id='{c}'] button[data-act='tie']").click()
        page.fill("#adjudication-reason", "B is kindest")
        page.click("#adjudication-submit")
        page.locator("#adjudication-done").wait_for()

        page.goto(f"{live_server.url}/dashboard/projects/{project.pk}/review/")
        item = page.locator("#review-item")
        assert item.get_attribute("data-id") == str(alices.pk)
        assert "by alice" in item.locator("h2").inner_text()
        assert page.locator(".review-answer").count() == 4
        # The answers as Alice was shown them: A is the first of her assignment's shown order.
        first_shown = prompt.candidates.get(pk=alices.assignment.shown_order[0]).text
        first = page.locator(".review-answer").first
        assert "Answer A" in first.inner_text() and " ".join(first_shown.split()) in first.inner_text()
        page.screenshot(path=str(artifacts / "review.png"), full_page=True)

        page.click("#review-reject")
        assert "Say why" in page.locator("#review-error").inner_text()
        alices.refresh_from_db()
        assert alices.quality_state == QualityState.UNDER_REVIEW
        page.fill("#review-reason", "You ranked without reading: D answers best.")
        page.click("#review-reject")
        page.locator(f"#review-item[data-id='{bobs.pk}']").wait_for()
        page.click("#review-accept")
        page.locator("#review-empty").wait_for()

    alices.refresh_from_db()
    bobs.refresh_from_db()
    assert (alices.quality_state, bobs.quality_state) == (QualityState.REJECTED, QualityState.COUNTED)
    rejected = QualityEvent.objects.get(action=QualityAction.REVIEW_REJECT)
    assert (rejected.actor, rejected.reason) == (reviewer, "You ranked without reading: D answers best.")
    # Adjudicated before the review: it ranks every answer the counted rankings named, gold, no labeler.
    gold = Ranking.objects.get(prompt=prompt, source=RankingSource.ADJUDICATION)
    # The page lists the answers as Alice was shown them (the first ranking's shown order).
    assert gold.is_gold and gold.labeler is None and gold.order == [[b], [a, c], [d]]
    assert QualityEvent.objects.get(ranking=gold).actor == reviewer

    with open_page(chromium, bypass_csp=False, viewport={"width": 390, "height": 844}) as page:
        login(page, labeler, "/history/")
        note = page.locator(".history-review")
        assert "Rejected in review" in note.inner_text()
        assert "You ranked without reading: D answers best." in note.inner_text()
        page.screenshot(path=str(artifacts / "review-history.png"), full_page=True)
