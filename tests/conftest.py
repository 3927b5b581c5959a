"""Shared fixtures and the rules for tests that need real services.

Tests marked `postgres` or `redis` run against the real servers named by DATABASE_URL and
CELERY_BROKER_URL. Without them they are skipped with the reason printed; with REQUIRE_SERVICES=1
(set by .ci/run) a missing service fails the test instead, so CI can never skip them silently.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from rest_framework.test import APIClient

from annotation.models import Membership, Project
from annotation.models.projects import Role
from annotation.services.prompts import prompt_create

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _unavailable(item: pytest.Item, reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"REQUIRE_SERVICES=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def _database_is_postgres() -> bool:
    return settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


def _broker_is_redis() -> bool:
    return settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://"))


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("postgres") and not _database_is_postgres():
        _unavailable(item, "needs PostgreSQL: set DATABASE_URL=postgres://...")
    if item.get_closest_marker("redis") and not _broker_is_redis():
        _unavailable(item, "needs Redis: set CELERY_BROKER_URL=redis://...")
    if item.get_closest_marker("shared_data") and not SHARED_DATA.is_dir():
        _unavailable(item, f"needs the shared data folder at {SHARED_DATA}")
    if item.get_closest_marker("browser") and not os.path.exists("/usr/bin/chromium"):
        _unavailable(item, "needs Chromium at /usr/bin/chromium (apt-get install chromium)")


@pytest.fixture(autouse=True)
def _no_requests_counted_yet():
    """Each test starts with empty API throttle counts (config/settings.py's DRF throttles).

    They live in the cache, which outlives a test, and on SQLite a rolled-back test's user ids come
    back in the next one: without this, one test's requests would count against another's user.
    """
    cache.clear()


@pytest.fixture
def password() -> str:
    return "correct-horse-battery"


@pytest.fixture
def admin_user(db, password):
    return get_user_model().objects.create_superuser("admin", "admin@example.com", password)


@pytest.fixture
def labeler(db, password):
    return get_user_model().objects.create_user("alice", "alice@example.com", password)


@pytest.fixture
def other_labeler(db, password):
    return get_user_model().objects.create_user("bob", "bob@example.com", password)


@pytest.fixture
def project(db, labeler, other_labeler) -> Project:
    project = Project.objects.create(
        name="Test project", k=4, rankings_per_prompt=2, demonstrations_per_prompt=1
    )
    Membership.objects.create(project=project, user=labeler, role=Role.LABELER)
    Membership.objects.create(project=project, user=other_labeler, role=Role.LABELER)
    return project


@pytest.fixture
def make_prompts():
    def make(project: Project, count: int, *, prefix: str = "Question") -> list:
        return [
            prompt_create(project=project, turns=[{"role": "user", "content": f"{prefix} {index}?"}])
            for index in range(count)
        ]

    return make


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()
