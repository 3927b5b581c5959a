"""A labeler's past work through the API and the page: their own submissions and skips, newest first, nobody else's.

Every row is made by the real API (lease, draft, submit, skip), as a labeler's page makes it.
"""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from annotation.models import Membership, Project
from annotation.models.projects import Role
from annotation.services.prompts import prompt_create
from tests.annotation.queue_helpers import candidates_add

pytestmark = pytest.mark.django_db

HISTORY = "/api/labeler/history/"
LONG_DEMONSTRATION = "A careful answer that explains every step. " * 20


def _prompts(project: Project, count: int, *, tag: str) -> None:
    """Multi-turn prompts whose first user turn is long, each with K answers ready to rank."""
    for index in range(count):
        prompt = prompt_create(
            project=project,
            turns=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": f"First question {tag} {index}: " + "tell me more " * 30},
                {"role": "assistant", "content": "Sure."},
                {"role": "user", "content": "And then what happened?"},
            ],
        )
        candidates_add(prompt, project.k, prefix=f"{tag} answer")


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _lease(client: APIClient, kind: str, project: Project) -> dict:
    response = client.post(
        "/api/labeler/assignments/lease/", {"kind": kind, "project": project.pk}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def _demonstrate(client: APIClient, project: Project, text: str, seconds: float) -> dict:
    task = _lease(client, "demonstrate", project)
    body = {"text": text, "idempotency_key": f"d{task['id']}", "seconds_spent": seconds}
    response = client.post(f"/api/labeler/assignments/{task['id']}/demonstration/", body, format="json")
    assert response.status_code == 201, response.content
    return task


def _rank(client: APIClient, task: dict, *, comment: str, seconds: float) -> list[dict]:
    """Rank the task's answers as [[D], [A, B], [C]] (letters as shown); returns the answers as shown."""
    a, b, c, d = task["candidates"]
    body = {
        "order": [[d["id"]], [a["id"], b["id"]], [c["id"]]],
        "items": [
            {"candidate": d["id"], "rating": 7},
            {"candidate": a["id"], "rating": 5},
            {"candidate": b["id"], "rating": 5},
            {"candidate": c["id"], "rating": 1, "flags": ["hallucination"]},
        ],
        "comment": comment,
        "seconds_spent": seconds,
        "idempotency_key": f"r{task['id']}",
    }
    response = client.post(f"/api/labeler/assignments/{task['id']}/ranking/", body, format="json")
    assert response.status_code == 201, response.content
    return task["candidates"]


@pytest.fixture
def work(project, labeler, other_labeler):
    """Alice: a skip closed after a ranking it was leased before, then a demonstration. Bob: work of his own."""
    _prompts(project, 6, tag="Main")
    alice = _client(labeler)
    held = _lease(alice, "demonstrate", project)
    alice.put(
        f"/api/labeler/assignments/{held['id']}/draft/", {"draft": {"seconds_spent": 12.5}}, format="json"
    )
    ranked = _lease(alice, "rank", project)
    answers = _rank(alice, ranked, comment="D is the only one that answers.", seconds=75)
    skip = alice.post(
        f"/api/labeler/assignments/{held['id']}/skip/", {"reason": "I lack the knowledge"}, format="json"
    )
    assert skip.status_code == 200, skip.content
    demonstrated = _demonstrate(alice, project, LONG_DEMONSTRATION, 42)

    bob = _client(other_labeler)
    _demonstrate(bob, project, "Bob wrote this demonstration himself.", 30)
    _rank(bob, _lease(bob, "rank", project), comment="Bob's private comment.", seconds=20)
    return {"skipped": held, "ranked": ranked, "answers": answers, "demonstrated": demonstrated}


def test_history_lists_own_work_newest_first_with_what_was_done(work, labeler):
    response = _client(labeler).get(HISTORY)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == 3 and body["next"] is None
    demonstration, skip, ranking = body["results"]
    # Newest first by when each was closed: the skip comes after the ranking though it was leased before.
    assert [row["kind"] for row in body["results"]] == ["demonstration", "skip", "ranking"]
    assert [row["id"] for row in body["results"]] == [
        work["demonstrated"]["id"],
        work["skipped"]["id"],
        work["ranked"]["id"],
    ]
    assert demonstration["at"] > skip["at"] > ranking["at"]

    for row in body["results"]:
        assert row["project"]["name"] == "Test project"
        # The first user turn, shortened: not the system turn, not the last user turn.
        assert row["prompt_excerpt"].startswith("First question Main ")
        assert row["prompt_excerpt"].endswith("…") and len(row["prompt_excerpt"]) <= 160
        assert "And then" not in row["prompt_excerpt"]

    assert demonstration["task_kind"] == "demonstrate" and demonstration["seconds_spent"] == 42
    assert demonstration["demonstration"]["excerpt"].startswith("A careful answer that explains every step.")
    assert demonstration["demonstration"]["excerpt"].endswith("…")
    assert len(demonstration["demonstration"]["excerpt"]) <= 280
    assert demonstration["ranking"] is None and demonstration["skip"] is None

    assert skip["task_kind"] == "demonstrate" and skip["skip"] == {"reason": "I lack the knowledge"}
    assert skip["seconds_spent"] == 12.5  # the clock as last autosaved: a skip sends no time
    assert skip["demonstration"] is None and skip["ranking"] is None

    assert ranking["task_kind"] == "rank" and ranking["seconds_spent"] == 75
    assert ranking["ranking"]["comment"] == "D is the only one that answers."
    a, b, c, d = (" ".join(answer["text"].split()) for answer in work["answers"])  # on one line
    # The order names each answer by the letter it was shown under and its text, never by its id.
    assert ranking["ranking"]["order"] == [
        [{"letter": "D", "excerpt": d, "rating": 7, "flags": []}],
        [
            {"letter": "A", "excerpt": a, "rating": 5, "flags": []},
            {"letter": "B", "excerpt": b, "rating": 5, "flags": []},
        ],
        [{"letter": "C", "excerpt": c, "rating": 1, "flags": ["hallucination"]}],
    ]


def test_only_ones_own_work_is_listed(work, labeler, other_labeler):
    mine = json.dumps(_client(labeler).get(HISTORY).json())
    assert "Bob" not in mine
    theirs = _client(other_labeler).get(HISTORY).json()
    assert [row["kind"] for row in theirs["results"]] == ["ranking", "demonstration"]
    assert theirs["results"][0]["ranking"]["comment"] == "Bob's private comment."
    assert theirs["results"][1]["demonstration"]["excerpt"] == "Bob wrote this demonstration himself."
    assert not {row["id"] for row in theirs["results"]} & {
        work[key]["id"] for key in ("skipped", "ranked", "demonstrated")
    }
    nobody = get_user_model().objects.create_user("carol", "carol@example.com", "pw")
    assert _client(nobody).get(HISTORY).json() == {"count": 0, "next": None, "previous": None, "results": []}


def test_paginated_like_the_other_lists(work, labeler):
    client = _client(labeler)
    first = client.get(HISTORY, {"limit": 2}).json()
    assert first["count"] == 3 and len(first["results"]) == 2 and "offset=2" in first["next"]
    rest = client.get(HISTORY, {"limit": 2, "offset": 2}).json()
    assert [row["kind"] for row in rest["results"]] == ["ranking"] and rest["previous"]


def test_filter_by_project_and_bad_values_are_clear_400s(work, project, labeler, other_labeler):
    elsewhere = Project.objects.create(
        name="Other project", k=4, rankings_per_prompt=1, demonstrations_per_prompt=1
    )
    Membership.objects.create(project=elsewhere, user=labeler, role=Role.LABELER)
    _prompts(elsewhere, 1, tag="Other")
    alice = _client(labeler)
    _demonstrate(alice, elsewhere, "An answer in the other project, long enough.", 9)

    assert alice.get(HISTORY).json()["count"] == 4
    only = alice.get(HISTORY, {"project": elsewhere.pk}).json()
    assert [(row["kind"], row["project"]["name"]) for row in only["results"]] == [
        ("demonstration", "Other project")
    ]
    assert alice.get(HISTORY, {"project": project.pk}).json()["count"] == 3

    for bad in ("abc", "0", "-3", "1.5", str(2**70)):
        response = alice.get(HISTORY, {"project": bad})
        assert response.status_code == 400, bad
        error = response.json()["error"]
        assert error["code"] == "invalid" and "project" in error["details"], bad
    # Bob is not in the other project and never worked there: it is as unknown to him as a missing one.
    bob = _client(other_labeler)
    for unknown in (elsewhere.pk, 987654):
        response = bob.get(HISTORY, {"project": unknown})
        assert response.status_code == 400
        assert response.json()["error"] == {
            "code": "unknown_project",
            "message": f"project {unknown} is not one of your projects",
            "details": {"project": unknown},
        }


def test_a_project_one_left_still_filters_ones_past_work(work, project, labeler):
    Membership.objects.filter(project=project, user=labeler).delete()
    assert _client(labeler).get(HISTORY, {"project": project.pk}).json()["count"] == 3


def test_history_needs_a_signed_in_user(work):
    response = APIClient().get(HISTORY)
    assert response.status_code in (401, 403) and "error" in response.json()


def test_reads_do_not_grow_with_the_rows(work, labeler, django_assert_max_num_queries):
    # Count, page, rankings, their items, answer excerpts, demonstrations; session and auth aside.
    with django_assert_max_num_queries(8):
        assert _client(labeler).get(HISTORY).json()["count"] == 3


def test_page_shows_own_work_and_refuses_a_bad_filter(work, client, labeler, password):
    client.login(username=labeler.username, password=password)
    home = client.get("/").content.decode()
    assert 'href="/history/"' in home
    task_page = client.get(f"/tasks/{work['ranked']['id']}/").content.decode()
    assert 'href="/history/"' in task_page

    page = client.get("/history/")
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count('class="card history-row"') == 3
    assert "D is the only one that answers." in html and "I lack the knowledge" in html
    assert "A careful answer that explains every step." in html
    assert "Bob" not in html
    assert work["answers"][3]["text"].strip() in html

    bad = client.get("/history/", {"project": "abc"})
    assert bad.status_code == 400 and "Choose a project from the list." in bad.content.decode()
    assert 'class="card history-row"' not in bad.content.decode()


def test_history_is_documented_in_the_schema():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    operation = schema["paths"]["/api/labeler/history/"]["get"]
    assert operation["operationId"] == "labeler_history"
    assert {"project", "limit", "offset"} <= {p["name"] for p in operation["parameters"]}
    body = operation["responses"]["200"]["content"]["application/json"]["schema"]
    paginated = schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]]
    assert {"count", "next", "previous", "results"} <= set(paginated["properties"])
