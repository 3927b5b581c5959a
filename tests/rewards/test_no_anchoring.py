"""Labelers never see the reward model's scores or its order before they submit (no anchoring):
not in the task the API returns, not in the page, and the order they are shown is not the model's."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from django.utils import timezone

from annotation.models import Assignment
from annotation.models.assignments import AssignmentStatus, TaskKind
from annotation.services.assignments import assignment_lease
from annotation.services.prompts import prompt_create
from rewards.models import CandidateScore, RewardModel, RewardModelStatus, RewardModelTrigger
from tests.annotation.queue_helpers import candidates_add

pytestmark = pytest.mark.django_db
PROMPTS = 40
# Scores no other number on the page could be mistaken for.
SCORE_BASE = 1234.5678


@pytest.fixture
def scored(project):
    project.rankings_per_prompt, project.queue_strategy, project.exploration_share = 1, "uncertainty", 0.0
    project.save()
    model = RewardModel.objects.create(
        project=project,
        version=1,
        status=RewardModelStatus.SUCCEEDED,
        trigger=RewardModelTrigger.ADMIN,
        is_active=True,
        finished_at=timezone.now(),
    )
    best = {}
    for index in range(PROMPTS):
        prompt = prompt_create(project=project, turns=[{"role": "user", "content": f"Anchoring {index}?"}])
        candidates = candidates_add(prompt, project.k)
        for rank, candidate in enumerate(candidates):
            CandidateScore.objects.create(
                candidate=candidate, reward_model=model, score=SCORE_BASE + index + rank / 10
            )
        best[prompt.pk] = candidates[-1].pk
    from rewards.services.queue_order import queue_order_refresh

    queue_order_refresh(project=project)
    return best


def test_the_task_api_and_page_show_no_score_and_the_shown_order_is_not_the_model_s(
    client, api_client, labeler, scored
):
    api_client.force_authenticate(labeler)
    client.force_login(labeler)
    positions = Counter()
    for _ in range(PROMPTS):
        response = api_client.post("/api/labeler/assignments/lease/", {"kind": TaskKind.RANK}, format="json")
        assert response.status_code == 201
        body = response.json()
        text = json.dumps(body)
        assert "score" not in text and "reward" not in text and str(SCORE_BASE)[:6] not in text
        assert {"id", "text", "cut_off"} == set(body["candidates"][0])
        page = client.get(f"/tasks/{body['id']}/").content.decode()
        assert str(SCORE_BASE)[:6] not in page and "reward model" not in page.lower()
        shown = [candidate["id"] for candidate in body["candidates"]]
        positions[shown.index(scored[body["prompt"]["id"]])] += 1
        Assignment.objects.filter(pk=body["id"]).update(status=AssignmentStatus.SKIPPED, skip_reason="next")
    # The model's best answer lands in every position (a model order would put it first every time).
    assert set(positions) == set(range(4)), positions
    assert max(positions.values()) < PROMPTS * 0.6, positions


def test_a_held_task_read_again_shows_no_score(api_client, labeler, scored):
    assignment, _ = assignment_lease(labeler=labeler, kind=TaskKind.RANK)
    api_client.force_authenticate(labeler)
    text = json.dumps(api_client.get(f"/api/labeler/assignments/{assignment.pk}/").json())
    assert "score" not in text and str(SCORE_BASE)[:6] not in text
