"""Writes for adjudication: a reviewer's order of a prompt whose labelers disagree, stored as gold.

Apart from services/review.py because ranking submission hooks into review, and adjudication stores
through ranking_record: one module holding both would import itself in a circle.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from annotation.models import Project, Prompt, Ranking
from annotation.models.rankings import RankingSource
from annotation.selectors.review import adjudication_candidate_ids
from annotation.services.quality import ranking_gold_set
from annotation.services.rankings import ranking_record
from config.errors import Conflict, NotFound, ValidationFailed


@transaction.atomic
def prompt_adjudicate(
    *, project: Project, prompt_id: int, reviewer: User, order: Sequence[Any], reason: str = ""
) -> Ranking:
    """Store a reviewer's adjudicated order of a prompt's answers as a gold ranking.

    Its source is "adjudication" with no labeler: it takes no labeler's slot and leaves the prompt's
    done count alone, and a reviewer who also ranked the prompt can still adjudicate it. The gold
    mark is a QualityEvent naming the reviewer. One adjudication per prompt (409 for a second).
    """
    prompt = Prompt.objects.select_for_update().filter(pk=prompt_id, project=project).first()
    if prompt is None:
        raise NotFound("no such prompt in this project", code="prompt_not_found")
    if Ranking.objects.filter(prompt=prompt, source=RankingSource.ADJUDICATION).exists():
        raise Conflict("this prompt has been adjudicated already", code="already_adjudicated")
    candidate_ids = adjudication_candidate_ids(prompt=prompt)
    if len(candidate_ids) < 2:
        raise ValidationFailed(
            "this prompt has no counted rankings to adjudicate", code="nothing_to_adjudicate"
        )
    ranking = ranking_record(
        prompt=prompt,
        candidate_ids=candidate_ids,
        order=order,
        labeler=None,
        comment=(reason or "").strip()[:2000],
        source=RankingSource.ADJUDICATION,
    )
    return ranking_gold_set(
        ranking=ranking, is_gold=True, actor=reviewer, reason=f"adjudicated: {reason}".strip().rstrip(":")
    )
