"""Playwright fixtures: one headless Chromium per session, a fresh context and page per test.

Screenshots go to test-artifacts/ at the repository root (CI keeps that folder).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in this thread; Django's ORM in the same thread is safe
# here because the test drives the browser and the database one after the other, never together.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="session")
def chromium():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"needs Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@contextmanager
def open_page(chromium, *, bypass_csp: bool = True, **context_options):
    """A page in a fresh context that fails the test on any JavaScript error in it.

    The Content-Security-Policy is bypassed unless asked otherwise: Playwright's own helpers (such
    as `wait_for_function`) evaluate strings in the page, which the policy rightly forbids;
    tests/browser/test_csp.py checks the pages under the real policy.
    """
    context = chromium.new_context(bypass_csp=bypass_csp, **context_options)
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


@pytest.fixture
def page(chromium):
    with open_page(chromium, viewport={"width": 1280, "height": 900}) as page:
        yield page


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def login(live_server, password):
    def do_login(page, user, next_path: str = "/") -> None:
        page.goto(f"{live_server.url}/accounts/login/?next={next_path}")
        page.fill("input[name=username]", user.username)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}{next_path}")

    return do_login
