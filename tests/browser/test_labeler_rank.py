"""A labeler ranks 4 answers in real headless Chromium: once with the mouse, once with the keyboard alone."""

from __future__ import annotations

import re

import pytest

from annotation.models import Assignment, Candidate, Comparison, Ranking, RankingItem
from annotation.models.assignments import AssignmentStatus, TaskKind
from tests.annotation.queue_helpers import candidates_add

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def rank_project(project, make_prompts):
    prompts = make_prompts(project, 2)
    for prompt in prompts:
        candidates = candidates_add(prompt, 4)
        # One long answer, to show folding.
        candidates[2].text = "A long answer. " + "It goes on and on with details. " * 40
        candidates[2].save(update_fields=["text"])
    return project


def _open_rank_task(page, login, labeler) -> Assignment:
    login(page, labeler)
    page.click("button.start[data-kind=rank]")
    page.wait_for_url(re.compile(r"/tasks/\d+/$"))
    page.wait_for_selector("article.candidate")
    return Assignment.objects.get(labeler=labeler, status=AssignmentStatus.LEASED, kind=TaskKind.RANK)


def _card(page, candidate_id: int):
    return page.locator(f"article.candidate[data-id='{candidate_id}']")


def _shown_ids(page) -> list[int]:
    return [
        int(x)
        for x in page.eval_on_selector_all("article.candidate", "cards => cards.map(c => c.dataset.id)")
    ]


def _wait_for_next_task(page, previous_url: str) -> None:
    page.wait_for_url(lambda url: url != previous_url and re.search(r"/tasks/\d+/$", url) is not None)


def test_rank_with_the_mouse(page, live_server, login, labeler, rank_project, artifacts):
    page.set_viewport_size({"width": 1280, "height": 2000})  # every card in view: drags need no scrolling
    assignment = _open_rank_task(page, login, labeler)
    a, b, c, d = assignment.shown_order
    assert _shown_ids(page) == [a, b, c, d]
    page_text = page.inner_text("body")
    assert "secret-model-name-7b" not in page_text and "embedded" not in page_text

    # Drag D onto A's top edge: D becomes first. Then drag B onto C's middle: B ties with C.
    box = _card(page, a).bounding_box()
    _card(page, d).drag_to(_card(page, a), target_position={"x": box["width"] / 2, "y": 5})
    assert _shown_ids(page) == [d, a, b, c]
    box = _card(page, c).bounding_box()
    _card(page, b).drag_to(_card(page, c), target_position={"x": box["width"] / 2, "y": box["height"] / 2})
    assert page.locator(".rank-group.tied .group-label").inner_text() == "Tied for 3rd"
    # A button moves A below the tie, then the order is [[d], [c, b], [a]].
    _card(page, a).locator("button[data-act=down]").click()
    long_id = Candidate.objects.get(prompt=assignment.prompt, text__startswith="A long answer").pk
    long_card = _card(page, long_id)
    assert long_card.locator(".candidate-text.folded").count() == 1
    long_card.locator(".fold-toggle").click()
    assert long_card.locator(".candidate-text.folded").count() == 0
    for candidate_id, rating in ((d, 6), (c, 4), (b, 4), (a, 2)):
        _card(page, candidate_id).locator("select.rating").select_option(str(rating))
    _card(page, a).locator(".flags summary").click()
    _card(page, a).locator("input[value=hallucination]").check()
    page.fill("#comment", "A invents a date.")
    page.screenshot(path=str(artifacts / "rank-mouse.png"), full_page=True)
    first_url = page.url
    page.click("#submit")
    _wait_for_next_task(page, first_url)

    ranking = Ranking.objects.get()
    assert (ranking.assignment_id, ranking.labeler, ranking.comment) == (
        assignment.pk,
        labeler,
        "A invents a date.",
    )
    assert ranking.order == [[d], [c, b], [a]] or ranking.order == [[d], [b, c], [a]]
    assert {frozenset(group) for group in ranking.order} == {
        frozenset([d]),
        frozenset([b, c]),
        frozenset([a]),
    }
    items = {item.candidate_id: (item.rank, item.rating, item.flags) for item in RankingItem.objects.all()}
    assert items == {d: (0, 6, []), c: (1, 4, []), b: (1, 4, []), a: (2, 2, ["hallucination"])}
    assert set(Comparison.objects.values_list("better_id", "worse_id")) == {
        (d, c),
        (d, b),
        (d, a),
        (c, a),
        (b, a),
    }
    assignment.refresh_from_db()
    assert assignment.status == AssignmentStatus.SUBMITTED
    assert (
        Assignment.objects.filter(labeler=labeler, status=AssignmentStatus.LEASED, kind=TaskKind.RANK).count()
        == 1
    )


def test_rank_with_the_keyboard_alone_including_a_tie(
    page, live_server, login, labeler, rank_project, artifacts
):
    assignment = _open_rank_task(page, login, labeler)
    a, b, c, d = assignment.shown_order
    # No Tab needed: the first answer has the focus when the page opens.
    assert int(page.evaluate("document.activeElement.dataset.id")) == a

    press = page.keyboard.press
    press("4")  # A to 4th place: B C D A
    press("ArrowUp")  # B C A D
    press("t")  # A ties with C: B (C A) D
    assert _shown_ids(page) == [b, c, a, d]
    assert page.locator(".rank-group.tied .group-label").inner_text() == "Tied for 2nd"
    press("r"), press("3")  # A rated 3
    press("k"), press("r"), press("4")  # C rated 4
    press("k"), press("r"), press("7")  # B rated 7
    press("j"), press("j"), press("j"), press("r"), press("1")  # D rated 1
    press("Enter")
    assert "Rate every answer" not in page.inner_text("#form-error")
    page.screenshot(path=str(artifacts / "rank-keyboard.png"), full_page=True)
    _wait_for_next_task(page, f"{live_server.url}/tasks/{assignment.pk}/")

    ranking = Ranking.objects.get()
    assert ranking.order == [[b], [c, a], [d]]
    ratings = dict(RankingItem.objects.values_list("candidate_id", "rating"))
    assert ratings == {a: 3, b: 7, c: 4, d: 1}
    assert set(Comparison.objects.values_list("better_id", "worse_id")) == {
        (b, c),
        (b, a),
        (b, d),
        (c, d),
        (a, d),
    }


def test_rank_draft_survives_reload(page, live_server, login, labeler, rank_project):
    assignment = _open_rank_task(page, login, labeler)
    a, b, c, d = assignment.shown_order
    _card(page, d).focus()
    page.keyboard.press("1")
    _card(page, b).locator("select.rating").select_option("5")
    page.wait_for_selector("#draft-status:has-text('Draft saved')")
    page.reload()
    page.wait_for_selector("article.candidate")
    assert _shown_ids(page) == [d, a, b, c]
    assert _card(page, b).locator("select.rating").input_value() == "5"
    assignment.refresh_from_db()
    assert assignment.draft["order"] == [[d], [a], [b], [c]]
    assert not Ranking.objects.exists()


def test_card_buttons_offer_only_what_applies_and_flags_count_as_ticked(
    page, live_server, login, labeler, rank_project, artifacts
):
    page.set_viewport_size({"width": 1280, "height": 2000})
    assignment = _open_rank_task(page, login, labeler)
    a, b, c, d = assignment.shown_order
    top = _card(page, a)
    # The keyboard works at once: the first answer has focus when the page opens.
    assert page.evaluate("document.activeElement.dataset.id") == str(a)
    # The top card has nothing above it to tie with, and no card is tied yet.
    assert not top.locator("button[data-act=tie]").is_visible()
    assert _card(page, b).locator("button[data-act=tie]").is_visible()
    assert page.locator("button[data-act=untie]:visible").count() == 0
    top.focus()
    page.keyboard.press("t")  # the key does nothing on the top card either
    assert page.locator(".rank-group.tied").count() == 0 and _shown_ids(page) == [a, b, c, d]

    _card(page, b).locator("button[data-act=tie]").click()  # B ties with A, the answer above it
    assert page.locator(".rank-group.tied .group-label").inner_text() == "Tied for 1st"
    assert page.locator("button[data-act=untie]:visible").count() == 2
    assert not _card(page, c).locator("button[data-act=untie]").is_visible()

    flags = _card(page, c).locator("details.flags")
    flags.locator("summary").click()
    boxes = flags.locator("input[type=checkbox]")
    boxes.nth(0).check()
    boxes.nth(1).check()
    assert flags.locator("summary").inner_text() == "Flags (2)"
    boxes.nth(0).uncheck()
    assert flags.locator("summary").inner_text() == "Flags (1)"
    page.screenshot(path=str(artifacts / "rank-card-buttons.png"), full_page=True)


def test_answers_show_markdown_and_code_formatted_and_nothing_in_them_runs(
    page, live_server, login, labeler, rank_project, artifacts
):
    for candidate in Candidate.objects.filter(prompt__project=rank_project):
        candidate.text = (
            "Use **sorted** with a key:\n\n```python\nsorted(words, key=len)\n```\n\n"
            "- first\n- second\n\n<script>window.__xss = 1</script>"
            '<img src="x" onerror="window.__xss = 2"> [link](javascript:window.__xss=3)'
        )
        candidate.save(update_fields=["text"])
    assignment = _open_rank_task(page, login, labeler)
    card = _card(page, assignment.shown_order[0])
    text = card.locator(".candidate-text")
    assert text.locator("strong").inner_text() == "sorted"
    assert text.locator("pre code").inner_text().strip() == "sorted(words, key=len)"
    assert "monospace" in text.locator("pre").evaluate("el => getComputedStyle(el).fontFamily")
    assert text.locator("li").count() == 2
    assert page.locator(".candidate-text script, .candidate-text img, .candidate-text [onerror]").count() == 0
    text.locator("a").click()  # the javascript: link lost its href
    assert page.evaluate("window.__xss") is None
    page.screenshot(path=str(artifacts / "rank-markdown.png"), full_page=True)

    card.locator("button.view-toggle").click()  # the raw text, as the model wrote it
    assert "**sorted**" in text.inner_text() and "<script>" in text.inner_text()
    assert text.locator("strong").count() == 0 and page.evaluate("window.__xss") is None
    card.locator("button.view-toggle").click()
    assert text.locator("strong").count() == 1


def test_submitting_without_ratings_unless_the_project_requires_them(
    page, live_server, login, labeler, rank_project
):
    assignment = _open_rank_task(page, login, labeler)
    first_url = page.url
    assert page.inner_text("#session-progress") == "Today: 0 rankings, 0 demonstrations"
    page.click("#submit")  # ratings are optional by default: the order alone is a ranking
    _wait_for_next_task(page, first_url)
    assert page.inner_text("#session-progress") == "Today: 1 ranking, 0 demonstrations"
    assert Ranking.objects.get(assignment=assignment).items.exclude(rating=None).count() == 0

    rank_project.ratings_required = True
    rank_project.save(update_fields=["ratings_required"])
    page.reload()
    page.wait_for_selector("article.candidate")
    page.click("#submit")
    assert "Rate every answer" in page.inner_text("#form-error")
    assert Ranking.objects.filter(labeler=labeler).count() == 1


def test_an_answer_cut_off_at_the_token_limit_is_marked_and_only_that_one(
    page, live_server, login, labeler, rank_project, artifacts
):
    for candidate in Candidate.objects.filter(prompt__project=rank_project):
        candidate.finish_reason = "stop"
        candidate.save(update_fields=["finish_reason"])
    cut = Candidate.objects.filter(prompt__project=rank_project).order_by("pk")
    for candidate in (cut[0], cut[4]):  # one on each prompt, whichever the labeler is served
        candidate.finish_reason = "length"
        candidate.save(update_fields=["finish_reason"])

    assignment = _open_rank_task(page, login, labeler)

    [cut_id] = [pk for pk in assignment.shown_order if pk in (cut[0].pk, cut[4].pk)]
    assert "length limit" in _card(page, cut_id).locator(".cut-off-note").inner_text()
    assert page.locator(".cut-off-note").count() == 1
    page.screenshot(path=str(artifacts / "rank-cut-off.png"), full_page=True)
