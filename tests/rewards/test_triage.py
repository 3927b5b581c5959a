"""Triage: confident model disagreements and low-agreement labelers listed; its actions recorded,
reversible, and felt by the queue."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from annotation.models import Membership, Prompt, QualityEvent, Ranking
from annotation.models.assignments import TaskKind
from annotation.models.projects import Role
from annotation.models.quality import QualityState
from annotation.services.assignments import assignment_lease
from annotation.services.rankings import ranking_record
from rewards.models import CandidateScore, RewardModel, RewardModelStatus, RewardModelTrigger
from tests.annotation.queue_helpers import candidates_add

pytestmark = pytest.mark.django_db


@pytest.fixture
def reviewer(project):
    user = get_user_model().objects.create_user("reviewer-t", password="!")
    Membership.objects.create(project=project, user=user, role=Role.REVIEWER)
    return user


@pytest.fixture
def disputed(project, labeler, other_labeler):
    """One prompt both labelers rank best-first by id; the active model scores it the other way round."""
    project.rankings_per_prompt = 2
    project.save()
    prompt = Prompt.objects.create(
        project=project, turns=[{"role": "user", "content": "Triage?"}], content_hash="t1"
    )
    candidates = candidates_add(prompt, project.k)
    ids = [candidate.pk for candidate in candidates]
    for user in (labeler, other_labeler):
        ranking_record(prompt=prompt, candidate_ids=ids, order=[[i] for i in ids], labeler=user)
    model = RewardModel.objects.create(
        project=project,
        version=1,
        status=RewardModelStatus.SUCCEEDED,
        trigger=RewardModelTrigger.ADMIN,
        is_active=True,
        finished_at=timezone.now(),
    )
    for rank, candidate in enumerate(candidates):
        CandidateScore.objects.create(candidate=candidate, reward_model=model, score=2.0 * rank)
    return prompt


def test_the_model_s_confident_disagreement_is_listed_with_its_pairs(api_client, reviewer, project, disputed):
    api_client.force_authenticate(reviewer)
    body = api_client.get(f"/api/projects/{project.pk}/triage").json()
    assert [row["prompt_id"] for row in body["prompts"]] == [disputed.pk]
    row = body["prompts"][0]
    # Every consensus pair is reversed by the model; the widest gap (6 points) is the most confident.
    assert len(row["disagreements"]) == 6
    assert row["confidence"] == pytest.approx(1 / (1 + pow(2.718281828459045, -6.0)), rel=1e-6)
    assert {r["labeler"] for r in row["rankings"]} == {"alice", "bob"}
    labelers = {entry["username"]: entry for entry in body["labelers"]}
    assert labelers["alice"]["model_agreement"] == 0.0 and labelers["alice"]["peer_agreement"] == 1.0
    # Above the confidence asked for, nothing is listed.
    strict = api_client.get(f"/api/projects/{project.pk}/triage", {"confident": 0.999}).json()
    assert strict["prompts"] == []


def test_exclude_and_restore_are_recorded_and_free_then_refill_the_slot(
    api_client, reviewer, project, disputed, labeler
):
    third = get_user_model().objects.create_user("third-t", password="!")
    Membership.objects.create(project=project, user=third, role=Role.LABELER)
    ranking = Ranking.objects.get(prompt=disputed, labeler=labeler)
    assert assignment_lease(labeler=third, kind=TaskKind.RANK) == (None, False)  # the overlap is full

    api_client.force_authenticate(reviewer)
    refused = api_client.post(f"/api/rankings/{ranking.pk}/exclude", {"reason": ""}, format="json")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "reason_required"
    response = api_client.post(
        f"/api/rankings/{ranking.pk}/exclude", {"reason": "clicked through"}, format="json"
    )
    assert response.status_code == 200 and response.json()["quality_state"] == QualityState.EXCLUDED
    event = QualityEvent.objects.get(ranking=ranking)
    assert (event.actor, event.reason, event.state_after) == (
        reviewer,
        "clicked through",
        QualityState.EXCLUDED,
    )
    triage = api_client.get(f"/api/projects/{project.pk}/triage").json()
    assert [row["id"] for row in triage["excluded"]] == [ranking.pk]
    # Its slot is free again: a third labeler is served the prompt.
    assignment, created = assignment_lease(labeler=third, kind=TaskKind.RANK)
    assert created and assignment.prompt_id == disputed.pk

    restored = api_client.post(f"/api/rankings/{ranking.pk}/restore", {}, format="json")
    assert restored.json()["quality_state"] == QualityState.COUNTED
    disputed.refresh_from_db()
    assert disputed.rankings_done == 2
    assert QualityEvent.objects.filter(ranking=ranking).count() == 2


def test_asking_for_more_rankings_opens_slots_beyond_the_overlap(api_client, reviewer, project, disputed):
    third = get_user_model().objects.create_user("third-m", password="!")
    Membership.objects.create(project=project, user=third, role=Role.LABELER)
    api_client.force_authenticate(reviewer)
    for bad in (-1, 21, "two"):
        response = api_client.post(f"/api/prompts/{disputed.pk}/more-rankings", {"extra": bad}, format="json")
        assert response.status_code == 400, bad
    response = api_client.post(f"/api/prompts/{disputed.pk}/more-rankings", {"extra": 1}, format="json")
    assert response.json() == {"id": disputed.pk, "extra_rankings": 1}
    assignment, created = assignment_lease(labeler=third, kind=TaskKind.RANK)
    assert created and assignment.prompt_id == disputed.pk


def test_labelers_cannot_triage(api_client, labeler, project, disputed):
    api_client.force_authenticate(labeler)
    ranking = Ranking.objects.filter(prompt=disputed).first()
    assert api_client.get(f"/api/projects/{project.pk}/triage").status_code == 403
    assert (
        api_client.post(f"/api/rankings/{ranking.pk}/exclude", {"reason": "x"}, format="json").status_code
        == 403
    )
    assert (
        api_client.post(f"/api/prompts/{disputed.pk}/more-rankings", {"extra": 1}, format="json").status_code
        == 403
    )
    ranking.refresh_from_db()
    assert ranking.quality_state == QualityState.COUNTED


def test_an_excluded_ranking_leaves_exports_agreement_and_training_until_restored(
    api_client, reviewer, project, disputed, labeler
):
    from annotation.exports.filters import ExportFilters
    from annotation.exports.sources import comparison_source_count, ranking_source_count
    from annotation.selectors.agreement import agreement_scan
    from rewards.selectors.reward_models import training_data

    def seen() -> tuple[int, int, int, int]:
        data = training_data(project=project, cutoff=timezone.now())
        return (
            comparison_source_count(project_id=project.pk, filters=ExportFilters()),
            ranking_source_count(project_id=project.pk, filters=ExportFilters()),
            agreement_scan(project_id=project.pk).project.compared,
            len(data.examples),
        )

    before = seen()
    assert before == (12, 2, 6, 2)
    ranking = Ranking.objects.get(prompt=disputed, labeler=labeler)
    api_client.force_authenticate(reviewer)
    api_client.post(f"/api/rankings/{ranking.pk}/exclude", {"reason": "careless"}, format="json")
    assert seen() == (6, 1, 0, 1)
    assert Ranking.objects.filter(pk=ranking.pk).exists()  # kept, not deleted
    api_client.post(f"/api/rankings/{ranking.pk}/restore", {"reason": "looked again"}, format="json")
    assert seen() == before
