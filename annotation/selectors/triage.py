"""Reads for triage: a project's labeler rankings with their quality state, and candidate texts."""

from __future__ import annotations

from dataclasses import dataclass

from annotation.models import Candidate, Prompt, Ranking
from annotation.models.quality import COUNTING_STATES
from annotation.models.rankings import RankingSource


@dataclass(frozen=True)
class TriageRanking:
    id: int
    prompt_id: int
    labeler_id: int
    labeler: str
    order: list[list[int]]
    quality_state: str
    is_gold: bool

    @property
    def counts(self) -> bool:
        return self.quality_state in COUNTING_STATES


def triage_rankings(*, project_id: int) -> list[TriageRanking]:
    """Every labeler ranking of the project (counting or not), by prompt then id."""
    return [
        TriageRanking(*row)
        for row in Ranking.objects.filter(prompt__project_id=project_id, source=RankingSource.LABELER)
        .order_by("prompt_id", "id")
        .values_list(
            "id", "prompt_id", "labeler_id", "labeler__username", "order", "quality_state", "is_gold"
        )
    ]


def candidate_texts(*, candidate_ids: list[int]) -> dict[int, str]:
    return dict(Candidate.objects.filter(pk__in=candidate_ids).values_list("pk", "text"))


def prompt_titles(*, prompt_ids: list[int]) -> dict[int, tuple[str, int]]:
    """Each prompt's title and the rankings triage asked for beyond the overlap."""
    return {
        prompt.pk: (prompt.title, prompt.extra_rankings)
        for prompt in Prompt.objects.filter(pk__in=prompt_ids).only("pk", "turns", "extra_rankings")
    }
