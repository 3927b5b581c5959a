"""One prompt as a reviewer reads it: the conversation, every candidate, each ranking's place and
rating for each candidate, and the consensus, in a fixed number of queries whatever K and overlap.

The reward model's scores are not here: annotation does not read the rewards app, and the page
fetches them from its API by URL name (see rewards.selectors.reward_models.prompt_reward_scores).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from annotation.models import Candidate, Project, Prompt, Ranking, RankingItem
from annotation.ranking_math import AgreementTally, consensus_from_orders, orders_agreement
from config.errors import NotFound


@dataclass(frozen=True)
class ReviewRanking:
    id: int
    labeler: str | None  # None for imported preference data
    source: str
    is_gold: bool
    comment: str
    seconds_spent: float
    created_at: datetime
    none_acceptable: bool  # the labeler found no answer acceptable (the order still ranks them)


@dataclass(frozen=True)
class ReviewCell:
    """One ranking's verdict on one candidate; `rank` counts tie groups from 1 (best)."""

    rank: int | None  # None: this ranking did not include the candidate
    rating: int | None
    flags: list[str]


@dataclass
class ReviewCandidate:
    id: int
    text: str
    source: str
    model_name: str
    consensus_rank: int | None  # tie group in the consensus, from 1; None if never ranked
    cells: list[ReviewCell] = field(default_factory=list)  # one per ranking, in `rankings` order

    @property
    def mean_rating(self) -> float | None:
        ratings = [cell.rating for cell in self.cells if cell.rating is not None]
        return sum(ratings) / len(ratings) if ratings else None


@dataclass
class PromptReview:
    prompt: Prompt
    rankings: list[ReviewRanking]
    candidates: list[ReviewCandidate]  # consensus order first, unranked candidates last, by id
    consensus_order: list[list[int]]
    cycles_broken: int
    agreement: AgreementTally

    @property
    def none_acceptable(self) -> int:
        """How many rankings found no answer acceptable."""
        return sum(ranking.none_acceptable for ranking in self.rankings)


def prompt_review_get(*, project: Project, prompt_id: int) -> PromptReview:
    """The prompt `prompt_id` of `project` with its candidates, rankings and consensus (4 queries).

    Raises NotFound when the prompt does not exist or belongs to another project, so a reviewer of
    one project cannot read another's prompts by guessing ids. The caller checks the role.
    """
    prompt = Prompt.objects.filter(pk=prompt_id, project=project).first()
    if prompt is None:
        raise NotFound("no such prompt in this project", code="prompt_not_found")
    candidates = list(
        Candidate.objects.filter(prompt=prompt)
        .order_by("id")
        .values_list("id", "text", "source", "model_name")
    )
    rankings = list(
        Ranking.objects.filter(prompt=prompt)
        .order_by("created_at", "id")
        .values_list(
            "id",
            "labeler__username",
            "source",
            "is_gold",
            "comment",
            "seconds_spent",
            "created_at",
            "none_acceptable",
            "order",
        )
    )
    items = {
        (ranking_id, candidate_id): (rank, rating, flags)
        for ranking_id, candidate_id, rank, rating, flags in RankingItem.objects.filter(
            ranking__prompt=prompt
        ).values_list("ranking_id", "candidate_id", "rank", "rating", "flags")
    }
    orders = [row[8] for row in rankings]
    consensus = consensus_from_orders(orders=orders)
    consensus_rank = {
        candidate_id: position for position, group in enumerate(consensus.order, 1) for candidate_id in group
    }
    review_candidates = []
    for candidate_id, text, source, model_name in candidates:
        cells = []
        for ranking in rankings:
            item = items.get((ranking[0], candidate_id))
            cells.append(
                ReviewCell(rank=item[0] + 1, rating=item[1], flags=item[2])
                if item
                else ReviewCell(rank=None, rating=None, flags=[])
            )
        review_candidates.append(
            ReviewCandidate(
                id=candidate_id,
                text=text,
                source=source,
                model_name=model_name,
                consensus_rank=consensus_rank.get(candidate_id),
                cells=cells,
            )
        )
    unranked = len(consensus.order) + 1
    review_candidates.sort(key=lambda c: (c.consensus_rank or unranked, c.id))
    return PromptReview(
        prompt=prompt,
        rankings=[ReviewRanking(*row[:8]) for row in rankings],
        candidates=review_candidates,
        consensus_order=consensus.order,
        cycles_broken=len(consensus.dropped),
        agreement=orders_agreement(orders),
    )
