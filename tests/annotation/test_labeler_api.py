"""The labeler API end to end: refusals with their codes, idempotent retries, another labeler's 404."""

from __future__ import annotations

import json

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotation.models import Assignment, Candidate, Comparison, Demonstration, Ranking, RankingItem
from annotation.models.assignments import AssignmentStatus
from tests.annotation.queue_helpers import candidates_add

pytestmark = pytest.mark.django_db


@pytest.fixture
def rank_setup(project, labeler, make_prompts):
    (prompt,) = make_prompts(project, 1)
    candidates_add(prompt, 4)
    client = APIClient()
    client.force_authenticate(labeler)
    response = client.post("/api/labeler/assignments/lease/", {"kind": "rank"}, format="json")
    assert response.status_code == 201, response.content
    return client, response.json()


def _stored() -> tuple[int, int, int]:
    return Ranking.objects.count(), RankingItem.objects.count(), Comparison.objects.count()


def test_task_hides_provenance_and_other_labelers(rank_setup):
    _client, task = rank_setup
    text = json.dumps(task)
    assert "secret-model-name-7b" not in text and "embedded" not in text and "seed" not in text
    assert [set(c) for c in task["candidates"]] == [{"id", "text", "cut_off"}] * 4
    assert [c["cut_off"] for c in task["candidates"]] == [False] * 4


def test_task_marks_an_answer_cut_off_at_the_token_limit(project, labeler, make_prompts):
    (prompt,) = make_prompts(project, 1)
    candidates = candidates_add(prompt, 4)
    Candidate.objects.filter(pk=candidates[1].pk).update(finish_reason="length")
    Candidate.objects.filter(pk=candidates[2].pk).update(finish_reason="stop")
    client = APIClient()
    client.force_authenticate(labeler)

    task = client.post("/api/labeler/assignments/lease/", {"kind": "rank"}, format="json").json()

    cut_off = {c["id"]: c["cut_off"] for c in task["candidates"]}
    assert cut_off == {c.pk: c.pk == candidates[1].pk for c in candidates}
    assert {"key": "hallucination", "label": "Hallucination (makes up facts)"} in task["flags"]


def test_lease_again_returns_same_task_and_no_work_is_204(rank_setup, labeler, other_labeler):
    client, task = rank_setup
    again = client.post("/api/labeler/assignments/lease/", {"kind": "rank"}, format="json")
    assert again.status_code == 200 and again.json()["id"] == task["id"]
    client.force_authenticate(other_labeler)
    response = client.post("/api/labeler/assignments/lease/", {"kind": "demonstrate"}, format="json")
    assert response.status_code == 201
    assert (
        client.post("/api/labeler/assignments/lease/", {"kind": "demonstrate"}, format="json").json()["id"]
        == (response.json()["id"])
    )
    client.force_authenticate(labeler)  # the only demonstrate slot is now bob's
    assert (
        client.post("/api/labeler/assignments/lease/", {"kind": "demonstrate"}, format="json").status_code
        == 204
    )


@pytest.mark.parametrize(
    ("make_order", "code"),
    [
        (lambda ids: [[ids[0]], [ids[1]], [ids[2]], [ids[3]], [999_999]], "unknown_candidate"),
        (lambda ids: [[ids[0]], [ids[1]], [ids[2]]], "missing_candidate"),
        (lambda ids: [[ids[0], ids[1]], [ids[1]], [ids[2]], [ids[3]]], "repeated_candidate"),
        (lambda ids: [], "invalid_order"),
        (lambda ids: [[ids[0]], [], [ids[1], ids[2], ids[3]]], "invalid_order"),
    ],
)
def test_invalid_orders_are_refused_and_store_nothing(rank_setup, make_order, code):
    client, task = rank_setup
    ids = [c["id"] for c in task["candidates"]]
    response = client.post(
        f"/api/labeler/assignments/{task['id']}/ranking/",
        {"order": make_order(ids), "idempotency_key": "k"},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code
    assert _stored() == (0, 0, 0)
    assert Assignment.objects.get(pk=task["id"]).status == AssignmentStatus.LEASED


@pytest.mark.parametrize("rating", [0, 8, -1])
def test_rating_outside_1_to_7_is_refused(rank_setup, rating):
    client, task = rank_setup
    ids = [c["id"] for c in task["candidates"]]
    response = client.post(
        f"/api/labeler/assignments/{task['id']}/ranking/",
        {
            "order": [ids],
            "items": [{"candidate": ids[2], "rating": rating}],
            "idempotency_key": "k",
        },
        format="json",
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_rating" and error["details"] == {"candidate": ids[2], "rating": rating}
    assert _stored() == (0, 0, 0)


def test_unknown_flag_is_refused(rank_setup):
    client, task = rank_setup
    ids = [c["id"] for c in task["candidates"]]
    response = client.post(
        f"/api/labeler/assignments/{task['id']}/ranking/",
        {"order": [ids], "items": [{"candidate": ids[0], "flags": ["boring"]}], "idempotency_key": "k"},
        format="json",
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_flag"


def test_ranking_submit_stores_comparisons_and_retry_is_idempotent(rank_setup):
    client, task = rank_setup
    a, b, c, d = (cand["id"] for cand in task["candidates"])
    payload = {
        "order": [[c], [a, d], [b]],
        "items": [
            {"candidate": a, "rating": 5, "flags": []},
            {"candidate": b, "rating": 1, "flags": ["hallucination", "fails_instruction"]},
            {"candidate": c, "rating": 7},
            {"candidate": d, "rating": 5},
        ],
        "comment": "b makes up a date",
        "seconds_spent": 42.5,
        "idempotency_key": "submit-1",
    }
    url = f"/api/labeler/assignments/{task['id']}/ranking/"
    first = client.post(url, payload, format="json")
    assert first.status_code == 201, first.content
    assert first.json()["comparisons"] == 5 and first.json()["order"] == [[c], [a, d], [b]]
    retry = client.post(url, payload, format="json")
    assert retry.status_code == 200 and retry.json() == first.json()
    assert _stored() == (1, 4, 5)
    pairs = set(Comparison.objects.values_list("better_id", "worse_id"))
    assert pairs == {(c, a), (c, d), (c, b), (a, b), (d, b)}
    item_b = RankingItem.objects.get(candidate_id=b)
    assert (item_b.rating, item_b.flags) == (1, ["fails_instruction", "hallucination"])
    assignment = Assignment.objects.get(pk=task["id"])
    assert (assignment.status, assignment.idempotency_key) == (AssignmentStatus.SUBMITTED, "submit-1")
    # The same task with another key is a conflict, not a second ranking.
    other = client.post(url, {**payload, "idempotency_key": "submit-2"}, format="json")
    assert other.status_code == 409 and other.json()["error"]["code"] == "already_submitted"
    assert _stored() == (1, 4, 5)


def test_other_labelers_assignment_is_404_everywhere(rank_setup, other_labeler):
    _client, task = rank_setup
    ids = [c["id"] for c in task["candidates"]]
    intruder = APIClient()
    intruder.force_authenticate(other_labeler)
    base = f"/api/labeler/assignments/{task['id']}/"
    assert intruder.get(base).status_code == 404
    assert intruder.put(base + "draft/", {"draft": {"x": 1}}, format="json").status_code == 404
    assert intruder.post(base + "skip/", {"reason": "no"}, format="json").status_code == 404
    response = intruder.post(base + "ranking/", {"order": [ids], "idempotency_key": "x"}, format="json")
    assert response.status_code == 404 and response.json()["error"]["code"] == "assignment_not_found"
    assert _stored() == (0, 0, 0)


def test_anonymous_is_refused_and_token_auth_works(rank_setup, labeler):
    anonymous = APIClient()
    assert anonymous.get("/api/labeler/work/").status_code in (401, 403)
    assert anonymous.post("/api/labeler/assignments/lease/", {}, format="json").status_code in (401, 403)
    token = Token.objects.create(user=labeler)
    scripted = APIClient()
    scripted.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert scripted.get("/api/labeler/me/").json()["username"] == labeler.username
    work = scripted.get("/api/labeler/work/").json()
    assert work["projects"][0]["demonstrate"] == 1 and work["held"][0]["id"] == rank_setup[1]["id"]


def test_token_auth_refuses_unknown_key_and_inactive_user(labeler):
    token = Token.objects.create(user=labeler)
    scripted = APIClient()
    scripted.credentials(HTTP_AUTHORIZATION=f"Token {token.key[:-1]}x")
    response = scripted.get("/api/labeler/me/")
    assert response.status_code == 401 and response["WWW-Authenticate"] == "Token"
    assert response.json()["error"]["message"] == "Invalid token."
    labeler.is_active = False
    labeler.save(update_fields=["is_active"])
    scripted.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    response = scripted.get("/api/labeler/me/")
    assert response.status_code == 401 and response.json()["error"]["message"] == "User inactive or deleted."


def test_session_auth_requires_csrf(rank_setup, labeler, password):
    client = APIClient(enforce_csrf_checks=True)
    client.login(username=labeler.username, password=password)
    response = client.post("/api/labeler/assignments/lease/", {"kind": "rank"}, format="json")
    assert response.status_code == 403


def test_demonstration_refusals_then_submit_and_retry(project, labeler, make_prompts):
    make_prompts(project, 1)
    client = APIClient()
    client.force_authenticate(labeler)
    task = client.post("/api/labeler/assignments/lease/", {"kind": "demonstrate"}, format="json").json()
    url = f"/api/labeler/assignments/{task['id']}/demonstration/"
    empty = client.post(url, {"text": "  \n ", "idempotency_key": "d"}, format="json")
    assert empty.status_code == 400 and empty.json()["error"]["code"] == "empty_answer"
    assert "empty" in empty.json()["error"]["message"]
    short = client.post(url, {"text": "Too short.", "idempotency_key": "d"}, format="json")
    assert short.status_code == 400 and short.json()["error"]["code"] == "too_short"
    assert short.json()["error"]["details"] == {"chars": 10, "min_chars": project.min_demonstration_chars}
    wrong_kind = client.post(
        f"/api/labeler/assignments/{task['id']}/ranking/",
        {"order": [[1]], "idempotency_key": "d"},
        format="json",
    )
    assert wrong_kind.status_code == 400 and wrong_kind.json()["error"]["code"] == "wrong_kind"
    assert not Demonstration.objects.exists()
    payload = {"text": "  Paris is the capital of France.  ", "idempotency_key": "d", "seconds_spent": 30}
    first = client.post(url, payload, format="json")
    assert first.status_code == 201 and first.json()["text"] == "Paris is the capital of France."
    retry = client.post(url, payload, format="json")
    assert retry.status_code == 200 and retry.json() == first.json()
    assert Demonstration.objects.count() == 1
    skip = client.post(f"/api/labeler/assignments/{task['id']}/skip/", {"reason": "late"}, format="json")
    assert skip.status_code == 409


def test_idempotency_key_cannot_be_reused_on_another_task(project, labeler, make_prompts):
    make_prompts(project, 2)
    client = APIClient()
    client.force_authenticate(labeler)
    lease = "/api/labeler/assignments/lease/"
    first = client.post(lease, {"kind": "demonstrate"}, format="json").json()
    payload = {"text": "A long enough answer for the test.", "idempotency_key": "same"}
    assert (
        client.post(
            f"/api/labeler/assignments/{first['id']}/demonstration/", payload, format="json"
        ).status_code
        == 201
    )
    second = client.post(lease, {"kind": "demonstrate"}, format="json").json()
    reuse = client.post(f"/api/labeler/assignments/{second['id']}/demonstration/", payload, format="json")
    assert reuse.status_code == 409 and reuse.json()["error"]["code"] == "idempotency_key_reused"


def test_draft_round_trip_and_skip(project, labeler, make_prompts):
    make_prompts(project, 1)
    client = APIClient()
    client.force_authenticate(labeler)
    task = client.post("/api/labeler/assignments/lease/", {"kind": "demonstrate"}, format="json").json()
    base = f"/api/labeler/assignments/{task['id']}/"
    saved = client.put(base + "draft/", {"draft": {"text": "work in progress"}}, format="json")
    assert saved.status_code == 200 and saved.json()["draft_saved_at"]
    assert client.get(base).json()["draft"] == {"text": "work in progress"}
    bad = client.put(base + "draft/", {"draft": "text"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_draft"
    no_reason = client.post(base + "skip/", {"reason": ""}, format="json")
    assert no_reason.status_code == 400 and no_reason.json()["error"]["code"] == "reason_required"
    skipped = client.post(base + "skip/", {"reason": "I cannot judge this"}, format="json")
    assert skipped.status_code == 200 and skipped.json()["status"] == "skipped"
    assert (
        client.post("/api/labeler/assignments/lease/", {"kind": "demonstrate"}, format="json").status_code
        == 204
    )
    assert client.put(base + "draft/", {"draft": {"text": "x"}}, format="json").status_code == 409


def test_invalid_lease_input(project, labeler):
    client = APIClient()
    client.force_authenticate(labeler)
    response = client.post("/api/labeler/assignments/lease/", {"kind": "review"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid"
    missing = client.post("/api/labeler/assignments/lease/", {"project": 987654}, format="json")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "project_not_found"


def test_ids_beyond_the_database_and_deep_json_are_clean_refusals(rank_setup):
    client, task = rank_setup
    huge = 2**70
    assert client.get(f"/api/labeler/assignments/{huge}/").status_code == 404
    response = client.post("/api/labeler/assignments/lease/", {"project": huge}, format="json")
    assert response.status_code == 400 and "project" in json.dumps(response.json())
    nested = "[" * 100_000 + "]" * 100_000
    response = client.put(
        f"/api/labeler/assignments/{task['id']}/draft/", nested, content_type="application/json"
    )
    assert response.status_code == 400


def test_repeated_items_on_someone_elses_task_is_404(rank_setup, other_labeler):
    _client, task = rank_setup
    intruder = APIClient()
    intruder.force_authenticate(other_labeler)
    first = task["candidates"][0]["id"]
    body = {"order": [[first]], "items": [{"candidate": first}, {"candidate": first}], "idempotency_key": "k"}
    response = intruder.post(f"/api/labeler/assignments/{task['id']}/ranking/", body, format="json")
    assert response.status_code == 404 and response.json()["error"]["code"] == "assignment_not_found"


def test_work_sent_after_the_project_closed_or_membership_ended_is_refused(rank_setup, project, labeler):
    client, task = rank_setup
    ids = [candidate["id"] for candidate in task["candidates"]]
    body = {"order": [ids], "idempotency_key": "late"}
    url = f"/api/labeler/assignments/{task['id']}/ranking/"
    project.is_active = False
    project.save(update_fields=["is_active"])
    response = client.post(url, body, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "project_closed"
    project.is_active = True
    project.save(update_fields=["is_active"])
    project.memberships.filter(user=labeler).delete()
    response = client.post(url, body, format="json")  # removed: the task is gone for them (404)
    assert response.status_code == 404 and response.json()["error"]["code"] == "assignment_not_found"
    assert _stored() == (0, 0, 0) and Assignment.objects.get(pk=task["id"]).status == AssignmentStatus.LEASED
