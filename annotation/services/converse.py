"""Writes for the converse task: a labeler talks to the model, ranking its K live replies turn by turn.

A conversation is a path in a tree of prompts. Each turn is an ordinary converse Assignment on the
prompt that holds the conversation so far; its replies stream in (annotation/services/live.py);
the labeler's order of them is an ordinary Ranking of that prompt, so agreement, consensus,
exports and reward-model training read it with no special case. Continuing makes (or finds) the
child prompt whose turns add the reply the labeler continued with and their next user turn, and
leases its turn to the same labeler. Other labelers reach these prompts through the queue: the
rank queue serves a turn's replies to be ranked again (overlap), the converse queue serves a
prefix to be continued differently (converse_per_prompt).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from annotation.models import Assignment, Candidate, Demonstration, LiveGeneration, Prompt, Ranking
from annotation.models.assignments import AssignmentStatus, TaskKind
from annotation.models.live import LiveStatus
from annotation.models.prompts import CandidateSource
from annotation.permissions import labeler_task_access_check, project_role
from annotation.ranking_math import order_validate
from annotation.selectors.converse import live_generation_is_stale
from annotation.services.assignments import assignment_get_for_labeler
from annotation.services.candidates import candidate_text_hash
from annotation.services.demonstrations import demonstration_text_validate
from annotation.services.live import live_generation_restart, live_generation_start
from annotation.services.prompts import turns_hash, turns_normalise
from annotation.services.rankings import ItemInput, ranking_record, ratings_required_check
from annotation.services.submissions import prompt_done_counts_add, submission_store
from annotation.services.webhooks import webhook_ranking_submitted
from annotation.sql.queue import projects_for_labeler_list
from config.errors import Conflict, NotFound, ValidationFailed

MAX_TURN_CHARS = 20_000


@dataclass(frozen=True)
class TurnEdit:
    """The labeler's rewrite of one reply of the turn: stored as its own candidate, ranked just above it."""

    candidate_id: int
    text: str


@dataclass(frozen=True)
class TurnResult:
    ranking: Ranking
    next_assignment: Assignment | None  # the next turn, leased to the same labeler; None when ended


def _user_turn_validate(*, text: Any, what: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ValidationFailed(f"{what} is empty: write what the user says", code="empty_turn")
    if len(text) > MAX_TURN_CHARS:
        raise ValidationFailed(f"{what} is longer than {MAX_TURN_CHARS} characters", code="turn_too_long")
    return text.strip()


@transaction.atomic
def converse_open(*, labeler: User, project_id: int, opening: str) -> Assignment:
    """Start a conversation from the labeler's own opening user turn, where the project allows it.

    The opening becomes a prompt of the project (or finds the one with the same text) and the
    labeler's first turn is leased on it at once.
    """
    projects = {
        project.pk: project for project in projects_for_labeler_list(user=labeler, project_id=project_id)
    }
    project = projects.get(project_id)
    if project is None:
        labeler_task_access_check(user=labeler, role=project_role(user=labeler, project=project_id))
        raise NotFound(f"no active project {project_id} that you belong to", code="project_not_found")
    if project.converse_per_prompt <= 0:
        raise ValidationFailed("this project has no conversations with the model", code="converse_disabled")
    if not project.converse_own_opening:
        raise ValidationFailed(
            "this project asks you to start from one of its prompts, not your own",
            code="own_opening_disabled",
        )
    turns = turns_normalise(
        turns=[{"role": "user", "content": _user_turn_validate(text=opening, what="the opening")}]
    )
    prompt, _ = Prompt.objects.get_or_create(
        project=project,
        content_hash=turns_hash(turns=turns),
        defaults={"turns": turns, "source": "converse", "opened_by": labeler},
    )
    return _turn_lease(prompt=prompt, labeler=labeler, previous=None)


def _turn_lease(*, prompt: Prompt, labeler: User, previous: Assignment | None) -> Assignment:
    """Lease the converse turn on `prompt` to `labeler` directly (not through the queue) and start its replies."""
    if Ranking.objects.filter(prompt=prompt, labeler=labeler).exists() or (
        Assignment.objects.filter(prompt=prompt, labeler=labeler, kind=TaskKind.CONVERSE)
        .exclude(status=AssignmentStatus.EXPIRED)
        .exists()
    ):
        raise Conflict(
            "you have already ranked the replies to this very conversation; say something different",
            code="already_ranked",
        )
    now = timezone.now()
    project = prompt.project
    assignment = Assignment.objects.create(
        project=project,
        prompt=prompt,
        labeler=labeler,
        kind=TaskKind.CONVERSE,
        status=AssignmentStatus.LEASED,
        leased_at=now,
        expires_at=now + timedelta(seconds=project.lease_seconds),
        previous=previous,
    )
    live_generation_start(assignment=assignment, now=now)
    return assignment


@transaction.atomic
def converse_retry(*, assignment_id: int, labeler: User) -> LiveGeneration:
    """Generate the turn's replies again after a failure, or after its worker went silent."""
    assignment = assignment_get_for_labeler(assignment_id=assignment_id, labeler=labeler, lock=True)
    if assignment.kind != TaskKind.CONVERSE:
        raise ValidationFailed(f"assignment {assignment.pk} is a {assignment.kind} task", code="wrong_kind")
    if assignment.status in (AssignmentStatus.SUBMITTED, AssignmentStatus.SKIPPED):
        raise Conflict(f"this task is {assignment.status}", code=f"already_{assignment.status}")
    live = LiveGeneration.objects.select_for_update().filter(assignment=assignment).first()
    if live is None:
        return live_generation_start(assignment=assignment)
    if live.status == LiveStatus.DONE:
        raise Conflict("the replies are already written; rank them", code="replies_ready")
    if live.status != LiveStatus.FAILED and not live_generation_is_stale(live=live):
        raise Conflict("the replies are still being written", code="replies_streaming")
    return live_generation_restart(live=live)


def _order_with_edit(*, order: list[list[int]], edit_id: int, source_id: int) -> list[list[int]]:
    """The order with the edit as a group of its own just above the group of the reply it came from."""
    result: list[list[int]] = []
    for group in order:
        if source_id in group:
            result.append([edit_id])
        result.append(list(group))
    return result


def converse_turn_submit(
    *,
    assignment_id: int,
    labeler: User,
    idempotency_key: str,
    order: Any,
    items: dict[int, ItemInput] | None = None,
    comment: str = "",
    seconds_spent: float = 0.0,
    none_acceptable: bool = False,
    reply: str = "",
    edit: TurnEdit | None = None,
    continue_with: int | None = None,
    next_user_turn: str = "",
) -> tuple[TurnResult, bool]:
    """Store the turn's ranking and, with `next_user_turn`, lease the next turn: (result, created).

    - `order` ranks exactly the replies shown (ties allowed), as for a rank task.
    - `edit` rewrites one reply: stored as a candidate marked as an edit, ranked just above it.
    - `none_acceptable`: no reply is good enough; `reply` is then the labeler's own reply (stored as
      a demonstration of this prompt, in context) and the conversation continues with it.
    - Otherwise it continues with the edit, else `continue_with` (a reply of the best group), else
      the first reply of the best group as shown.
    - Without `next_user_turn` the conversation ends here; past the project's converse_max_turns
      it must end.
    A retry with the same idempotency key returns the first result and writes nothing.
    """
    items = items or {}

    def store(assignment: Assignment, seconds: float) -> TurnResult:
        project, prompt = assignment.project, assignment.prompt
        if not assignment.shown_order:
            raise Conflict(
                "the replies are still being written; rank them once they are done", code="replies_pending"
            )
        shown: Sequence[int] = assignment.shown_order
        cleaned = order_validate(order=order, candidate_ids=shown)
        ratings_required_check(project=project, items=items, candidate_ids=shown)
        next_turn = _user_turn_validate(text=next_user_turn, what="your next turn") if next_user_turn else ""
        if next_turn and prompt.converse_depth + 1 >= project.converse_max_turns:
            raise ValidationFailed(
                f"this conversation has reached the project's {project.converse_max_turns} turns; end it here",
                code="max_turns",
            )
        written = ""
        if none_acceptable:
            written = demonstration_text_validate(text=reply, min_chars=project.min_demonstration_chars)
        elif reply:
            raise ValidationFailed(
                "write your own reply only when no reply is acceptable", code="reply_unexpected"
            )
        candidate_ids = list(shown)
        edit_candidate: Candidate | None = None
        if edit is not None:
            if edit.candidate_id not in shown:
                raise ValidationFailed(
                    f"reply {edit.candidate_id} was not shown in this turn", code="unknown_candidate"
                )
            edit_text = demonstration_text_validate(text=edit.text, min_chars=1)
            source = Candidate.objects.get(pk=edit.candidate_id)
            if candidate_text_hash(text=edit_text) == source.content_hash:
                raise ValidationFailed(
                    "the edit is the same as the reply; change it or leave it", code="edit_unchanged"
                )
            edit_candidate = Candidate.objects.filter(
                prompt=prompt, content_hash=candidate_text_hash(text=edit_text)
            ).first() or Candidate.objects.create(
                prompt=prompt,
                text=edit_text,
                content_hash=candidate_text_hash(text=edit_text),
                source=CandidateSource.EDIT,
                edited_from=source,
                edited_by=labeler,
            )
            if edit_candidate.pk in shown:
                raise ValidationFailed(
                    "the edit is the same as another reply of this turn", code="edit_duplicate"
                )
            cleaned = _order_with_edit(order=cleaned, edit_id=edit_candidate.pk, source_id=source.pk)
            candidate_ids.append(edit_candidate.pk)
        if continue_with is not None and continue_with not in cleaned[0]:
            raise ValidationFailed(
                "continue with one of the replies you ranked best", code="continue_not_best"
            )
        ranking = ranking_record(
            prompt=prompt,
            candidate_ids=candidate_ids,
            order=cleaned,
            labeler=labeler,
            items=items,
            comment=comment,
            seconds_spent=seconds,
            assignment=assignment,
            none_acceptable=none_acceptable,
        )
        webhook_ranking_submitted(ranking=ranking, project_id=assignment.project_id)

        continued: Candidate
        if written:
            demonstration = Demonstration.objects.create(
                prompt=prompt, labeler=labeler, text=written, seconds_spent=0
            )
            prompt_done_counts_add(prompt_id=prompt.pk, kind=TaskKind.DEMONSTRATE)
            content_hash = candidate_text_hash(text=written)
            continued = Candidate.objects.filter(prompt=prompt, content_hash=content_hash).first() or (
                Candidate.objects.create(
                    prompt=prompt,
                    text=written,
                    content_hash=content_hash,
                    source=CandidateSource.DEMONSTRATION,
                    demonstration=demonstration,
                )
            )
        elif edit_candidate is not None:
            continued = edit_candidate
        else:
            best = (
                continue_with
                if continue_with is not None
                else next(pk for pk in shown if pk in set(cleaned[0]))
            )
            continued = Candidate.objects.get(pk=best)
        if not next_turn:
            return TurnResult(ranking=ranking, next_assignment=None)
        turns = turns_normalise(
            turns=[
                *prompt.turns,
                {"role": "assistant", "content": continued.text},
                {"role": "user", "content": next_turn},
            ]
        )
        child, _ = Prompt.objects.get_or_create(
            project=project,
            content_hash=turns_hash(turns=turns),
            defaults={
                "turns": turns,
                "parent": prompt,
                "parent_candidate": continued,
                "converse_depth": prompt.converse_depth + 1,
                "source": "converse",
                "priority": prompt.priority,
            },
        )
        return TurnResult(
            ranking=ranking, next_assignment=_turn_lease(prompt=child, labeler=labeler, previous=assignment)
        )

    def stored(assignment: Assignment) -> TurnResult:
        following = Assignment.objects.filter(previous=assignment).first()
        return TurnResult(ranking=Ranking.objects.get(assignment=assignment), next_assignment=following)

    return submission_store(
        assignment_id=assignment_id,
        labeler=labeler,
        kind=TaskKind.CONVERSE,
        idempotency_key=idempotency_key,
        seconds_spent=seconds_spent,
        store=store,
        stored=stored,
    )
