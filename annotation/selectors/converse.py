"""Reads for the converse task: a turn's state and its replies as they stream."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from annotation.models import Assignment, LiveGeneration
from annotation.models.live import LiveStatus

# A row that neither a worker nor the queue has touched for this long has lost its worker (killed,
# or the message lost): the page says so and offers a retry. Longer than any pause between writes.
STALE_AFTER = timedelta(seconds=30)


def live_generation_is_stale(*, live: LiveGeneration, now: datetime | None = None) -> bool:
    """True when a queued or streaming row has not changed for STALE_AFTER: its worker is gone."""
    now = now or timezone.now()
    return live.status in (LiveStatus.QUEUED, LiveStatus.RUNNING) and live.updated_at < now - STALE_AFTER


def live_state(*, live: LiveGeneration | None, now: datetime | None = None) -> dict[str, Any] | None:
    """What the page shows of a turn's replies: status (or "stalled"), texts so far, error."""
    if live is None:
        return None
    stale = live_generation_is_stale(live=live, now=now)
    return {
        "status": "stalled" if stale else live.status,
        "texts": list(live.texts),
        "finished": list(live.finished),
        "error": live.error
        or (
            "Nothing has arrived from the model for a while; its worker may have stopped. Retry."
            if stale
            else ""
        ),
        "attempt": live.attempt,
    }


def live_state_for_assignment(*, assignment_id: int, now: datetime | None = None) -> dict[str, Any] | None:
    """The turn's live state read fresh from the database (the stream endpoint polls this)."""
    live = LiveGeneration.objects.filter(assignment_id=assignment_id).first()
    return live_state(live=live, now=now)


def converse_task_data(*, assignment: Assignment) -> dict[str, Any]:
    """Where a converse turn stands: its number, whether another may follow, and its live replies."""
    project, prompt = assignment.project, assignment.prompt
    turn = prompt.converse_depth + 1
    live = LiveGeneration.objects.filter(assignment_id=assignment.pk).first()
    return {
        "turn": turn,
        "max_turns": project.converse_max_turns,
        "can_continue": turn < project.converse_max_turns,
        "previous_assignment": assignment.previous_id,
        "live": live_state(live=live),
    }
