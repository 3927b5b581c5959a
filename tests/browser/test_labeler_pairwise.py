"""Pairwise side by side in real headless Chromium: a K = 2 project shows the two answers in two columns,
and the keyboard alone chooses (a, b, t, n), rates and submits; on a 390 px phone the columns stack.
Also the "None of these is acceptable" control of the list layout (K = 4), by keyboard."""

from __future__ import annotations

import re

import pytest

from annotation.models import Assignment, Comparison, Ranking, RankingItem
from annotation.models.assignments import AssignmentStatus, TaskKind
from tests.annotation.queue_helpers import candidates_add
from tests.browser.conftest import open_page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def pair_project(project, make_prompts):
    project.k = 2
    project.save(update_fields=["k"])  # layout "auto": side by side for two answers
    for prompt in make_prompts(project, 3):
        candidates_add(prompt, 2)
    return project


def _open_task(page, login, labeler) -> Assignment:
    login(page, labeler)
    page.click("button.start[data-kind=rank]")
    page.wait_for_url(re.compile(r"/tasks/\d+/$"))
    page.wait_for_selector("article.candidate")
    return Assignment.objects.get(labeler=labeler, status=AssignmentStatus.LEASED, kind=TaskKind.RANK)


def _next_task(page, previous_url: str) -> Assignment:
    page.wait_for_url(lambda url: url != previous_url and re.search(r"/tasks/\d+/$", url) is not None)
    page.wait_for_selector("article.candidate")
    return Assignment.objects.get(status=AssignmentStatus.LEASED, kind=TaskKind.RANK)


def _card(page, candidate_id: int):
    return page.locator(f"article.candidate[data-id='{candidate_id}']")


def test_side_by_side_by_keyboard_alone(page, live_server, login, labeler, pair_project, artifacts):
    assignment = _open_task(page, login, labeler)
    a, b = assignment.shown_order
    assert page.locator(".rank-widget.side-by-side .sbs-column").count() == 2
    assert page.inner_text("h1") == "Compare the two answers"
    left, right = _card(page, a).bounding_box(), _card(page, b).bounding_box()
    assert right["x"] > left["x"] + left["width"] - 1 and abs(right["y"] - left["y"]) < 2, "two columns"
    # The keyboard works at once (A has the focus), and Enter before a choice submits nothing.
    assert page.evaluate("document.activeElement.dataset.id") == str(a)
    press = page.keyboard.press
    press("Enter")
    assert "Choose first" in page.inner_text("#form-error")
    assert not Ranking.objects.exists()

    press("b")  # B is better
    assert page.locator(".sbs-choice.chosen").inner_text().startswith("B is better")
    assert _card(page, b).locator(".place").inner_text() == "Better"
    press("j"), press("r"), press("6")  # rate B (optional): 6
    page.screenshot(path=str(artifacts / "rank-side-by-side.png"), full_page=True)
    first_url = page.url
    press("Enter")
    second = _next_task(page, first_url)

    ranking = Ranking.objects.get(assignment=assignment)
    assert ranking.order == [[b], [a]] and ranking.none_acceptable is False
    assert list(Comparison.objects.filter(ranking=ranking).values_list("better_id", "worse_id")) == [(b, a)]
    assert dict(RankingItem.objects.filter(ranking=ranking).values_list("candidate_id", "rating")) == {
        a: None,
        b: 6,
    }

    # Both bad: a tie with none_acceptable (not lost as a plain tie), and no pair.
    c, d = second.shown_order
    press("t")
    assert _card(page, c).locator(".place").inner_text() == "Tie"
    press("n")
    assert _card(page, d).locator(".place").inner_text() == "Both bad"
    page.screenshot(path=str(artifacts / "rank-side-by-side-both-bad.png"), full_page=True)
    second_url = page.url
    press("Enter")
    third = _next_task(page, second_url)
    ranking = Ranking.objects.get(assignment=second)
    assert [sorted(group) for group in ranking.order] == [sorted([c, d])] and ranking.none_acceptable is True
    assert not Comparison.objects.filter(ranking=ranking).exists()

    # A plain tie stays a plain tie; a choice survives a reload (the draft keeps it).
    e, f = third.shown_order
    press("n"), press("t")
    page.wait_for_selector("#draft-status:has-text('Draft saved')")
    page.reload()
    page.wait_for_selector("article.candidate")
    assert page.locator(".sbs-choice.chosen").inner_text().startswith("Tie")
    third_url = page.url
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: url != third_url)
    ranking = Ranking.objects.get(assignment=third)
    assert [sorted(group) for group in ranking.order] == [sorted([e, f])] and ranking.none_acceptable is False


def test_side_by_side_columns_stack_on_a_phone(
    chromium, live_server, login, labeler, pair_project, artifacts
):
    with open_page(chromium, viewport=PHONE, has_touch=True, is_mobile=True) as page:
        assignment = _open_task(page, login, labeler)
        a, b = assignment.shown_order
        top, below = _card(page, a).bounding_box(), _card(page, b).bounding_box()
        assert below["y"] >= top["y"] + top["height"], "on a phone B sits under A"
        assert abs(below["x"] - top["x"]) < 2
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"the page is {width} px wide at 390 px"
        page.tap(".sbs-choice[data-choice=a]")
        assert _card(page, a).locator(".place").inner_text() == "Better"
        page.screenshot(path=str(artifacts / "rank-side-by-side-390.png"), full_page=True)
        first_url = page.url
        page.tap("#submit")
        page.wait_for_url(lambda url: url != first_url)
        assert Ranking.objects.get(assignment=assignment).order == [[a], [b]]


def test_none_acceptable_in_the_list_layout_by_keyboard(
    page, live_server, login, labeler, project, make_prompts, artifacts
):
    for prompt in make_prompts(project, 2):
        candidates_add(prompt, 4)
    assignment = _open_task(page, login, labeler)
    a, b, c, d = assignment.shown_order
    assert page.locator(".rank-widget.list-layout").count() == 1
    box = page.locator("input.none-acceptable")
    assert not box.is_checked()
    press = page.keyboard.press
    press("n")  # on the focused answer: none acceptable
    assert box.is_checked()
    press("n")
    assert not box.is_checked()
    press("n")
    press("4")  # the order still counts: A to the last place
    page.wait_for_selector("#draft-status:has-text('Draft saved')")
    page.reload()  # the mark is in the draft
    page.wait_for_selector("article.candidate")
    assert page.locator("input.none-acceptable").is_checked()
    page.screenshot(path=str(artifacts / "rank-none-acceptable.png"), full_page=True)
    page.locator(f"article.candidate[data-id='{b}']").focus()
    first_url = page.url
    press("Enter")
    page.wait_for_url(lambda url: url != first_url)
    ranking = Ranking.objects.get(assignment=assignment)
    assert ranking.order == [[b], [c], [d], [a]] and ranking.none_acceptable is True
    assert Comparison.objects.filter(ranking=ranking).count() == 6
