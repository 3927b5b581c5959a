"""Writes for quality control: marking a ranking as gold."""

from __future__ import annotations

from django.db import transaction

from annotation.models import Ranking


@transaction.atomic
def ranking_gold_set(*, ranking: Ranking, is_gold: bool) -> Ranking:
    """Mark (or unmark) a ranking as a known-good reference that labelers' rankings are compared with."""
    if ranking.is_gold != is_gold:
        ranking.is_gold = is_gold
        ranking.save(update_fields=["is_gold"])
    return ranking
