"""Reads that a queue strategy orders: the prompts still wanting rankings, their candidates and orders."""

from __future__ import annotations

from collections import defaultdict

from annotation.models import Candidate, Project, Prompt, Ranking
from annotation.models.quality import COUNTING_STATES
from annotation.models.rankings import RankingSource


def rank_queue_prompt_ids(*, project: Project) -> list[int]:
    """Prompts of the project that still want labelers' rankings, by priority then age (the tie-break
    a strategy keeps)."""
    return list(
        Prompt.objects.filter(project=project, rankings_done__lt=project.rankings_per_prompt)
        .order_by("-priority", "id")
        .values_list("pk", flat=True)
    )


def prompts_ranked_orders(*, prompt_ids: list[int]) -> dict[int, list[list[list[int]]]]:
    """Each prompt's labelers' orders (tie groups of candidate ids), for disagreement."""
    orders: dict[int, list[list[list[int]]]] = defaultdict(list)
    for prompt_id, order in Ranking.objects.filter(
        prompt_id__in=prompt_ids, source=RankingSource.LABELER, quality_state__in=COUNTING_STATES
    ).values_list("prompt_id", "order"):
        orders[prompt_id].append(order)
    return orders


def prompts_candidate_ids(*, prompt_ids: list[int]) -> dict[int, list[int]]:
    """Each prompt's candidate ids (those a rank task may show)."""
    candidates: dict[int, list[int]] = defaultdict(list)
    for prompt_id, candidate_id in Candidate.objects.filter(prompt_id__in=prompt_ids).values_list(
        "prompt_id", "pk"
    ):
        candidates[prompt_id].append(candidate_id)
    return candidates


def projects_queue_rank_nonzero(*, project: Project) -> bool:
    return Prompt.objects.filter(project=project).exclude(queue_rank=0).exists()
