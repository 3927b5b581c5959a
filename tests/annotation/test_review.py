"""Review and adjudication through the real API: sampling on submission, a reviewer's accept or reject
(what exports, training and the queue then read, and the record of who and why), the labeler's note in
their history, nobody reviewing their own work, and adjudication yielding gold without a labeler's slot.

Every submission is made by the labeler API (lease, submit), as the pages make them.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from annotation.models import Demonstration, Membership, Project, Prompt, QualityEvent, Ranking
from annotation.models.projects import Role
from annotation.models.quality import QualityAction, QualityState
from annotation.models.rankings import RankingSource
from annotation.services.prompts import prompt_create
from annotation.services.review import ranking_review_request
from rewards.selectors.reward_models import training_data
from tests.annotation.queue_helpers import candidates_add

pytestmark = pytest.mark.django_db


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _member(project: Project, username: str, role: str):
    user = get_user_model().objects.create_user(username, f"{username}@example.com", "pw-123456789")
    Membership.objects.create(project=project, user=user, role=role)
    return user


def _prompt(project: Project, text: str = "Which answer is best?") -> Prompt:
    prompt = prompt_create(project=project, turns=[{"role": "user", "content": text}])
    candidates_add(prompt, project.k, prefix=f"Answer for {text}")
    return prompt


def _lease(client: APIClient, project: Project, kind: str = "rank") -> dict | None:
    response = client.post(
        "/api/labeler/assignments/lease/", {"kind": kind, "project": project.pk}, format="json"
    )
    assert response.status_code in (200, 201, 204), response.content
    return response.json() if response.status_code != 204 else None


def _rank(client: APIClient, project: Project, *, reverse: bool = False, comment: str = "") -> dict:
    """Lease a rank task and submit the answers by candidate id (or reversed: the shown order differs
    per labeler), rating the first 6 and the last 2 with a flag; returns the task."""
    task = _lease(client, project)
    assert task is not None
    ids = sorted(candidate["id"] for candidate in task["candidates"])
    ids = ids[::-1] if reverse else ids
    body = {
        "order": [[cid] for cid in ids],
        "items": [
            {"candidate": ids[0], "rating": 6},
            {"candidate": ids[-1], "rating": 2, "flags": ["hallucination"]},
        ],
        "comment": comment,
        "seconds_spent": 30,
        "idempotency_key": f"rank-{task['id']}",
    }
    response = client.post(f"/api/labeler/assignments/{task['id']}/ranking/", body, format="json")
    assert response.status_code == 201, response.content
    return task


def _demonstrate(client: APIClient, project: Project, text: str) -> dict:
    task = _lease(client, project, "demonstrate")
    assert task is not None
    body = {"text": text, "idempotency_key": f"demo-{task['id']}", "seconds_spent": 40}
    response = client.post(f"/api/labeler/assignments/{task['id']}/demonstration/", body, format="json")
    assert response.status_code == 201, response.content
    return task


def _next(client: APIClient, project: Project) -> dict:
    response = client.get(f"/api/projects/{project.pk}/review/next")
    assert response.status_code == 200, response.content
    return response.json()


def _decide(client: APIClient, project: Project, item: dict, decision: str, reason: str = ""):
    body = {"kind": item["kind"], "id": item["id"], "decision": decision, "reason": reason}
    return client.post(f"/api/projects/{project.pk}/review/decide", body, format="json")


@pytest.fixture
def sampled(project: Project) -> Project:
    project.review_sample_rate = 1.0
    project.save(update_fields=["review_sample_rate"])
    return project


@pytest.fixture
def reviewer(project: Project):
    return _member(project, "rita", Role.REVIEWER)


def test_sampling_at_rate_one_sends_every_submission_to_review(sampled, labeler, other_labeler):
    _prompt(sampled)
    _rank(_client(labeler), sampled)
    _rank(_client(other_labeler), sampled)
    _demonstrate(_client(labeler), sampled, "A careful answer a good assistant would give.")

    rankings = list(Ranking.objects.filter(prompt__project=sampled))
    demonstrations = list(Demonstration.objects.filter(prompt__project=sampled))
    assert len(rankings) == 2 and len(demonstrations) == 1
    assert {r.quality_state for r in rankings} == {QualityState.UNDER_REVIEW}
    assert demonstrations[0].quality_state == QualityState.UNDER_REVIEW
    events = QualityEvent.objects.filter(action=QualityAction.REVIEW_REQUEST)
    assert events.count() == 3
    assert {(e.reason, e.actor_id, e.state_before, e.state_after) for e in events} == {
        ("sample", None, QualityState.COUNTED, QualityState.UNDER_REVIEW)
    }
    # Under review still counts until decided: the prompt is full, nobody else gets it.
    assert Prompt.objects.get(project=sampled).rankings_done == 2


def test_rate_zero_sends_nothing_and_a_signal_can_send_one(project, labeler):
    _prompt(project)
    _rank(_client(labeler), project)
    ranking = Ranking.objects.get(prompt__project=project)
    assert ranking.quality_state == QualityState.COUNTED
    assert not QualityEvent.objects.exists()
    ranking_review_request(ranking_id=ranking.pk, reason="position_bias")
    ranking_review_request(ranking_id=ranking.pk, reason="position_bias")  # a signal firing twice asks once
    ranking.refresh_from_db()
    assert ranking.quality_state == QualityState.UNDER_REVIEW
    assert list(QualityEvent.objects.values_list("action", "reason")) == [
        (QualityAction.REVIEW_REQUEST, "position_bias")
    ]


def test_reviewer_sees_the_work_as_given_and_accepting_counts_it_again(sampled, labeler, reviewer):
    prompt = _prompt(sampled, "Explain tides.")
    task = _rank(_client(labeler), sampled, reverse=True, comment="The last one makes things up.")
    client = _client(reviewer)
    body = _next(client, sampled)
    assert body["waiting"] == 1
    item = body["item"]
    assert item["kind"] == "ranking" and item["labeler"] == "alice"
    assert item["prompt"]["turns"] == [{"role": "user", "content": "Explain tides."}]
    assert item["requests"][0]["reason"] == "sample"
    answers = item["ranking"]["answers"]
    # The answers in the order the labeler was shown them, with their texts, ratings and flags.
    assert [a["id"] for a in answers] == [c["id"] for c in task["candidates"]]
    assert [a["letter"] for a in answers] == ["A", "B", "C", "D"]
    assert answers[0]["text"] == prompt.candidates.get(pk=answers[0]["id"]).text
    by_rank = sorted(c["id"] for c in task["candidates"])[::-1]
    assert item["ranking"]["order"] == [[cid] for cid in by_rank]
    by_id = {a["id"]: a for a in answers}
    assert by_id[by_rank[0]]["rating"] == 6
    assert by_id[by_rank[-1]]["rating"] == 2 and by_id[by_rank[-1]]["flags"] == ["hallucination"]
    assert item["ranking"]["comment"] == "The last one makes things up."

    response = _decide(client, sampled, item, "accept")
    assert response.status_code == 200, response.content
    assert response.json()["quality_state"] == QualityState.COUNTED
    event = QualityEvent.objects.get(action=QualityAction.REVIEW_ACCEPT)
    assert event.actor == reviewer and event.state_after == QualityState.COUNTED
    assert _next(client, sampled) == {"item": None, "waiting": 0}
    # Decided: a second decision is a conflict, not a second event.
    assert _decide(client, sampled, item, "reject", "late").status_code == 409


def test_reject_stops_counting_frees_the_slot_and_is_recorded(
    sampled, labeler, other_labeler, reviewer, password
):
    admin = _member(sampled, "ada", Role.ADMIN)
    carol = _member(sampled, "carol", Role.LABELER)
    _prompt(sampled)
    _rank(_client(labeler), sampled)
    _rank(_client(other_labeler), sampled)
    assert _lease(_client(carol), sampled) is None  # overlap 2: the prompt is full

    def exported_pairs() -> int:
        response = _client(admin).get(f"/api/projects/{sampled.pk}/exports/count", {"export_format": "pairs"})
        assert response.status_code == 200, response.content
        return response.json()["rows"]

    def trained() -> int:
        return training_data(project=sampled, cutoff=timezone.now()).summary["rankings"]

    assert exported_pairs() == 12 and trained() == 2  # under review still counts: 2 rankings x C(4, 2)

    client = _client(reviewer)
    alices = Ranking.objects.get(labeler=labeler)
    item = _next(client, sampled)["item"]
    while item["id"] != alices.pk:  # the oldest first: Alice's; accept anything else
        _decide(client, sampled, item, "accept")
        item = _next(client, sampled)["item"]
    refused = _decide(client, sampled, item, "reject", "")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "reason_required"
    response = _decide(client, sampled, item, "reject", "Ranked in the order shown without reading.")
    assert response.status_code == 200, response.content

    alices.refresh_from_db()
    assert alices.quality_state == QualityState.REJECTED
    event = QualityEvent.objects.get(action=QualityAction.REVIEW_REJECT)
    assert (event.actor, event.ranking_id, event.reason) == (
        reviewer,
        alices.pk,
        "Ranked in the order shown without reading.",
    )
    assert exported_pairs() == 6 and trained() == 1
    # The slot returned to the queue: a third labeler gets the prompt.
    task = _lease(_client(carol), sampled)
    assert task is not None and task["prompt"]["id"] == alices.prompt_id


def test_the_labeler_reads_the_note_in_history(sampled, labeler, reviewer, password):
    _prompt(sampled, "First")
    _prompt(sampled, "Second")
    alice = _client(labeler)
    _rank(alice, sampled)
    _demonstrate(alice, sampled, "A demonstration long enough to count as one.")
    client = _client(reviewer)
    for _ in range(2):
        item = _next(client, sampled)["item"]
        if item["kind"] == "ranking":
            _decide(client, sampled, item, "reject", "Answer C is the best; you put it last.")
        else:
            _decide(client, sampled, item, "accept", "Clear and correct.")

    rows = {row["kind"]: row for row in alice.get("/api/labeler/history/").json()["results"]}
    assert rows["ranking"]["review"]["outcome"] == "rejected"
    assert rows["ranking"]["review"]["note"] == "Answer C is the best; you put it last."
    assert rows["demonstration"]["review"]["outcome"] == "accepted"
    assert rows["demonstration"]["review"]["note"] == "Clear and correct."

    page = APIClient()
    assert page.login(username="alice", password=password)
    html = page.get("/history/").content.decode()
    assert "Rejected in review" in html and "Answer C is the best; you put it last." in html
    assert "Accepted in review" in html and "Clear and correct." in html


def test_history_shows_pending_without_the_signal_name(project, labeler):
    _prompt(project)
    _rank(_client(labeler), project)
    ranking_review_request(ranking_id=Ranking.objects.get().pk, reason="repeated_order")
    row = _client(labeler).get("/api/labeler/history/").json()["results"][0]
    assert row["review"]["outcome"] == "pending" and row["review"]["note"] == ""


def test_a_reviewer_never_reviews_their_own_work(sampled, reviewer):
    # Admins may try tasks, and review: their own rankings are someone else's to judge.
    admin = _member(sampled, "ada", Role.ADMIN)
    _prompt(sampled)
    _rank(_client(admin), sampled)
    own = Ranking.objects.get(labeler=admin)
    assert _next(_client(admin), sampled) == {"item": None, "waiting": 0}
    response = _decide(_client(admin), sampled, {"kind": "ranking", "id": own.pk}, "accept")
    assert response.status_code == 403 and response.json()["error"]["code"] == "own_work"
    assert _next(_client(reviewer), sampled)["item"]["id"] == own.pk


def test_two_reviewers_get_different_items(sampled, labeler, other_labeler, reviewer):
    second = _member(sampled, "sam", Role.REVIEWER)
    _prompt(sampled)
    _rank(_client(labeler), sampled)
    _rank(_client(other_labeler), sampled)
    first_item = _next(_client(reviewer), sampled)["item"]
    second_item = _next(_client(second), sampled)["item"]
    assert first_item["id"] != second_item["id"]
    assert _next(_client(reviewer), sampled)["item"]["id"] == first_item["id"]  # still theirs


def test_labelers_may_not_review_and_other_projects_items_are_not_found(sampled, labeler, reviewer):
    _prompt(sampled)
    _rank(_client(labeler), sampled)
    ranking = Ranking.objects.get()
    assert _client(labeler).get(f"/api/projects/{sampled.pk}/review/next").status_code == 403
    other = Project.objects.create(name="Other")
    Membership.objects.create(project=other, user=reviewer, role=Role.REVIEWER)
    response = _decide(_client(reviewer), other, {"kind": "ranking", "id": ranking.pk}, "accept")
    assert response.status_code == 404


@pytest.fixture
def disputed(project, labeler, other_labeler):
    """A prompt Alice and Bob ranked in opposite orders, in a project that adjudicates below 0.5
    and asks for three rankings of each prompt."""
    project.adjudication_threshold = 0.5
    project.rankings_per_prompt = 3
    project.save(update_fields=["adjudication_threshold", "rankings_per_prompt"])
    prompt = _prompt(project, "Disputed")
    _rank(_client(labeler), project)
    _rank(_client(other_labeler), project, reverse=True)
    return prompt


def test_adjudication_yields_gold_without_taking_a_labeler_slot(disputed, project, reviewer):
    client = _client(reviewer)
    listed = client.get(f"/api/projects/{project.pk}/adjudication/").json()
    assert listed["threshold"] == 0.5
    assert [(row["prompt_id"], row["agreement"], row["ranking_count"]) for row in listed["prompts"]] == [
        (disputed.pk, 0.0, 2)
    ]
    assert listed["prompts"][0]["title"] == disputed.title  # the prompt's own title, as everywhere
    detail = client.get(f"/api/projects/{project.pk}/adjudication/{disputed.pk}").json()
    assert sorted(r["labeler"] for r in detail["rankings"]) == ["alice", "bob"]
    ids = [answer["id"] for answer in detail["answers"]]
    assert sorted(ids) == sorted(disputed.candidates.values_list("pk", flat=True))
    assert all(answer["text"] for answer in detail["answers"])
    done_before = Prompt.objects.get(pk=disputed.pk).rankings_done

    order = [[ids[1]], [ids[0], ids[2]], [ids[3]]]
    response = client.post(
        f"/api/projects/{project.pk}/adjudication/{disputed.pk}",
        {"order": order, "reason": "B answers the question"},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["adjudicated"]["order"] == order and response.json()["adjudicated"]["is_gold"]
    gold = Ranking.objects.get(prompt=disputed, source=RankingSource.ADJUDICATION)
    assert gold.is_gold and gold.labeler is None and gold.order == order
    event = QualityEvent.objects.get(ranking=gold)
    assert event.action == QualityAction.GOLD_MARK and event.actor == reviewer
    assert "B answers the question" in event.reason
    assert Prompt.objects.get(pk=disputed.pk).rankings_done == done_before == 2
    assert client.get(f"/api/projects/{project.pk}/adjudication/").json()["prompts"] == []
    again = client.post(
        f"/api/projects/{project.pk}/adjudication/{disputed.pk}", {"order": order}, format="json"
    )
    assert again.status_code == 409
    # The third labeler slot is still open.
    carol = _member(project, "carol", Role.LABELER)
    task = _lease(_client(carol), project)
    assert task is not None and task["prompt"]["id"] == disputed.pk


def test_adjudication_refuses_a_bad_order_and_labelers(disputed, project, labeler, reviewer):
    ids = list(disputed.candidates.values_list("pk", flat=True))
    url = f"/api/projects/{project.pk}/adjudication/{disputed.pk}"
    bad = _client(reviewer).post(url, {"order": [[ids[0]], [ids[1]]]}, format="json")  # two answers missing
    assert bad.status_code == 400
    assert not Ranking.objects.filter(source=RankingSource.ADJUDICATION).exists()
    assert _client(labeler).post(url, {"order": [[i] for i in ids]}, format="json").status_code == 403
    assert _client(labeler).get(f"/api/projects/{project.pk}/adjudication/").status_code == 403


def test_adjudication_is_off_at_threshold_zero(project, labeler, other_labeler, reviewer):
    _prompt(project)
    _rank(_client(labeler), project)
    _rank(_client(other_labeler), project, reverse=True)
    assert _client(reviewer).get(f"/api/projects/{project.pk}/adjudication/").json()["prompts"] == []


def test_review_pages_render_for_reviewers(sampled, disputed, reviewer, labeler, password):
    page = APIClient()
    page.force_login(reviewer)
    queue = page.get(f"/dashboard/projects/{sampled.pk}/review/")
    assert queue.status_code == 200 and b'id="review-item"' in queue.content
    listing = page.get(f"/dashboard/projects/{sampled.pk}/adjudication/")
    assert listing.status_code == 200 and f'data-prompt="{disputed.pk}"'.encode() in listing.content
    project_page = page.get(f"/dashboard/projects/{sampled.pk}/").content.decode()
    assert f'href="/dashboard/projects/{sampled.pk}/review/"' in project_page
    assert f'href="/dashboard/projects/{sampled.pk}/adjudication/"' in project_page
    one = page.get(f"/dashboard/projects/{sampled.pk}/adjudication/{disputed.pk}/")
    assert one.status_code == 200 and one.content.count(b'class="card review-ranking"') == 2
    page.force_login(labeler)
    assert page.get(f"/dashboard/projects/{sampled.pk}/review/").status_code == 403


def test_the_review_endpoints_are_in_the_openapi_schema(api_client):
    response = api_client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    operations = {op.get("operationId") for ops in schema["paths"].values() for op in ops.values()}
    assert {
        "review_next",
        "review_decide",
        "adjudication_list",
        "adjudication_detail",
        "adjudication_submit",
    } <= operations
    decide = schema["paths"]["/api/projects/{project_id}/review/decide"]["post"]
    assert "requestBody" in decide


def test_the_admin_sets_the_review_settings(project, admin_user):
    page = APIClient()
    page.force_login(admin_user)
    html = page.get(f"/admin/annotation/project/{project.pk}/change/").content.decode()
    assert 'name="review_sample_rate"' in html and 'name="adjudication_threshold"' in html
