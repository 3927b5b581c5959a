"""The labeler's past work page in real Chromium on a 390 px phone: reached from home, their own work only."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.annotation.queue_helpers import candidates_add

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

UNBROKEN = "https://example.org/" + "a-very-long-path-segment" * 12  # one word wider than a phone


def _submit_work(user, project, *, demonstration: str, comment: str) -> None:
    """A demonstration and a ranking through the API, as the task pages send them."""
    client = APIClient()
    client.force_authenticate(user)
    lease = "/api/labeler/assignments/lease/"
    task = client.post(lease, {"kind": "demonstrate", "project": project.pk}, format="json").json()
    body = {"text": demonstration, "idempotency_key": f"d{task['id']}", "seconds_spent": 95}
    assert (
        client.post(f"/api/labeler/assignments/{task['id']}/demonstration/", body, format="json").status_code
        == 201
    )
    task = client.post(lease, {"kind": "rank", "project": project.pk}, format="json").json()
    ids = [candidate["id"] for candidate in task["candidates"]]
    body = {
        "order": [[ids[1]], [ids[0], ids[2]], [ids[3]]],
        "comment": comment,
        "idempotency_key": f"r{task['id']}",
    }
    assert (
        client.post(f"/api/labeler/assignments/{task['id']}/ranking/", body, format="json").status_code == 201
    )


def test_past_work_on_a_390_px_phone(
    page, live_server, login, labeler, other_labeler, project, make_prompts, artifacts
):
    for prompt in make_prompts(project, 4):
        candidates_add(prompt, project.k)
    _submit_work(
        labeler, project, demonstration=f"Alice's own answer, with a link: {UNBROKEN}", comment="Alice's note"
    )
    _submit_work(
        other_labeler, project, demonstration="Bob's answer, which is his alone.", comment="Bob's note"
    )

    page.set_viewport_size({"width": 390, "height": 844})
    login(page, labeler)
    page.click("#history-link")
    page.wait_for_url(f"{live_server.url}/history/")
    rows = page.locator("li.history-row")
    assert rows.count() == 2
    assert [rows.nth(i).get_attribute("data-kind") for i in range(2)] == ["ranking", "demonstration"]
    ranking = rows.nth(0)
    assert "Alice's note" in ranking.inner_text()
    assert ranking.locator("ol.history-order > li").count() == 3
    assert ranking.locator("ol.history-order > li.tied .history-answer").count() == 2
    assert "Alice's own answer" in rows.nth(1).inner_text() and "1 min 35 s" in rows.nth(1).inner_text()
    assert "Bob" not in page.inner_text("body")

    page.screenshot(path=str(artifacts / "history-390.png"), full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the history page is {width} px wide at 390 px"

    page.select_option("#history-project", str(project.pk))
    page.click(".history-filter button[type=submit]")
    page.wait_for_url(f"{live_server.url}/history/?project={project.pk}")
    assert page.locator("li.history-row").count() == 2
