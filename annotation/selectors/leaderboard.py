"""Reads for the generator leaderboard: which generator made each candidate, the data cut-off, and
the counted labeler rankings as plain rows of (ranking, tie group, generator).

A generator is what wrote a candidate and how: the backend, the model and the sampling settings
that change its answers (temperature, top_p, max_tokens). The seed, stop sequences and prompt
format do not make another generator: the first varies per sample by design, and the others are
fixed by the backend. Demonstrations, labelers' edits and imports are generators of their own (an
import per source name).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Count, Max, QuerySet

from annotation.models import Ranking, RankingItem
from annotation.models.prompts import CandidateSource
from annotation.models.quality import COUNTING_STATES, QualityEvent
from annotation.models.rankings import RankingSource

# The sampling settings that tell two generators of one model apart.
GENERATOR_SAMPLING_KEYS = ("temperature", "top_p", "max_tokens")
# Rows read from the database at a time: a project's ranking items can run to millions.
ITEM_CHUNK = 5000


@dataclass(frozen=True)
class Generator:
    name: str  # readable and unique: the leaderboard's row label
    source: str
    backend: str = ""
    model_name: str = ""
    sampling: dict[str, Any] = field(default_factory=dict)  # only GENERATOR_SAMPLING_KEYS

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "backend": self.backend,
            "model_name": self.model_name,
            "sampling": dict(self.sampling),
        }


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:g}"


def candidate_generator(
    *, source: str, backend: str = "", model_name: str = "", sampling_params: Any = None
) -> Generator:
    """The generator of a candidate with this provenance (see the module's docstring)."""
    if source == CandidateSource.DEMONSTRATION:
        return Generator(name="demonstration", source=source)
    if source == CandidateSource.EDIT:
        return Generator(name="edit", source=source)
    if source == CandidateSource.IMPORT:
        return Generator(
            name=f"import: {model_name}" if model_name else "import", source=source, model_name=model_name
        )
    params = sampling_params if isinstance(sampling_params, dict) else {}
    sampling = {key: params[key] for key in GENERATOR_SAMPLING_KEYS if params.get(key) is not None}
    name = ":".join(part for part in (backend, model_name) if part) or f"{source} (provenance unknown)"
    if sampling:
        name += " (" + ", ".join(f"{key}={_number(value)}" for key, value in sampling.items()) + ")"
    return Generator(name=name, source=source, backend=backend, model_name=model_name, sampling=sampling)


def leaderboard_rankings(*, project_id: int) -> QuerySet[Ranking]:
    """The rankings the leaderboard counts: labelers' (imports rank nothing a labeler saw) in a
    state that counts (counted, or under review until a reviewer decides)."""
    return Ranking.objects.filter(
        prompt__project_id=project_id,
        source=RankingSource.LABELER,
        quality_state__in=COUNTING_STATES,
    )


@dataclass(frozen=True)
class LeaderboardCutoff:
    """What the leaderboard's data are, in three numbers that change whenever they change."""

    latest_ranking_at: datetime | None  # the newest counted ranking (None: none yet)
    rankings: int  # counted rankings: falls when one is excluded, though the newest stays
    latest_quality_event_id: int | None  # a quality action on a ranking: an exclusion undone, say

    @property
    def key(self) -> str:
        latest = self.latest_ranking_at.isoformat() if self.latest_ranking_at else "-"
        return f"{latest}|{self.rankings}|{self.latest_quality_event_id or 0}"


def leaderboard_cutoff(*, project_id: int) -> LeaderboardCutoff:
    """The project's current data cut-off: two aggregate queries on indexed columns."""
    counted = leaderboard_rankings(project_id=project_id).aggregate(
        latest=Max("created_at"), count=Count("id")
    )
    quality = QualityEvent.objects.filter(
        ranking__isnull=False, ranking__prompt__project_id=project_id
    ).aggregate(latest=Max("id"))
    return LeaderboardCutoff(
        latest_ranking_at=counted["latest"],
        rankings=counted["count"],
        latest_quality_event_id=quality["latest"],
    )


@dataclass(frozen=True)
class RankedCandidateRow:
    """One candidate's place in one counted ranking: rank is its tie group, 0 = best."""

    ranking_id: int
    rank: int
    generator: str


@dataclass
class LeaderboardRows:
    rows: list[RankedCandidateRow]  # ordered by ranking, then rank
    generators: dict[str, Generator]  # by name, every generator that appears in rows


def leaderboard_ranked_candidates(*, project_id: int, cutoff: datetime | None) -> LeaderboardRows:
    """Every candidate's place in the counted rankings created at or before `cutoff` (None: all),
    with its generator."""
    items = RankingItem.objects.filter(ranking__in=leaderboard_rankings(project_id=project_id))
    if cutoff is not None:
        items = items.filter(ranking__created_at__lte=cutoff)
    columns = items.order_by("ranking_id", "rank", "candidate_id").values_list(
        "ranking_id",
        "rank",
        "candidate__source",
        "candidate__backend",
        "candidate__model_name",
        "candidate__sampling_params",
    )
    result = LeaderboardRows(rows=[], generators={})
    # Few distinct provenances, many items: name each provenance once.
    names: dict[tuple[str, str, str, str], str] = {}
    for ranking_id, rank, source, backend, model_name, sampling_params in columns.iterator(
        chunk_size=ITEM_CHUNK
    ):
        params = sampling_params if isinstance(sampling_params, dict) else {}
        provenance = (source, backend, model_name, repr(sorted(params.items())))
        name = names.get(provenance)
        if name is None:
            generator = candidate_generator(
                source=source, backend=backend, model_name=model_name, sampling_params=sampling_params
            )
            result.generators.setdefault(generator.name, generator)
            name = names[provenance] = generator.name
        result.rows.append(RankedCandidateRow(ranking_id=ranking_id, rank=rank, generator=name))
    return result


def candidate_provenance_fields() -> tuple[str, ...]:
    """The Candidate columns candidate_generator reads, for a caller that groups candidates by them."""
    return ("source", "backend", "model_name", "sampling_params")
