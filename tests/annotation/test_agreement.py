"""Agreement from stored rankings: the quality API, gold, and consensus-only exports on a cycle.

The math itself is tested in test_ranking_math.py."""

from __future__ import annotations

import pytest

from annotation.models import Membership, Ranking
from annotation.models.projects import Role
from annotation.services.exports import export_request_validate, export_stream
from tests.annotation.export_data import ranked_prompt
from tests.annotation.test_ranking_math import ALICE, BOB, CAROL, TAU_TIE


@pytest.fixture
def team(project, labeler, other_labeler, django_user_model, password):
    carol = django_user_model.objects.create_user("carol", "carol@example.com", password)
    reviewer = django_user_model.objects.create_user("rita", "rita@example.com", password)
    Membership.objects.create(project=project, user=carol, role=Role.LABELER)
    Membership.objects.create(project=project, user=reviewer, role=Role.REVIEWER)
    prompt, _ = ranked_prompt(project, 0, [labeler, other_labeler, carol], [ALICE, BOB, CAROL])
    ranked_prompt(project, 1, [labeler], [ALICE], flags={3: ["hallucination", "other"]})
    return {"alice": labeler, "bob": other_labeler, "carol": carol, "rita": reviewer, "prompt": prompt}


def test_quality_api_numbers(team, project, api_client):
    api_client.force_authenticate(team["rita"])
    summary = api_client.get(f"/api/projects/{project.pk}/quality/summary").json()
    assert summary["agreement"] == pytest.approx(15 / 16)
    assert summary["kendall_tau"] == pytest.approx((2 / 3 + 2 * TAU_TIE) / 3)
    assert (summary["pairs_agreed"], summary["pairs_compared"], summary["ranking_pairs"]) == (15, 16, 3)
    assert summary["rankings"] == 4 and summary["gold_agreement"] is None

    labelers = {
        row["username"]: row
        for row in api_client.get(f"/api/projects/{project.pk}/quality/labelers/").json()["results"]
    }
    assert labelers["alice"]["agreement"] == pytest.approx(10 / 11)
    assert labelers["bob"]["agreement"] == pytest.approx(10 / 11)
    assert labelers["carol"]["agreement"] == pytest.approx(1.0)
    assert labelers["alice"]["kendall_tau"] == pytest.approx((2 / 3 + TAU_TIE) / 2)
    assert labelers["alice"]["rankings"] == 2 and labelers["alice"]["flags_raised"] == 1
    assert labelers["rita"]["tasks_done"] == 0 and labelers["rita"]["agreement"] is None

    prompts = api_client.get(f"/api/projects/{project.pk}/quality/prompts/").json()
    assert prompts["count"] == 1
    row = prompts["results"][0]
    assert row["prompt_id"] == team["prompt"].pk and row["agreement"] == pytest.approx(15 / 16)
    ids = sorted(c for group in row["consensus_order"] for c in group)
    # alice puts 0 over 1, bob 1 over 0, carol ties them (no vote): a zero margin, so a tie.
    assert row["consensus_order"] == [[ids[0], ids[1]], [ids[2]], [ids[3]]]

    throughput = api_client.get(f"/api/projects/{project.pk}/quality/throughput", {"days": 7}).json()
    assert len(throughput["points"]) == 7 and throughput["points"][-1]["rankings"] == 4
    over_time = api_client.get(f"/api/projects/{project.pk}/quality/agreement-over-time", {"days": 3}).json()
    assert over_time["points"][-1]["agreement"] == pytest.approx(15 / 16)
    assert api_client.get(f"/api/projects/{project.pk}/quality/throughput", {"days": 0}).status_code == 400

    depth = api_client.get(f"/api/projects/{project.pk}/quality/queue-depth").json()
    # Both prompts have 4 candidates (K=4); prompt 1 has 1 of 2 rankings; neither has a demonstration.
    assert depth == {
        "project_id": project.pk,
        "waiting_for_candidates": 0,
        "waiting_for_demonstrations": 2,
        "waiting_for_rankings": 1,
        "leased": 0,
    }


def test_gold_agreement(team, project, api_client, django_user_model, password):
    boss = django_user_model.objects.create_user("boss", "boss@example.com", password)
    Membership.objects.create(project=project, user=boss, role=Role.ADMIN)
    bob_ranking = Ranking.objects.get(prompt=team["prompt"], labeler=team["bob"])
    api_client.force_authenticate(team["rita"])
    denied = api_client.post(f"/api/rankings/{bob_ranking.pk}/gold", {"is_gold": True}, format="json")
    assert denied.status_code == 403
    api_client.force_authenticate(boss)
    assert api_client.post(f"/api/rankings/{bob_ranking.pk}/gold", {}, format="json").status_code == 400
    response = api_client.post(f"/api/rankings/{bob_ranking.pk}/gold", {"is_gold": True}, format="json")
    assert response.status_code == 200 and response.json()["is_gold"] is True
    labelers = {
        r["username"]: r
        for r in api_client.get(f"/api/projects/{project.pk}/quality/labelers/").json()["results"]
    }
    assert labelers["alice"]["gold_agreement"] == pytest.approx(5 / 6)
    assert labelers["carol"]["gold_agreement"] == pytest.approx(1.0)
    assert labelers["bob"]["gold_agreement"] is None  # bob's own ranking is the gold one
    summary = api_client.get(f"/api/projects/{project.pk}/quality/summary").json()
    assert summary["gold_rankings"] == 1 and summary["gold_agreement"] == pytest.approx(10 / 11)


def test_consensus_only_export_on_a_cycle(project, django_user_model):
    users = [django_user_model.objects.create_user(f"u{n}") for n in range(9)]
    a, b, c = 0, 1, 2
    orders = [[[a], [b], [c], [3]]] * 4 + [[[b], [c], [a], [3]]] * 3 + [[[c], [a], [b], [3]]] * 2
    prompt, candidates = ranked_prompt(project, 0, users, orders)
    request = export_request_validate(
        project=project, export_format="pairs", file_format="jsonl", filters={"consensus_only": True}
    )
    import json

    rows = [json.loads(line) for line in b"".join(export_stream(request=request)).splitlines()]
    ids = [x.pk for x in candidates]
    pairs = {(r["chosen_id"], r["rejected_id"]) for r in rows}
    assert pairs == {
        (ids[a], ids[b]),
        (ids[b], ids[c]),
        (ids[a], ids[c]),
        (ids[a], ids[3]),
        (ids[b], ids[3]),
        (ids[c], ids[3]),
    }
    assert len(rows) == 6
