"""The converse task through the REST API, as a script (or the page) drives it: lease a turn, follow its
replies as they stream, submit the turn (ties, a rating, an edit, "none acceptable" with an own reply),
go on to the next turn, end the conversation; every submission retried with its key stores nothing twice.

The replies stream from real servers: a small OpenAI-compatible one that streams word by word
(tests/annotation/converse_server.py), and llama.cpp's own `python -m llama_cpp.server` on the packaged
model. The live task runs here as a worker would run it (live_generation_run), after the lease commits.
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from annotation.models import (
    Assignment,
    Candidate,
    Comparison,
    Demonstration,
    LiveGeneration,
    Prompt,
    Ranking,
    RankingItem,
)
from annotation.models.assignments import AssignmentStatus, TaskKind
from annotation.models.prompts import CandidateSource
from annotation.services.live import live_generation_run
from tests.annotation.converse_server import StreamingServer

pytestmark = pytest.mark.django_db


@pytest.fixture
def streaming_server():
    server = StreamingServer(words=6).start()
    yield server
    server.stop()


@pytest.fixture
def converse_project(project, streaming_server, settings):
    """The shared project, K = 3, three turns per conversation, replies from the streaming server."""
    settings.GENERATION_HTTP_MAX_ATTEMPTS = 1
    settings.GENERATION_HTTP_BACKOFF_SECONDS = 0.01
    settings.GENERATION_ALLOWED_HOSTS = ["*", "127.0.0.1"]
    project.k = 3
    project.converse_per_prompt = 1
    project.converse_max_turns = 3
    project.ratings_required = False
    project.min_demonstration_chars = 10
    project.generation_backend = "openai"
    project.generation_base_url = streaming_server.url
    project.generation_model = "streaming"
    project.save()
    return project


@pytest.fixture
def client(labeler) -> APIClient:
    client = APIClient()
    client.force_authenticate(labeler)
    return client


def _run_live(assignment_id: int) -> str:
    """What the `live` worker does for the turn's current attempt."""
    live = LiveGeneration.objects.get(assignment_id=assignment_id)
    return live_generation_run(live_id=live.pk, attempt=live.attempt)


def _events(response) -> list[tuple[str, object]]:
    """The (event, data) pairs of a server-sent-events response, comments skipped."""
    body = b"".join(response.streaming_content).decode()
    events = []
    for block in body.split("\n\n"):
        lines = [line for line in block.splitlines() if not line.startswith(":")]
        if not lines:
            continue
        name = next(line[len("event: ") :] for line in lines if line.startswith("event: "))
        data = next(line[len("data: ") :] for line in lines if line.startswith("data: "))
        events.append((name, json.loads(data)))
    return events


def _turn_ready(client: APIClient, assignment_id: int) -> dict:
    """Run the turn's replies to the end and return the task with its candidates."""
    assert _run_live(assignment_id) == "done"
    task = client.get(f"/api/labeler/assignments/{assignment_id}/").json()
    assert task["conversation"]["live"]["status"] == "done"
    return task


def _submit(client: APIClient, assignment_id: int, body: dict, *, expect: int = 201) -> dict:
    response = client.post(f"/api/labeler/assignments/{assignment_id}/turn/", body, format="json")
    assert response.status_code == expect, response.content
    return response.json()


def _stored() -> tuple[int, ...]:
    return (
        Ranking.objects.count(),
        RankingItem.objects.count(),
        Comparison.objects.count(),
        Candidate.objects.count(),
        Demonstration.objects.count(),
        Assignment.objects.count(),
        Prompt.objects.count(),
    )


def test_a_three_turn_conversation_through_the_api_with_idempotent_turns(
    client, converse_project, make_prompts, labeler, streaming_server
):
    (opening,) = make_prompts(converse_project, 1)

    # Turn 1: leased from the queue; its replies are queued for a worker, and cannot be ranked yet.
    work = client.get("/api/labeler/work/").json()["projects"][0]
    assert work["converse"] == 1
    response = client.post(
        "/api/labeler/assignments/lease/", {"kind": "converse", "project": converse_project.pk}, format="json"
    )
    assert response.status_code == 201, response.content
    task = response.json()
    first_id = task["id"]
    assert task["kind"] == "converse" and task["candidates"] == []
    assert task["conversation"] == {
        "turn": 1,
        "max_turns": 3,
        "can_continue": True,
        "previous_assignment": None,
        "live": {
            "status": "queued",
            "texts": ["", "", ""],
            "finished": [False] * 3,
            "error": "",
            "attempt": 1,
        },
    }
    early = _submit(client, first_id, {"idempotency_key": "t1", "order": [[1], [2], [3]]}, expect=409)
    assert early["error"]["code"] == "replies_pending"

    task = _turn_ready(client, first_id)
    a, b, c = (candidate["id"] for candidate in task["candidates"])
    live = client.get(f"/api/labeler/assignments/{first_id}/live/").json()
    assert live["status"] == "done" and live["finished"] == [True] * 3
    # The model's words, streamed into the row, are the candidates' texts (in slot order).
    assert [candidate["text"] for candidate in task["candidates"]] == live["texts"]
    assert all(text.startswith("Reply ") for text in live["texts"])
    assert len(streaming_server.requests) == 3 and all(r["stream"] for r in streaming_server.requests)
    # The stream of a finished turn: one snapshot with everything, then the end.
    stream = client.get(f"/api/labeler/assignments/{first_id}/live/stream", HTTP_ACCEPT="text/event-stream")
    assert stream.status_code == 200 and stream["Content-Type"].startswith("text/event-stream")
    assert [name for name, _ in _events(stream)] == ["snapshot", "end"]

    # B and C tie for first, A rated 2 and flagged; the labeler rewrites B, and says what comes next.
    turn_one = {
        "idempotency_key": "turn-1-key",
        "order": [[b, c], [a]],
        "items": [
            {"candidate": a, "rating": 2, "flags": ["hallucination"]},
            {"candidate": b, "rating": 6, "flags": []},
        ],
        "comment": "A makes things up.",
        "seconds_spent": 12.5,
        "edit": {"candidate": b, "text": "A better reply, edited by the labeler."},
        "next_user_turn": "Tell me more.",
    }
    result = _submit(client, first_id, turn_one)
    second_id = result["next_assignment"]
    edit = Candidate.objects.get(source=CandidateSource.EDIT)
    assert (edit.edited_from_id, edit.edited_by) == (b, labeler)
    # The edit ranks alone just above the group of the reply it came from.
    assert result["ranking"]["order"] == [[edit.pk], [b, c], [a]]
    assert result["ranking"]["none_acceptable"] is False
    before = _stored()
    again = _submit(client, first_id, turn_one, expect=200)
    assert again == result and _stored() == before

    # Turn 2: the conversation goes on with the edit and the labeler's message, leased to them at once.
    second = Assignment.objects.get(pk=second_id)
    assert (second.labeler, second.kind, second.status, second.previous_id) == (
        labeler,
        TaskKind.CONVERSE,
        AssignmentStatus.LEASED,
        first_id,
    )
    assert second.prompt.turns == [
        *opening.turns,
        {"role": "assistant", "content": "A better reply, edited by the labeler."},
        {"role": "user", "content": "Tell me more."},
    ]
    assert (second.prompt.parent_id, second.prompt.parent_candidate_id) == (opening.pk, edit.pk)
    task = _turn_ready(client, second_id)
    assert task["conversation"]["turn"] == 2 and task["conversation"]["previous_assignment"] == first_id
    d, e, f = (candidate["id"] for candidate in task["candidates"])
    # None is acceptable: the order still counts, and the labeler's own reply continues the conversation.
    too_short = {
        "idempotency_key": "turn-2-key",
        "order": [[e], [d], [f]],
        "none_acceptable": True,
        "reply": "No.",
    }
    assert _submit(client, second_id, too_short, expect=400)["error"]["code"]
    turn_two = {**too_short, "reply": "The reply a good assistant would give.", "next_user_turn": "Thanks!"}
    result = _submit(client, second_id, turn_two)
    assert result["ranking"]["none_acceptable"] is True and result["ranking"]["order"] == [[e], [d], [f]]
    third_id = result["next_assignment"]
    demonstration = Demonstration.objects.get()
    assert (demonstration.prompt_id, demonstration.text) == (
        second.prompt_id,
        "The reply a good assistant would give.",
    )
    before = _stored()
    assert _submit(client, second_id, turn_two, expect=200) == result and _stored() == before

    # Turn 3 is the last one the project allows: it can only end.
    task = _turn_ready(client, third_id)
    assert task["conversation"]["turn"] == 3 and task["conversation"]["can_continue"] is False
    g, h, i = (candidate["id"] for candidate in task["candidates"])
    refused = _submit(
        client,
        third_id,
        {"idempotency_key": "turn-3-key", "order": [[g], [h], [i]], "next_user_turn": "More?"},
        expect=400,
    )
    assert refused["error"]["code"] == "max_turns"
    turn_three = {
        "idempotency_key": "turn-3-key",
        "order": [[i], [g, h]],
        "items": [{"candidate": g, "rating": 5}],
    }
    result = _submit(client, third_id, turn_three)
    assert result["next_assignment"] is None
    before = _stored()
    assert _submit(client, third_id, turn_three, expect=200) == result and _stored() == before

    # Three ordinary rankings, one per turn, on a path of prompts: the tree the dashboards read.
    rankings = list(Ranking.objects.order_by("created_at"))
    assert [ranking.assignment_id for ranking in rankings] == [first_id, second_id, third_id]
    assert [ranking.prompt.converse_depth for ranking in rankings] == [0, 1, 2]
    assert rankings[2].prompt.parent_id == second.prompt_id
    assert rankings[2].prompt.turns[-2:] == [
        {"role": "assistant", "content": "The reply a good assistant would give."},
        {"role": "user", "content": "Thanks!"},
    ]
    assert set(Comparison.objects.filter(ranking=rankings[2]).values_list("better_id", "worse_id")) == {
        (i, g),
        (i, h),
    }
    assert Assignment.objects.filter(kind=TaskKind.CONVERSE, status=AssignmentStatus.SUBMITTED).count() == 3
    # The queue has nothing more for this labeler: they ranked the opening prompt's replies.
    assert client.get("/api/labeler/work/").json()["projects"][0]["converse"] == 0


def test_a_failed_backend_is_reported_and_a_retry_regenerates(
    client, converse_project, make_prompts, streaming_server
):
    make_prompts(converse_project, 1)
    task = client.post(
        "/api/labeler/assignments/lease/", {"kind": "converse", "project": converse_project.pk}, format="json"
    ).json()
    retry_url = f"/api/labeler/assignments/{task['id']}/live/retry/"
    # While it streams, a retry is refused: the replies are on their way.
    assert client.post(retry_url).json()["error"]["code"] == "replies_streaming"

    streaming_server.stop()  # the model server is gone
    assert _run_live(task["id"]) == "failed"
    live = client.get(f"/api/labeler/assignments/{task['id']}/live/").json()
    assert (
        live["status"] == "failed" and "not answering" in live["error"] and "retry" in live["error"].lower()
    )
    assert "sk-" not in live["error"]

    restarted = StreamingServer(port=streaming_server.port, words=4).start()
    try:
        response = client.post(retry_url)
        assert response.status_code == 200, response.content
        assert response.json() == {
            "status": "queued",
            "texts": ["", "", ""],
            "finished": [False] * 3,
            "error": "",
            "attempt": 2,
        }
        # The first attempt's message, delivered late, writes nothing; the retry's writes the replies.
        assert live_generation_run(live_id=LiveGeneration.objects.get().pk, attempt=1) == "skipped"
        assert _run_live(task["id"]) == "done"
    finally:
        restarted.stop()
    task = client.get(f"/api/labeler/assignments/{task['id']}/").json()
    assert len(task["candidates"]) == 3
    assert client.post(retry_url).json()["error"]["code"] == "replies_ready"


def test_a_turn_whose_worker_went_silent_is_stalled_and_can_be_retried(
    client, converse_project, make_prompts
):
    make_prompts(converse_project, 1)
    task = client.post(
        "/api/labeler/assignments/lease/", {"kind": "converse", "project": converse_project.pk}, format="json"
    ).json()
    # A worker took the turn and then died: the row says running, and nothing has changed for a minute.
    LiveGeneration.objects.filter(assignment_id=task["id"]).update(
        status="running", texts=["Half a re", "", ""], updated_at=timezone.now() - timedelta(minutes=1)
    )
    live = client.get(f"/api/labeler/assignments/{task['id']}/live/").json()
    assert live["status"] == "stalled" and "worker may have stopped" in live["error"]
    # The stream says the same and ends, rather than waiting for text that will not come.
    stream = client.get(f"/api/labeler/assignments/{task['id']}/live/stream")
    events = _events(stream)
    assert [name for name, _ in events] == ["snapshot", "end"]
    assert events[0][1]["texts"][0] == "Half a re" and events[-1][1]["status"] == "stalled"
    assert client.post(f"/api/labeler/assignments/{task['id']}/live/retry/").json()["attempt"] == 2
    assert _run_live(task["id"]) == "done"


def test_a_conversation_from_the_labelers_own_opening(client, converse_project, labeler):
    body = {"project": converse_project.pk, "opening": "Write me a haiku about rain."}
    refused = client.post("/api/labeler/converse/open/", body, format="json")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "own_opening_disabled"
    converse_project.converse_own_opening = True
    converse_project.save(update_fields=["converse_own_opening"])
    assert (
        client.post("/api/labeler/converse/open/", {**body, "opening": "  "}, format="json").status_code
        == 400
    )

    response = client.post("/api/labeler/converse/open/", body, format="json")
    assert response.status_code == 201, response.content
    task = response.json()
    assert task["prompt"]["turns"] == [{"role": "user", "content": "Write me a haiku about rain."}]
    assert Prompt.objects.get(pk=task["prompt"]["id"]).opened_by == labeler
    assert task["conversation"]["live"]["status"] == "queued"
    assert _turn_ready(client, task["id"])["candidates"]
    # The same opening again is the same prompt, whose replies this labeler already has.
    again = client.post("/api/labeler/converse/open/", body, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_ranked"


def test_another_labeler_cannot_read_or_submit_the_turn(
    client, converse_project, make_prompts, other_labeler
):
    make_prompts(converse_project, 1)
    task = client.post(
        "/api/labeler/assignments/lease/", {"kind": "converse", "project": converse_project.pk}, format="json"
    ).json()
    other = APIClient()
    other.force_authenticate(other_labeler)
    base = f"/api/labeler/assignments/{task['id']}"
    assert other.get(f"{base}/live/").status_code == 404
    assert other.get(f"{base}/live/stream").status_code == 404
    assert other.post(f"{base}/live/retry/").status_code == 404
    assert (
        other.post(f"{base}/turn/", {"idempotency_key": "x", "order": [[1]]}, format="json").status_code
        == 404
    )


def test_the_converse_endpoints_are_in_the_openapi_schema(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    for path in (
        "/api/labeler/converse/open/",
        "/api/labeler/assignments/{assignment_id}/live/",
        "/api/labeler/assignments/{assignment_id}/live/stream",
        "/api/labeler/assignments/{assignment_id}/live/retry/",
        "/api/labeler/assignments/{assignment_id}/turn/",
    ):
        assert path in schema["paths"], path
    turn = schema["paths"]["/api/labeler/assignments/{assignment_id}/turn/"]["post"]
    assert {"200", "201"} <= set(turn["responses"])


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.django_db(transaction=True)
def test_a_turn_streams_from_a_real_llama_cpp_server_through_the_openai_backend(
    client, project, make_prompts, settings, tmp_path
):
    """`python -m llama_cpp.server` on the packaged model, `stream: true`: the page's event stream
    shows the replies growing (deltas with partial text) before they end, and they become the turn's
    candidates."""
    from annotation.generation.embedded import packaged_model_path
    from tests.annotation.generation_servers import llama_server_start, llama_server_stop

    settings.GENERATION_ALLOWED_HOSTS = ["*", "127.0.0.1"]
    settings.GENERATION_HTTP_MAX_ATTEMPTS = 1
    # llama-cpp-python's server ends a running stream when another request arrives unless told not to.
    process, base_url = llama_server_start(
        model=packaged_model_path(),
        api_key="sk-converse-test",
        log_path=tmp_path / "llama.log",
        extra_arguments=("--interrupt_requests", "false"),
    )
    try:
        project.k, project.converse_per_prompt, project.max_tokens = 2, 1, 24
        project.temperature, project.stop_sequences = 1.0, ["USER:"]
        project.generation_backend, project.generation_base_url = "openai", base_url
        project.generation_model, project.generation_api_key = "gemma", "sk-converse-test"
        project.save()
        prompt = make_prompts(project, 1, prefix="Write one sentence about the sea. Question")[0]
        task = client.post(
            "/api/labeler/assignments/lease/", {"kind": "converse", "project": project.pk}, format="json"
        ).json()
        assert task["prompt"]["id"] == prompt.pk

        outcome: list[str] = []

        def work() -> None:  # the live worker, beside the web request that streams the row
            from django.db import connection

            try:
                outcome.append(_run_live(task["id"]))
            finally:
                connection.close()

        worker = threading.Thread(target=work)
        worker.start()
        stream = client.get(f"/api/labeler/assignments/{task['id']}/live/stream")
        events = _events(stream)
        worker.join(timeout=120)
        assert outcome == ["done"]
    finally:
        llama_server_stop(process)
    names = [name for name, _ in events]
    assert names[0] == "snapshot" and names[-1] == "end" and events[-1][1]["status"] == "done"
    # Text arrived piece by piece: some delta carried text while a reply was still unfinished.
    assert any(name == "delta" and data["slots"] and not all(data["finished"]) for name, data in events), (
        names
    )
    final_texts = events[-1][1]["texts"]
    task = client.get(f"/api/labeler/assignments/{task['id']}/").json()
    assert [candidate["text"] for candidate in task["candidates"]] == [text for text in final_texts if text]
    assert all(candidate.backend == "openai" for candidate in Candidate.objects.filter(prompt=prompt))
