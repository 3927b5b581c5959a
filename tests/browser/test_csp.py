"""Every page runs under the Content-Security-Policy (config/settings.py) in real Chromium: the
labeler's home and a rank task, the dashboards, Swagger UI at /api/docs/ and the admin, each used
a little, with no violation reported in the console."""

from __future__ import annotations

import re

import pytest

from tests.annotation.queue_helpers import candidates_add
from tests.browser.conftest import open_page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIOLATION = re.compile(r"Content[- ]Security[- ]Policy", re.IGNORECASE)


@pytest.fixture
def page(chromium):
    """This module's pages run under the real policy (the suite's other pages bypass it)."""
    with open_page(chromium, bypass_csp=False, viewport={"width": 1280, "height": 900}) as page:
        yield page


@pytest.fixture
def violations(page) -> list[str]:
    """What the page reports about the policy: console messages, and securitypolicyviolation events
    (an init script runs outside the page's policy, so it cannot be blocked itself)."""
    found: list[str] = []
    page.on("console", lambda message: found.append(message.text) if VIOLATION.search(message.text) else None)
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => console.error("
        "'Content-Security-Policy violation: ' + e.violatedDirective + ' ' + e.blockedURI + ' '"
        " + e.sourceFile + ':' + e.lineNumber));"
    )
    return found


def _no_violations(page, found: list[str], where: str) -> None:
    page.wait_for_load_state("networkidle")
    assert page.evaluate("document.readyState") == "complete"
    assert not found, f"{where}: {found}"


def test_labeler_home_and_rank_task_pass_the_policy(
    page, violations, live_server, login, labeler, project, make_prompts
):
    for prompt in make_prompts(project, 2):
        candidates_add(prompt, 4)
    login(page, labeler)
    page.wait_for_selector("button.start[data-kind=rank]")
    _no_violations(page, violations, "labeler home")

    page.click("button.start[data-kind=rank]")
    page.wait_for_url(re.compile(r"/tasks/\d+/$"))
    page.wait_for_selector("article.candidate")
    # Scripts did their work: the cards are drawn, and a keyboard move and a rating take effect.
    first = page.locator("article.candidate").first
    first.locator("select.rating").select_option("5")
    page.keyboard.press("Escape")
    _no_violations(page, violations, "rank task")


def test_dashboards_api_docs_and_admin_pass_the_policy(
    page, violations, live_server, login, admin_user, project, make_prompts
):
    make_prompts(project, 3)
    login(page, admin_user, "/dashboard/")
    _no_violations(page, violations, "dashboard home")

    page.goto(f"{live_server.url}/dashboard/projects/{project.pk}/")
    page.wait_for_selector("main")
    _no_violations(page, violations, "project dashboard")

    page.goto(f"{live_server.url}/dashboard/projects/{project.pk}/exports/")
    _no_violations(page, violations, "exports page")

    page.goto(f"{live_server.url}/api/docs/")
    # Swagger UI's scripts ran and drew the operations from the schema it fetched.
    page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
    page.locator(".swagger-ui .opblock-summary").first.click()
    page.wait_for_selector(".swagger-ui .opblock-body")
    _no_violations(page, violations, "/api/docs/")

    for path in ("/admin/", f"/admin/annotation/project/{project.pk}/change/", "/admin/auth/user/"):
        page.goto(f"{live_server.url}{path}")
        page.wait_for_selector("#content")
        _no_violations(page, violations, path)
