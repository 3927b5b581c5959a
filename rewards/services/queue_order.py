"""The queue strategies' orders, from stored scores: which prompts humans rank next.

Run by a periodic job (and after new candidates are scored), never inside a request: the order is
stored on the prompts (annotation.services.queue_order) and the lease reads it from an index.

- `breadth_first`: no order of its own (every queue_rank 0): priority, then age.
- `uncertainty`: prompts where the active reward model is least sure of the candidates' order
  first. A version with uncertainty heads (rewards.ml.ensemble; every version trained since they
  exist) is judged by their disagreement: the mean over candidate pairs of the members' spread of
  the score difference (rewards.acquisition.acquisition_uncertainty, what bench/active_learning.py
  measures). A version without them falls back to one model's closeness to a coin flip, the mean of
  4 p (1 - p) (acquisition_closeness). Prompts whose candidates are not all scored (by the heads,
  where the version has them) come after the scored ones.
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
    acquisition_uncertainty,
)
from rewards.models import CandidateScore
from rewards.selectors.reward_models import reward_model_active


def _scores(
    *, project: Project, prompt_ids: list[int]
) -> tuple[dict[int, dict[int, float]], dict[int, dict[int, list[float]]]]:
    """The active version's score of each candidate, and its uncertainty heads' scores where it has
    them, by prompt; both empty without an active version."""
    active = reward_model_active(project=project)
    scores: dict[int, dict[int, float]] = defaultdict(dict)
    members: dict[int, dict[int, list[float]]] = defaultdict(dict)
    if active is None:
        return scores, members
    for prompt_id, candidate_id, score, member_scores in CandidateScore.objects.filter(
        reward_model=active, candidate__prompt_id__in=prompt_ids
    ).values_list("candidate__prompt_id", "candidate_id", "score", "member_scores"):
        scores[prompt_id][candidate_id] = score
        if member_scores is not None:
            members[prompt_id][candidate_id] = member_scores
    return scores, members


def _uncertainty(
    *,
    candidate_ids: list[int],
    scores: dict[int, float],
    members: dict[int, list[float]],
    heads: bool,
) -> float | None:
    """One prompt's uncertainty, by the heads' spread when the version has heads, else closeness;
    None unless every candidate (two or more) is scored the way the project's prompts are compared."""
    known = members if heads else scores
    if len(candidate_ids) < 2 or any(candidate_id not in known for candidate_id in candidate_ids):
        return None
    if not heads:
        return acquisition_closeness(scores=[scores[c] for c in candidate_ids])
    member_count = min(len(members[c]) for c in candidate_ids)
    if member_count < 2:
        return None
    return acquisition_uncertainty(
        member_scores=[[members[c][m] for c in candidate_ids] for m in range(member_count)]
    )


def _model_order(scores: dict[int, float]) -> list[list[int]]:
    return [[candidate_id] for candidate_id, _ in sorted(scores.items(), key=lambda item: -item[1])]


def queue_order_compute(*, project: Project, seed: int = 0) -> list[int]:
    """The project's strategy order of the prompts still wanting rankings (empty for breadth-first)."""
    if project.queue_strategy == QueueStrategy.BREADTH_FIRST:
        return []
    prompt_ids = rank_queue_prompt_ids(project=project)
    scores, members = _scores(project=project, prompt_ids=prompt_ids)
    acquisition: dict[int, float | None] = {}
    if project.queue_strategy == QueueStrategy.UNCERTAINTY:
        candidates = prompts_candidate_ids(prompt_ids=prompt_ids)
        # One measure for the whole project: the two are on different scales.
        heads = bool(members)
        for prompt_id in prompt_ids:
            acquisition[prompt_id] = _uncertainty(
                candidate_ids=candidates.get(prompt_id, []),
                scores=scores.get(prompt_id, {}),
                members=members.get(prompt_id, {}),
                heads=heads,
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
