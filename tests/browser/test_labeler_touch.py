"""A labeler ranks on a phone: real touch input (CDP touch events) drags the cards, and nothing is wider than 390 px.

HTML5 drag and drop gets no touch events, so before rank-touch.js a finger could not reorder anything;
these drags go through Chromium's own input pipeline, touch-action and gesture detection included.
"""

from __future__ import annotations

import re

import pytest

from annotation.models import Assignment, Ranking
from annotation.models.assignments import AssignmentStatus, TaskKind
from tests.annotation.queue_helpers import candidates_add
from tests.browser.conftest import open_page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def phone_page(chromium):
    with open_page(chromium, viewport=PHONE, has_touch=True, is_mobile=True, device_scale_factor=2) as page:
        yield page


@pytest.fixture
def touch_rank_project(project, make_prompts):
    for prompt in make_prompts(project, 2):
        candidates_add(prompt, 4)
    return project


class Finger:
    """One finger on the touch screen, through CDP: the same path a phone's touches take in Chromium."""

    def __init__(self, page) -> None:
        self.page = page
        self.cdp = page.context.new_cdp_session(page)

    def _send(self, kind: str, points: list[dict]) -> None:
        self.cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    def down(self, point: tuple[float, float]) -> None:
        self.at = point
        self._send("touchStart", [{"x": point[0], "y": point[1]}])

    def move(self, point: tuple[float, float], *, steps: int = 12) -> None:
        (x0, y0), (x1, y1) = self.at, point
        for step in range(1, steps + 1):
            self._send(
                "touchMove", [{"x": x0 + (x1 - x0) * step / steps, "y": y0 + (y1 - y0) * step / steps}]
            )
            self.page.wait_for_timeout(16)  # a frame apart, as a finger moves
        self.at = point

    def up(self) -> None:
        self._send("touchEnd", [])
        self.page.wait_for_timeout(50)

    def drag(self, start: tuple[float, float], end: tuple[float, float]) -> None:
        self.down(start)
        self.move(end)
        self.up()


def _card(page, candidate_id: int):
    return page.locator(f"article.candidate[data-id='{candidate_id}']")


def _shown_ids(page) -> list[int]:
    return [int(x) for x in page.eval_on_selector_all("article.candidate", "cs => cs.map(c => c.dataset.id)")]


def _centre(box) -> tuple[float, float]:
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def _grip(page, candidate_id: int) -> tuple[float, float]:
    """Where a finger takes a card: its title ("Answer A"), in the card's header."""
    return _centre(_card(page, candidate_id).locator(".letter").bounding_box())


def _in_view(page, *candidate_ids: int) -> None:
    """Scroll the first card to the viewport's top; the others must then be in view too."""
    _card(page, candidate_ids[0]).evaluate("card => window.scrollBy(0, card.getBoundingClientRect().top - 8)")
    for candidate_id in candidate_ids:
        box = _card(page, candidate_id).bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"], (
            "the drag needs both cards in view"
        )


def _page_width(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


def test_rank_by_touch_drag_on_a_phone(
    phone_page, live_server, login, labeler, touch_rank_project, artifacts
):
    page = phone_page
    login(page, labeler)
    page.tap("button.start[data-kind=rank]")
    page.wait_for_url(re.compile(r"/tasks/\d+/$"))
    page.wait_for_selector("article.candidate")
    assignment = Assignment.objects.get(labeler=labeler, status=AssignmentStatus.LEASED, kind=TaskKind.RANK)
    a, b, c, d = assignment.shown_order
    assert _shown_ids(page) == [a, b, c, d]
    assert _page_width(page) <= PHONE["width"], f"the rank page is {_page_width(page)} px wide at 390 px"
    finger = Finger(page)

    # A swipe on an answer's text scrolls the page and moves nothing: only the title bar drags.
    page.evaluate("window.scrollTo(0, 0)")
    text = _card(page, b).locator(".candidate-text").bounding_box()
    x, y = _centre(text)
    finger.drag((x, y), (x, y - 150))
    page.wait_for_function("window.scrollY > 0")
    assert _shown_ids(page) == [a, b, c, d]

    # D, by its title, onto A's top edge: D becomes first.
    # D, by its title, onto A's top edge. A phone shows two cards at a time, so D starts at the bottom
    # of the screen with A above it, out of view: holding D near the top edge scrolls the page up.
    _card(page, d).evaluate(
        "card => window.scrollBy(0, card.getBoundingClientRect().bottom - innerHeight + 8)"
    )
    assert _card(page, a).bounding_box()["y"] < 0, "A must start out of view for this drag"
    x, y = _grip(page, d)
    finger.down((x, y))
    finger.move((x, 20))
    page.wait_for_function("window.scrollY === 0")
    assert page.locator(".candidate.dragging").count() == 1
    top = _card(page, a).bounding_box()
    finger.move((x, top["y"] + 4), steps=6)
    assert page.locator(f"article.candidate[data-id='{a}'].drop-before").count() == 1
    finger.up()
    assert _shown_ids(page) == [d, a, b, c]

    # B onto C's middle: they tie for 3rd.
    _in_view(page, b, c)
    finger.drag(_grip(page, b), _centre(_card(page, c).bounding_box()))
    assert page.locator(".rank-group.tied .group-label").inner_text() == "Tied for 3rd"
    assert {
        int(x)
        for x in page.locator(".rank-group.tied article.candidate").evaluate_all(
            "cs => cs.map(c => c.dataset.id)"
        )
    } == {b, c}
    assert page.locator(".candidate.dragging, .drop-before, .drop-after, .drop-tie").count() == 0

    # A tap on a title moves nothing.
    page.tap(f"article.candidate[data-id='{a}'] .letter")
    assert page.locator(".rank-group.tied").count() == 1 and _shown_ids(page)[:2] == [d, a]

    page.evaluate("window.scrollTo(0, 0)")
    assert _page_width(page) <= PHONE["width"], "the tied group and its Untie buttons overflow at 390 px"
    page.screenshot(path=str(artifacts / "rank-touch-390.png"), full_page=True)
    first_url = page.url
    page.tap("#submit")
    page.wait_for_url(lambda url: url != first_url and re.search(r"/tasks/\d+/$", url) is not None)

    ranking = Ranking.objects.get(assignment=assignment)
    assert ranking.labeler == labeler
    assert [set(group) for group in ranking.order] == [{d}, {a}, {b, c}]
