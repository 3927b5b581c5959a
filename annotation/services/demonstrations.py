"""Writes for demonstrations: a labeler's own answer to a prompt, submitted through an assignment."""

from __future__ import annotations

import math

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from annotation.errors import Conflict, ValidationFailed
from annotation.models import Demonstration
from annotation.models.assignments import TaskKind
from annotation.rows import row_exists
from annotation.services.assignments import assignment_claim_for_submit, assignment_mark_submitted
from annotation.services.leases import prompt_done_counts_add

MAX_DEMONSTRATION_CHARS = 50_000
MAX_SECONDS_SPENT = 7 * 24 * 3600


def demonstration_text_validate(*, text: str, min_chars: int) -> str:
    """The answer with surrounding whitespace removed, or ValidationFailed saying what is wrong."""
    if not isinstance(text, str):
        raise ValidationFailed("the answer must be text", code="invalid_text")
    cleaned = text.strip()
    if not cleaned:
        raise ValidationFailed(
            "The answer is empty: write the reply a good assistant would give.", code="empty_answer"
        )
    if len(cleaned) < min_chars:
        raise ValidationFailed(
            f"The answer has {len(cleaned)} characters; this project asks for at least {min_chars}.",
            code="too_short",
            details={"chars": len(cleaned), "min_chars": min_chars},
        )
    if len(cleaned) > MAX_DEMONSTRATION_CHARS:
        raise ValidationFailed(
            f"The answer is longer than {MAX_DEMONSTRATION_CHARS} characters.", code="too_long"
        )
    return cleaned


def seconds_spent_validate(*, seconds_spent: float) -> float:
    if (
        isinstance(seconds_spent, bool)
        or not isinstance(seconds_spent, int | float)
        or not math.isfinite(seconds_spent)
        or not 0 <= seconds_spent <= MAX_SECONDS_SPENT
    ):
        raise ValidationFailed(
            f"seconds_spent must be a number between 0 and {MAX_SECONDS_SPENT}", code="invalid_time"
        )
    return float(seconds_spent)


@transaction.atomic
def demonstration_submit(
    *,
    assignment_id: int,
    labeler: User,
    text: str,
    idempotency_key: str,
    seconds_spent: float = 0.0,
) -> tuple[Demonstration, bool]:
    """Store the labeler's answer for their demonstrate assignment: (demonstration, created).

    A retry with the same idempotency key returns the first demonstration and writes nothing.
    """
    now = timezone.now()
    assignment, replay = assignment_claim_for_submit(
        assignment_id=assignment_id,
        labeler=labeler,
        kind=TaskKind.DEMONSTRATE,
        idempotency_key=idempotency_key,
        now=now,
    )
    if replay:
        return Demonstration.objects.get(assignment=assignment), False
    cleaned = demonstration_text_validate(text=text, min_chars=assignment.project.min_demonstration_chars)
    seconds = seconds_spent_validate(seconds_spent=seconds_spent)
    if row_exists(
        f"SELECT 1 FROM {Demonstration._meta.db_table} WHERE prompt_id = %s AND labeler_id = %s LIMIT 1",
        [assignment.prompt_id, labeler.pk],
    ):
        raise Conflict(
            "you have already written a demonstration for this prompt", code="already_demonstrated"
        )
    demonstration = Demonstration.objects.create(
        prompt_id=assignment.prompt_id,
        labeler=labeler,
        assignment=assignment,
        text=cleaned,
        seconds_spent=seconds,
    )
    prompt_done_counts_add(prompt_id=assignment.prompt_id, kind=TaskKind.DEMONSTRATE)
    assignment_mark_submitted(assignment=assignment, idempotency_key=idempotency_key, now=now)
    return demonstration, True
