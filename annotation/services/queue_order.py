"""Writes of the queue strategy's order: each prompt's `queue_rank` (higher is served first).

The order is decided elsewhere from stored scores (rewards.services.queue_order for the reward
model's uncertainty and disagreements); this only stores it, so that a lease reads one indexed
column and no strategy costs a request anything.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction
from django.db.models import Case, IntegerField, Value, When

from annotation.models import Prompt

# Prompts written per UPDATE: one statement with a CASE of this many branches.
BATCH = 500


@transaction.atomic
def prompts_queue_rank_set(*, project_id: int, ranked: Sequence[int]) -> int:
    """Serve `ranked` (prompt ids of the project, first to be served first) in that order within
    each priority; every other prompt of the project gets 0. Returns how many prompts changed.

    Ids of other projects are ignored. A prompt's rank is len(ranked) - its index, so the first
    gets the highest.
    """
    wanted = {prompt_id: len(ranked) - index for index, prompt_id in enumerate(ranked)}
    current = dict(
        Prompt.objects.filter(project_id=project_id).exclude(queue_rank=0).values_list("pk", "queue_rank")
    )
    changes = {pk: 0 for pk in current if pk not in wanted}
    changes.update({pk: rank for pk, rank in wanted.items() if current.get(pk, 0) != rank})
    items = list(changes.items())
    for start in range(0, len(items), BATCH):
        batch = items[start : start + BATCH]
        Prompt.objects.filter(project_id=project_id, pk__in=[pk for pk, _ in batch]).update(
            queue_rank=Case(
                *[When(pk=pk, then=Value(rank)) for pk, rank in batch],
                default=Value(0),
                output_field=IntegerField(),
            )
        )
    return len(items)
