"""Consensus ranking of one prompt from all its stored rankings (ranked pairs: annotation.ranking_math)."""

from __future__ import annotations

from annotation.models import Ranking
from annotation.models.quality import COUNTING_STATES
from annotation.ranking_math import Consensus, consensus_from_orders


def prompt_consensus(*, prompt_id: int) -> Consensus:
    """The consensus of every ranking of one prompt that counts (excluded and rejected ones do not)."""
    orders = list(
        Ranking.objects.filter(prompt_id=prompt_id, quality_state__in=COUNTING_STATES)
        .order_by("id")
        .values_list("order", flat=True)
    )
    return consensus_from_orders(orders=orders)
