"""Triage: where the active reward model confidently disagrees with the labelers, and which labelers
agree least with the model and with their peers.

The model "confidently disagrees" with a pair of the labelers' consensus (better, worse) when its
Bradley-Terry probability of the opposite order, sigmoid(score_worse - score_better), is at least
CONFIDENT. Only rankings that count take part; the ones already excluded are listed so they can be
restored.
"""

from __future__ import annotations

import math
from collections import defaultdict
from itertools import combinations
from typing import Any

from annotation.models import Project
from annotation.ranking_math import comparisons_from_order, consensus_from_orders, pair_set, pairwise_counts
from annotation.selectors.triage import TriageRanking, candidate_texts, prompt_titles, triage_rankings
from rewards.models import CandidateScore
from rewards.selectors.reward_models import reward_model_active

# The model's probability of the opposite order from which a disagreement is listed: 4 to 1 odds.
CONFIDENT = 0.8
MAX_PROMPTS = 100


def _sigmoid(value: float) -> float:
    return 1.0 / (1.0 + math.exp(-value)) if value >= 0 else math.exp(value) / (1.0 + math.exp(value))


def _scores(*, project: Project) -> tuple[Any, dict[int, float]]:
    active = reward_model_active(project=project)
    if active is None:
        return None, {}
    return active, dict(
        CandidateScore.objects.filter(reward_model=active, candidate__prompt__project=project).values_list(
            "candidate_id", "score"
        )
    )


def project_triage(
    *, project: Project, confident: float = CONFIDENT, limit: int = MAX_PROMPTS
) -> dict[str, Any]:
    """The triage lists: prompts with confident model disagreements (most confident first), labelers by
    lowest agreement (with the model or with peers), and the excluded rankings."""
    active, scores = _scores(project=project)
    rankings = triage_rankings(project_id=project.pk)
    by_prompt: dict[int, list[TriageRanking]] = defaultdict(list)
    for ranking in rankings:
        by_prompt[ranking.prompt_id].append(ranking)

    prompts: list[dict[str, Any]] = []
    model_tally: dict[int, list[int]] = defaultdict(lambda: [0, 0])  # labeler: [agreed, compared]
    peer_tally: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    names: dict[int, str] = {}
    for prompt_id, group in by_prompt.items():
        counting = [ranking for ranking in group if ranking.counts]
        for ranking in counting:
            names[ranking.labeler_id] = ranking.labeler
            pairs = comparisons_from_order(order=ranking.order)
            for better, worse in pairs:
                if better in scores and worse in scores:
                    tally = model_tally[ranking.labeler_id]
                    tally[0] += scores[better] > scores[worse]
                    tally[1] += 1
        for first, second in combinations(counting, 2):
            agreed, compared = pairwise_counts(pair_set(first.order), pair_set(second.order))
            for labeler_id in (first.labeler_id, second.labeler_id):
                peer_tally[labeler_id][0] += agreed
                peer_tally[labeler_id][1] += compared
        if not counting or not scores:
            continue
        consensus = consensus_from_orders(orders=[ranking.order for ranking in counting])
        disagreements = []
        for better, worse in consensus.pairs:
            if better in scores and worse in scores:
                probability = _sigmoid(scores[worse] - scores[better])
                if probability >= confident:
                    disagreements.append({"better": better, "worse": worse, "model_probability": probability})
        if disagreements:
            disagreements.sort(key=lambda pair: -pair["model_probability"])
            prompts.append(
                {
                    "prompt_id": prompt_id,
                    "confidence": disagreements[0]["model_probability"],
                    "consensus_order": consensus.order,
                    "disagreements": disagreements,
                    "rankings": [
                        {"id": r.id, "labeler": r.labeler, "order": r.order, "is_gold": r.is_gold}
                        for r in counting
                    ],
                }
            )
    prompts.sort(key=lambda row: (-row["confidence"], row["prompt_id"]))
    prompts = prompts[:limit]
    texts = candidate_texts(
        candidate_ids=[
            cid for row in prompts for pair in row["disagreements"] for cid in (pair["better"], pair["worse"])
        ]
    )
    titles = prompt_titles(prompt_ids=[row["prompt_id"] for row in prompts])
    for row in prompts:
        row["title"], row["extra_rankings"] = titles.get(row["prompt_id"], ("", 0))
        for pair in row["disagreements"]:
            pair["better_text"], pair["worse_text"] = (
                texts.get(pair["better"], ""),
                texts.get(pair["worse"], ""),
            )

    labelers: list[dict[str, Any]] = []
    lowest: dict[int, float] = {}
    for labeler_id in set(model_tally) | set(peer_tally):
        model_agreed, model_compared = model_tally.get(labeler_id, [0, 0])
        peer_agreed, peer_compared = peer_tally.get(labeler_id, [0, 0])
        lowest[labeler_id] = min(
            model_agreed / model_compared if model_compared else 1.0,
            peer_agreed / peer_compared if peer_compared else 1.0,
        )
        labelers.append(
            {
                "labeler_id": labeler_id,
                "username": names.get(labeler_id, ""),
                "model_agreement": model_agreed / model_compared if model_compared else None,
                "model_pairs": model_compared,
                "peer_agreement": peer_agreed / peer_compared if peer_compared else None,
                "peer_pairs": peer_compared,
            }
        )
    labelers.sort(key=lambda row: (lowest[row["labeler_id"]], row["username"]))
    excluded = [
        {"id": r.id, "prompt_id": r.prompt_id, "labeler": r.labeler, "quality_state": r.quality_state}
        for r in rankings
        if not r.counts
    ]
    return {
        "reward_model": active.pk if active else None,
        "reward_model_version": active.version if active else None,
        "confident": confident,
        "prompts": prompts,
        "labelers": labelers,
        "excluded": excluded,
    }
