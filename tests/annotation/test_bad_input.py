"""Bad input on every /api/ path answers a JSON 4xx in the one error shape and writes nothing.

Each case asserts the status, the shape `{"error": {"code", "message", ...}}` and that the rows it
could have touched are as they were. They run on whichever database DATABASE_URL names: the NUL and
surrogate cases were 500s only on PostgreSQL, so run them there too.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import connection, connections
from rest_framework.test import APIClient

from annotation.models import Assignment, Demonstration, ExportJob, Ranking
from annotation.services.exports import export_job_create
from config.api import MAX_PAGE_SIZE
from tests.annotation.queue_helpers import candidates_add

pytestmark = pytest.mark.django_db

HUGE = str(10**30)  # past 64 bits: the SQL LIMIT overflowed on both databases


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    error = response.json()["error"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


def stored() -> dict[str, object]:
    """Everything a bad request to the labeler API could have written."""
    return {
        "rankings": Ranking.objects.count(),
        "demonstrations": Demonstration.objects.count(),
        "assignments": sorted(
            Assignment.objects.values_list("pk", "status", "draft", "draft_saved_at", "skip_reason")
        ),
        "export_jobs": ExportJob.objects.count(),
    }


@pytest.fixture
def leases(project, labeler, make_prompts):
    """A labeler holding a ranking task and a demonstration task."""
    rank_prompt, demonstrate_prompt = make_prompts(project, 2)
    candidates_add(rank_prompt, 4)
    client = APIClient()
    client.force_authenticate(labeler)
    rank = client.post("/api/labeler/assignments/lease/", {"kind": "rank"}, format="json")
    demonstrate = client.post("/api/labeler/assignments/lease/", {"kind": "demonstrate"}, format="json")
    assert rank.status_code == demonstrate.status_code == 201
    return client, rank.json(), demonstrate.json()


# --- pagination --------------------------------------------------------------------------------


def test_a_huge_limit_or_offset_is_a_page_not_a_500(project, admin_user, leases):
    client, _rank, _demonstrate = leases
    admin = APIClient()
    admin.force_authenticate(admin_user)
    for _ in range(3):
        export_job_create(
            project=project, requested_by=admin_user, export_format="pairs", file_format="jsonl", filters={}
        )
    lists = [
        (admin, f"/api/projects/{project.pk}/exports/"),
        (admin, f"/api/projects/{project.pk}/reward-models/"),
        (client, "/api/labeler/history/"),
    ]
    for api, url in lists:
        for query in (f"limit={HUGE}", f"offset={HUGE}", f"limit={HUGE}&offset={HUGE}", "limit=-5&offset=x"):
            response = api.get(f"{url}?{query}")
            assert response.status_code == 200, (url, query, response.content[:300])
            assert set(response.json()) >= {"count", "results"}
    # The limit is clamped to MAX_PAGE_SIZE: the links onwards carry the clamped value.
    page = admin.get(f"/api/projects/{project.pk}/exports/?limit={HUGE}&offset=2").json()
    assert page["count"] == 3 and len(page["results"]) == 1
    assert f"limit={MAX_PAGE_SIZE}" in page["previous"]


# --- text the database cannot store -------------------------------------------------------------

NUL = "\\u0000"  # as the JSON escapes arrive on the wire
SURROGATE = "\\ud800"


def _bad_bodies(rank: dict, demonstrate: dict, bad: str) -> list[tuple[str, str, str]]:
    """(method, url, raw JSON body) for every field the issue found: draft values and keys, a
    ranking's order and comment, demonstration text, skip reason."""
    ids = [candidate["id"] for candidate in rank["candidates"]]
    rank_url = f"/api/labeler/assignments/{rank['id']}"
    demonstrate_url = f"/api/labeler/assignments/{demonstrate['id']}"
    good_order = json.dumps([[i] for i in ids])
    return [
        ("put", f"{rank_url}/draft/", '{"draft": {"answer": "a' + bad + 'b"}}'),
        ("put", f"{rank_url}/draft/", '{"draft": {"k' + bad + '": 1}}'),
        ("post", f"{rank_url}/ranking/", '{"idempotency_key": "k1", "order": [["' + bad + '"]]}'),
        (
            "post",
            f"{rank_url}/ranking/",
            '{"idempotency_key": "k2", "order": ' + good_order + ', "comment": "x' + bad + '"}',
        ),
        (
            "post",
            f"{demonstrate_url}/demonstration/",
            '{"idempotency_key": "k3", "text": "' + bad * 30 + '"}',
        ),
        ("post", f"{rank_url}/skip/", '{"reason": "' + bad + '"}'),
    ]


@pytest.mark.parametrize("bad", [NUL, SURROGATE, "\\udfff", "ok\\ud83dmissing-low-half"])
def test_nul_and_lone_surrogates_are_a_400_invalid_text_everywhere(leases, bad):
    client, rank, demonstrate = leases
    before = stored()
    for method, url, body in _bad_bodies(rank, demonstrate, bad):
        response = getattr(client, method)(url, data=body, content_type="application/json")
        error = assert_error(response, 400, "invalid_text")
        assert error["details"]["where"].startswith("$"), error
    assert stored() == before


def test_a_valid_surrogate_pair_is_text_like_any_other(leases):
    client, rank, _demonstrate = leases
    body = '{"draft": {"answer": "smile \\ud83d\\ude00"}}'
    response = client.put(
        f"/api/labeler/assignments/{rank['id']}/draft/", data=body, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    assert Assignment.objects.get(pk=rank["id"]).draft == {"answer": "smile \U0001f600"}


# --- bodies over the upload limit --------------------------------------------------------------


def test_a_body_over_the_upload_limit_is_a_json_413(leases, settings):
    client, rank, _demonstrate = leases
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    before = stored()
    url = f"/api/labeler/assignments/{rank['id']}/draft/"
    big = {"draft": {"answer": "x" * 20_000}}
    error = assert_error(client.put(url, big, format="json"), 413, "body_too_large")
    assert error["details"] == {"max_bytes": 10_000}
    assert_error(client.put(url, {"answer": "x" * 20_000}, format="multipart"), 413, "body_too_large")
    form = "draft=" + "x" * 20_000
    assert_error(
        client.put(url, form, content_type="application/x-www-form-urlencoded"), 413, "body_too_large"
    )
    assert stored() == before


def test_a_page_body_over_the_upload_limit_is_a_413_page(client, settings, labeler):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    response = client.post("/accounts/login/", {"username": "alice", "password": "x" * 20_000})
    assert response.status_code == 413
    assert not response["Content-Type"].startswith("application/json")


# --- unmatched URLs and ids --------------------------------------------------------------------


def test_unmatched_api_urls_and_ids_are_a_json_404(leases, admin_user):
    client, _rank, _demonstrate = leases
    before = stored()
    for url in (
        "/api/no-such-thing/",
        "/api/labeler/assignments/not-a-number/",
        "/api/labeler/assignments/999999999/",
        "/api/exports/999999999/",
        f"/api/labeler/assignments/{10**30}/",
        f"/api/exports/{10**30}/",
        f"/api/projects/{10**30}/exports/",
        f"/api/projects/{10**30}/reward-models/",
        f"/api/projects/{10**30}/quality/summary",
    ):
        assert_error(client.get(url), 404)
    assert_error(client.post("/api/labeler/assignments/abc/skip/", {"reason": "x"}, format="json"), 404)
    assert_error(client.post(f"/api/rankings/{10**30}/gold", {}, format="json"), 404)
    assert stored() == before


def test_unmatched_page_urls_keep_the_html_404(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


# --- the database unreachable -------------------------------------------------------------------


@contextmanager
def database_unreachable() -> Iterator[None]:
    """Make the next write of this test's connection fail as an outage does, on the real database.

    PostgreSQL: another connection terminates this one's backend (what a restart or failover does).
    SQLite: another connection holds the write lock while this one waits at most 50 ms for it
    ("database is locked", the OperationalError SQLite gives when it cannot serve a write).
    """
    connection.ensure_connection()
    if connection.vendor == "postgresql":
        pid = connection.connection.info.backend_pid
        other = connections.create_connection("default")
        try:
            with other.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        finally:
            other.close()
        try:
            yield
        finally:
            connection.close()  # the next query connects again
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout = 50")
    holder = sqlite3.connect(connection.settings_dict["NAME"], timeout=1, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        yield
    finally:
        holder.close()
        connection.close()  # back to the configured busy timeout


@pytest.mark.django_db(transaction=True)
def test_a_lost_database_is_a_json_503_with_retry_after(leases):
    client, rank, demonstrate = leases
    before = stored()
    with database_unreachable():
        response = client.put(
            f"/api/labeler/assignments/{rank['id']}/draft/", {"draft": {"answer": "x"}}, format="json"
        )
    error = assert_error(response, 503, "unavailable")
    assert error["details"] == {"service": "database"} and int(response["Retry-After"]) > 0
    with database_unreachable():
        response = client.post(
            f"/api/labeler/assignments/{demonstrate['id']}/demonstration/",
            {"idempotency_key": "k", "text": "A demonstration long enough to be accepted."},
            format="json",
        )
    assert_error(response, 503, "unavailable")
    assert stored() == before


@pytest.mark.django_db(transaction=True)
def test_a_lost_database_on_a_page_is_a_plain_503(client, labeler, password):
    with database_unreachable():
        response = client.post("/accounts/login/", {"username": labeler.username, "password": password})
    assert response.status_code == 503 and int(response["Retry-After"]) > 0
    assert response["Content-Type"].startswith("text/plain")
    assert "database" in response.content.decode()
