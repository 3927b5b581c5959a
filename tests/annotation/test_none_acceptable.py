"""A ranking marked "none of these is acceptable": stored through the API, replayed idempotently, shown in
agreement, on the dashboard's prompt page and in the labeler's history, kept or dropped by exports, and
refused in the admin for a side-by-side project whose K is not 2."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from annotation.models import Comparison, Membership, Project, Ranking
from annotation.models.projects import Role
from annotation.selectors.agreement import agreement_scan
from annotation.selectors.queue import ranking_layout
from tests.annotation.admin_forms import project_form_defaults
from tests.annotation.queue_helpers import candidates_add

pytestmark = pytest.mark.django_db


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _rank(
    client: APIClient, *, none_acceptable: bool, key: str, order: list | None = None
) -> tuple[dict, dict]:
    """Lease a rank task, submit `order` (default: the shown order): (task, response body)."""
    task = client.post("/api/labeler/assignments/lease/", {"kind": "rank"}, format="json").json()
    order = order or [[c["id"]] for c in task["candidates"]]
    body = {"order": order, "idempotency_key": key, "none_acceptable": none_acceptable}
    response = client.post(f"/api/labeler/assignments/{task['id']}/ranking/", body, format="json")
    assert response.status_code == 201, response.content
    return task, response.json()


@pytest.fixture
def ranked(project, labeler, other_labeler, make_prompts):
    """One prompt of 4 answers: alice ranks it and finds none acceptable, bob ranks it the other way round."""
    (prompt,) = make_prompts(project, 1)
    candidates_add(prompt, 4)
    alice_task, alice = _rank(_client(labeler), none_acceptable=True, key="alice-1")
    _, bob = _rank(_client(other_labeler), none_acceptable=False, key="bob-1", order=alice["order"][::-1])
    return {"prompt": prompt, "alice": alice, "bob": bob, "alice_task": alice_task}


def test_stored_with_its_pairs_and_a_replay_returns_the_same_ranking(ranked, labeler):
    alice = Ranking.objects.get(pk=ranked["alice"]["id"])
    assert alice.none_acceptable is True and ranked["alice"]["none_acceptable"] is True
    assert Ranking.objects.get(pk=ranked["bob"]["id"]).none_acceptable is False
    # The order still counts: all six pairs of four answers are stored.
    assert Comparison.objects.filter(ranking=alice).count() == 6

    # A retried POST with the same key (even with a different flag) stores nothing and answers the first.
    task = ranked["alice_task"]
    replay = _client(labeler).post(
        f"/api/labeler/assignments/{task['id']}/ranking/",
        {
            "order": [[c["id"]] for c in task["candidates"]],
            "idempotency_key": "alice-1",
            "none_acceptable": False,
        },
        format="json",
    )
    assert replay.status_code == 200 and replay.json() == ranked["alice"]
    assert Ranking.objects.count() == 2 and Ranking.objects.get(pk=alice.pk).none_acceptable is True


def test_left_out_it_is_false(project, labeler, make_prompts):
    (prompt,) = make_prompts(project, 1)
    candidates_add(prompt, 4)
    client = _client(labeler)
    task = client.post("/api/labeler/assignments/lease/", {"kind": "rank"}, format="json").json()
    response = client.post(
        f"/api/labeler/assignments/{task['id']}/ranking/",
        {"order": [[c["id"]] for c in task["candidates"]], "idempotency_key": "plain"},
        format="json",
    )
    assert response.status_code == 201 and response.json()["none_acceptable"] is False


def test_agreement_counts_it_and_the_prompt_page_shows_it(ranked, project, admin_user, client, password):
    report = agreement_scan(project_id=project.pk)
    assert report.none_acceptable == 1
    assert dict(report.none_acceptable_prompts) == {ranked["prompt"].pk: 1}
    # Reversed orders: the two rankings disagree on every pair, marked or not.
    assert (report.project.agreed, report.project.compared) == (0, 6)

    client.login(username=admin_user.username, password=password)
    page = client.get(f"/dashboard/projects/{project.pk}/prompts/{ranked['prompt'].pk}/").content.decode()
    assert '<span id="none-acceptable-count"' in page and "1 found none acceptable" in page
    assert page.count('class="none-acceptable"') == 1  # alice's column only


def test_history_shows_it(ranked, labeler, other_labeler, client, password):
    rows = _client(labeler).get("/api/labeler/history/").json()["results"]
    assert [row["ranking"]["none_acceptable"] for row in rows] == [True]
    assert (
        _client(other_labeler).get("/api/labeler/history/").json()["results"][0]["ranking"]["none_acceptable"]
        is False
    )
    client.login(username=labeler.username, password=password)
    assert "You found none of these answers acceptable." in client.get("/history/").content.decode()
    client.login(username=other_labeler.username, password=password)
    assert "none of these answers acceptable" not in client.get("/history/").content.decode()


def _export(client: APIClient, project: Project, export_format: str, **filters) -> list[dict]:
    query = {"export_format": export_format, **filters}
    response = client.get(f"/api/projects/{project.pk}/exports/stream", query)
    assert response.status_code == 200, response.content
    return [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]


def _count(client: APIClient, project: Project, export_format: str, **filters) -> int:
    response = client.get(
        f"/api/projects/{project.pk}/exports/count", {"export_format": export_format, **filters}
    )
    assert response.status_code == 200, response.content
    return response.json()["rows"]


@pytest.fixture
def exporter(project, admin_user) -> APIClient:
    Membership.objects.create(project=project, user=admin_user, role=Role.ADMIN)
    return _client(admin_user)


def test_exports_keep_them_by_default_and_drop_them_when_asked(ranked, project, exporter):
    alice, bob = ranked["alice"]["id"], ranked["bob"]["id"]
    kept = _export(exporter, project, "pairs")
    assert {row["ranking_id"] for row in kept} == {alice, bob} and len(kept) == 12
    dropped = _export(exporter, project, "pairs", exclude_none_acceptable="true")
    assert {row["ranking_id"] for row in dropped} == {bob} and len(dropped) == 6
    assert _count(exporter, project, "pairs") == 12
    assert _count(exporter, project, "pairs", exclude_none_acceptable="true") == 6
    # Pairs derived from the tie groups (a tie policy) and KTO rows read the same rankings.
    derived = _export(exporter, project, "pairs", tie_policy="keep", exclude_none_acceptable="true")
    assert {row["ranking_id"] for row in derived} == {bob}
    kto = _export(exporter, project, "kto", exclude_none_acceptable="true")
    assert kto and {row["ranking_id"] for row in kto} == {bob}
    assert _count(exporter, project, "kto", exclude_none_acceptable="true") == len(kto)


def test_the_k_way_rankings_format_shows_the_mark(ranked, project, exporter):
    (record,) = _export(exporter, project, "rankings")
    marks = {r["ranking_id"]: r["none_acceptable"] for r in record["rankings"]}
    assert marks == {ranked["alice"]["id"]: True, ranked["bob"]["id"]: False}
    (record,) = _export(exporter, project, "rankings", exclude_none_acceptable="true")
    assert [r["ranking_id"] for r in record["rankings"]] == [ranked["bob"]["id"]]


def test_the_parquet_rankings_schema_has_the_column(ranked, project, exporter):
    import io

    import pyarrow.parquet as pq

    response = exporter.get(
        f"/api/projects/{project.pk}/exports/stream", {"export_format": "rankings", "file_format": "parquet"}
    )
    table = pq.read_table(io.BytesIO(b"".join(response.streaming_content)))
    rankings = table.to_pylist()[0]["rankings"]
    assert sorted(r["none_acceptable"] for r in rankings) == [False, True]


def test_the_option_is_refused_where_nothing_is_ranked(ranked, project, exporter):
    for export_format in ("sft", "prompt_only"):
        response = exporter.get(
            f"/api/projects/{project.pk}/exports/stream",
            {"export_format": export_format, "exclude_none_acceptable": "true"},
        )
        assert response.status_code == 400
        assert response.json()["error"]["details"] == {"filter": "exclude_none_acceptable"}


def test_a_background_job_stores_the_option(ranked, project, exporter):
    response = exporter.post(
        f"/api/projects/{project.pk}/exports/start",
        {"export_format": "pairs", "filters": {"exclude_none_acceptable": True}},
        format="json",
    )
    assert response.status_code in (201, 202), response.content
    assert response.json()["filters"] == {"exclude_none_acceptable": True}


def test_the_dashboard_export_form_offers_and_remembers_it(ranked, project, admin_user, client, password):
    Membership.objects.create(project=project, user=admin_user, role=Role.ADMIN)
    client.login(username=admin_user.username, password=password)
    page = client.get(
        f"/dashboard/projects/{project.pk}/exports/?export_format=pairs&exclude_none_acceptable=on"
    ).content.decode()
    assert 'name="exclude_none_acceptable" checked' in page
    download = client.get(
        f"/dashboard/projects/{project.pk}/exports/download?export_format=pairs&exclude_none_acceptable=on"
    )
    rows = [json.loads(line) for line in b"".join(download.streaming_content).decode().splitlines()]
    assert {row["ranking_id"] for row in rows} == {ranked["bob"]["id"]}


def _project_form(project: Project, **changes) -> dict:
    data = {
        **project_form_defaults(project),
        "name": project.name,
        "k": project.k,
        "rankings_per_prompt": 2,
        "demonstrations_per_prompt": 1,
        "min_demonstration_chars": 20,
        "lease_seconds": 1800,
        "generation_backend": "embedded",
        "temperature": 0.9,
        "top_p": 0.95,
        "max_tokens": 96,
        "stop_sequences": "[]",
        "low_water_mark": 0,
        "retrain_min_new_comparisons": 500,
        "reward_model_config": "{}",
        "memberships-TOTAL_FORMS": 0,
        "memberships-INITIAL_FORMS": 0,
    }
    return data | changes


def test_admin_refuses_side_by_side_unless_k_is_2(project, admin_user, client, password):
    client.login(username=admin_user.username, password=password)
    url = f"/admin/annotation/project/{project.pk}/change/"
    response = client.post(url, _project_form(project, k=4, ranking_layout="side_by_side"))
    assert response.status_code == 200
    assert "Side by side shows exactly two answers: set K to 2" in response.content.decode()
    project.refresh_from_db()
    assert project.ranking_layout == "auto" and ranking_layout(project=project) == "list"

    response = client.post(url, _project_form(project, k=2, ranking_layout="side_by_side"))
    assert response.status_code == 302
    project.refresh_from_db()
    assert (project.k, project.ranking_layout) == (2, "side_by_side")
    assert ranking_layout(project=project) == "side_by_side"

    # A form posted without the field keeps the stored layout.
    response = client.post(url, _project_form(project, k=2))
    assert response.status_code == 302
    project.refresh_from_db()
    assert project.ranking_layout == "side_by_side"
    page = client.get(url).content.decode()
    assert 'name="ranking_layout"' in page
