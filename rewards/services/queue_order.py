"""The queue strategies' orders, from stored scores: which prompts humans rank next.

Run by a periodic job (and after new candidates are scored), never inside a request: the order is
stored on the prompts (annotation.services.queue_order) and the lease reads it from an index.

- `breadth_first`: no order of its own (every queue_rank 0): priority, then age.
- `uncertainty`: prompts where the active reward model is least sure of the candidates' order
  first: the mean over candidate pairs of 4 p (1 - p), p its Bradley-Terry probability from its
  stored scores (rewards.acquisition.acquisition_closeness; a version is one model, so the ensemble
  spread bench/active_learning.py also measures has no members to compare here); prompts it has
  not scored come after the scored ones.
- `disagreement`: prompts whose rankings disagree most first: labelers with each other and, where
  only one labeler has ranked, the reward model's order with that labeler's.
Both mix in the project's exploration share of prompts in random order, so the model also sees what
it does not yet find hard.
"""

from __future__ import annotations

import random
from collections import defaultdict

from annotation.models import Project
from annotation.models.projects import QueueStrategy
from annotation.selectors.queue_order import (
    projects_queue_rank_nonzero,
    prompts_candidate_ids,
    prompts_ranked_orders,
    rank_queue_prompt_ids,
)
from annotation.services.queue_order import prompts_queue_rank_set
from rewards.acquisition import (
    acquisition_closeness,
    acquisition_disagreement,
    acquisition_mix,
    acquisition_order,
)
from rewards.models import CandidateScore
from rewards.selectors.reward_models import reward_model_active


def _scores(*, project: Project, prompt_ids: list[int]) -> dict[int, dict[int, float]]:
    """The active version's score of each candidate, by prompt; empty without an active version."""
    active = reward_model_active(project=project)
    if active is None:
        return {}
    scores: dict[int, dict[int, float]] = defaultdict(dict)
    for prompt_id, candidate_id, score in CandidateScore.objects.filter(
        reward_model=active, candidate__prompt_id__in=prompt_ids
    ).values_list("candidate__prompt_id", "candidate_id", "score"):
        scores[prompt_id][candidate_id] = score
    return scores


def _model_order(scores: dict[int, float]) -> list[list[int]]:
    return [[candidate_id] for candidate_id, _ in sorted(scores.items(), key=lambda item: -item[1])]


def queue_order_compute(*, project: Project, seed: int = 0) -> list[int]:
    """The project's strategy order of the prompts still wanting rankings (empty for breadth-first)."""
    if project.queue_strategy == QueueStrategy.BREADTH_FIRST:
        return []
    prompt_ids = rank_queue_prompt_ids(project=project)
    scores = _scores(project=project, prompt_ids=prompt_ids)
    acquisition: dict[int, float | None] = {}
    if project.queue_strategy == QueueStrategy.UNCERTAINTY:
        candidates = prompts_candidate_ids(prompt_ids=prompt_ids)
        for prompt_id in prompt_ids:
            known = scores.get(prompt_id, {})
            # Only a prompt whose every candidate is scored has an uncertainty to compare.
            complete = len(candidates.get(prompt_id, [])) >= 2 and all(
                candidate_id in known for candidate_id in candidates[prompt_id]
            )
            acquisition[prompt_id] = (
                acquisition_closeness(scores=[known[c] for c in candidates[prompt_id]]) if complete else None
            )
    else:
        orders = prompts_ranked_orders(prompt_ids=prompt_ids)
        for prompt_id in prompt_ids:
            ranked = orders.get(prompt_id, [])
            if len(ranked) >= 2:
                acquisition[prompt_id] = acquisition_disagreement(rankings=ranked)
            elif len(ranked) == 1 and scores.get(prompt_id):
                acquisition[prompt_id] = acquisition_disagreement(
                    rankings=[ranked[0], _model_order(scores[prompt_id])]
                )
            else:
                acquisition[prompt_id] = None
    order = acquisition_order(scores=acquisition)
    return acquisition_mix(order=order, exploration_share=float(project.exploration_share), seed=seed)


def queue_order_refresh(*, project: Project, seed: int = 0) -> int:
    """Compute and store the project's order; returns how many prompts changed rank."""
    if project.queue_strategy == QueueStrategy.BREADTH_FIRST and not projects_queue_rank_nonzero(
        project=project
    ):
        return 0
    return prompts_queue_rank_set(
        project_id=project.pk, ranked=queue_order_compute(project=project, seed=seed)
    )


def queue_orders_refresh() -> dict[int, int]:
    """Every active project's order (the periodic job). The exploration draw changes each run."""
    seed = random.SystemRandom().randrange(2**31)
    return {
        project.pk: queue_order_refresh(project=project, seed=seed)
        for project in Project.objects.filter(is_active=True).order_by("pk")
    }
