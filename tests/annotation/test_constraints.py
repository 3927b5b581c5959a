"""The absolute rules hold at the database, not only in forms."""

from __future__ import annotations

import hashlib

import pytest
from django.db import IntegrityError, transaction

from annotation.models import Candidate, Comparison, Project, Prompt, Ranking, RankingItem
from rewards.models import RewardModel


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _fails(statement) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        statement()


@pytest.mark.django_db
@pytest.mark.parametrize("k", [1, 10])
def test_k_outside_2_to_9_is_refused(k):
    _fails(lambda: Project.objects.create(name=f"k={k}", k=k))


@pytest.mark.django_db
@pytest.mark.parametrize("k", [2, 9])
def test_k_at_the_bounds_is_accepted(k):
    assert Project.objects.create(name=f"k={k}", k=k).k == k


def test_prompt_hash_unique_per_project_only(project, make_prompts):
    prompt = make_prompts(project, 1)[0]
    _fails(
        lambda: Prompt.objects.create(project=project, turns=prompt.turns, content_hash=prompt.content_hash)
    )
    other = Project.objects.create(name="Other")
    assert Prompt.objects.create(project=other, turns=prompt.turns, content_hash=prompt.content_hash).pk


def test_candidate_text_unique_per_prompt(project, make_prompts):
    prompt = make_prompts(project, 1)[0]
    Candidate.objects.create(prompt=prompt, text="Same", content_hash=_sha("Same"))
    _fails(lambda: Candidate.objects.create(prompt=prompt, text="Same", content_hash=_sha("Same")))


@pytest.mark.parametrize("rating", [0, 8])
def test_rating_outside_1_to_7_is_refused(project, make_prompts, labeler, rating):
    prompt = make_prompts(project, 1)[0]
    candidate = Candidate.objects.create(prompt=prompt, text="A", content_hash=_sha("A"))
    ranking = Ranking.objects.create(prompt=prompt, labeler=labeler, order=[[candidate.pk]])
    _fails(lambda: RankingItem.objects.create(ranking=ranking, candidate=candidate, rank=0, rating=rating))
    assert RankingItem.objects.create(ranking=ranking, candidate=candidate, rank=0, rating=7).rating == 7


def test_one_ranking_per_labeler_and_prompt(project, make_prompts, labeler):
    prompt = make_prompts(project, 1)[0]
    Ranking.objects.create(prompt=prompt, labeler=labeler, order=[])
    _fails(lambda: Ranking.objects.create(prompt=prompt, labeler=labeler, order=[]))


def test_comparison_needs_two_distinct_candidates(project, make_prompts, labeler):
    from django.utils import timezone

    prompt = make_prompts(project, 1)[0]
    candidate = Candidate.objects.create(prompt=prompt, text="A", content_hash=_sha("A"))
    ranking = Ranking.objects.create(prompt=prompt, labeler=labeler, order=[[candidate.pk]])
    _fails(
        lambda: Comparison.objects.create(
            ranking=ranking,
            prompt=prompt,
            labeler=labeler,
            better=candidate,
            worse=candidate,
            created_at=timezone.now(),
        )
    )


def test_one_running_reward_model_and_one_active_version_per_project(project):
    RewardModel.objects.create(project=project, trigger="admin", status="running")
    _fails(lambda: RewardModel.objects.create(project=project, trigger="admin", status="queued"))
    RewardModel.objects.create(
        project=project, trigger="admin", status="succeeded", version=1, is_active=True
    )
    _fails(
        lambda: RewardModel.objects.create(
            project=project, trigger="admin", status="succeeded", version=2, is_active=True
        )
    )
    _fails(lambda: RewardModel.objects.create(project=project, trigger="admin", status="failed", version=1))
