"""Writes for demonstrations: a labeler's own answer to a prompt, submitted through an assignment."""

from __future__ import annotations

from django.contrib.auth.models import User

from annotation.models import Demonstration
from annotation.models.assignments import Assignment, TaskKind
from annotation.services.review import demonstration_review_sample
from annotation.services.submissions import prompt_done_counts_add, submission_store
from annotation.services.webhooks import webhook_demonstration_submitted
from config.errors import ValidationFailed

MAX_DEMONSTRATION_CHARS = 50_000


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


def demonstration_submit(
    *,
    assignment_id: int,
    labeler: User,
    text: str,
    idempotency_key: str,
    seconds_spent: float = 0.0,
) -> tuple[Demonstration, bool]:
    """Store the labeler's answer for their demonstrate assignment: (demonstration, created).

    Checks the assignment (see `submission_store`). A retry with the same idempotency key returns
    the first demonstration and writes nothing.
    """

    def store(assignment: Assignment, seconds: float) -> Demonstration:
        cleaned = demonstration_text_validate(text=text, min_chars=assignment.project.min_demonstration_chars)
        demonstration = Demonstration.objects.create(
            prompt_id=assignment.prompt_id,
            labeler=labeler,
            assignment=assignment,
            text=cleaned,
            seconds_spent=seconds,
        )
        prompt_done_counts_add(prompt_id=assignment.prompt_id, kind=TaskKind.DEMONSTRATE)
        demonstration_review_sample(demonstration=demonstration, project=assignment.project)
        # Sent once this submission commits; a rolled-back one sends nothing.
        webhook_demonstration_submitted(demonstration=demonstration, project_id=assignment.project_id)
        return demonstration

    return submission_store(
        assignment_id=assignment_id,
        labeler=labeler,
        kind=TaskKind.DEMONSTRATE,
        idempotency_key=idempotency_key,
        seconds_spent=seconds_spent,
        store=store,
        stored=lambda assignment: Demonstration.objects.get(assignment=assignment),
    )
