"""Writes for candidates: topping a prompt up to K distinct answers, the periodic top-up of each
project's pool, and the admin's "generate now" and "regenerate".

Sampling takes seconds, so no transaction is held while a model runs; a prompt's new candidates
and its bookkeeping (queue mark, error) are written together in one short transaction at the end.
A failed run therefore leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from annotation.generation.base import GenerationBackend
from annotation.models import Assignment, Candidate, Project, Prompt, Ranking
from annotation.models.assignments import AssignmentStatus, TaskKind
from annotation.models.prompts import CandidateSource
from annotation.selectors.candidates import (
    ERROR_COOLDOWN,
    PROMPTS_PER_MEMBER,
    QUEUED_STALE_AFTER,
    candidate_hashes,
    demonstrations_without_candidate,
    labelers_active,
    project_low_water_mark,
    project_pool_counts,
    projects_active,
    prompts_by_ids_with_counts,
    prompts_short_of_candidates,
)
from annotation.selectors.queue import prompts_needing_work
from annotation.services.generation import generation_backend_get, generation_sampling_get
from config.celery import task_send
from config.errors import NotFound

# Sent by name (see config.celery.task_send): the tasks module imports this one.
GENERATE_TASK = "annotation.generation.candidates_generate"

# Samples a run may draw per missing candidate: the first round asks for what is missing, later ones
# replace duplicates and empty answers until this budget is spent. A small base model at a sane
# temperature gives about one empty or repeated answer in ten (Gemma 3 270M, measured), so three per
# missing candidate leaves a run of four short about once in six million runs, where a fixed three
# rounds fell short about once in 250; a model that only repeats itself (temperature 0, say) gets an
# error on the prompt instead of an endless loop.
MAX_SAMPLES_PER_MISSING = 3
MAX_ERROR_CHARS = 2000
_seed_source = random.SystemRandom()


def candidate_text_hash(*, text: str) -> str:
    """SHA-256 of the text with whitespace runs collapsed: answers that differ only in spacing are one."""
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CandidateDraft:
    """A candidate ready to be stored; built in memory while sampling, written all together."""

    text: str
    content_hash: str
    source: str
    backend: str = ""
    model_name: str = ""
    sampling_params: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    generation_seconds: float | None = None
    finish_reason: str = ""
    demonstration_id: int | None = None


@dataclass
class GenerationOutcome:
    prompt_id: int
    k: int
    created: int = 0
    total: int = 0
    samples: int = 0
    completion_tokens: int = 0
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def candidates_generate(*, prompt_id: int, backend: GenerationBackend | None = None) -> GenerationOutcome:
    """Top the prompt up to its project's K distinct candidates; a prompt that has K is left alone.

    Demonstrations come first when the project puts them among the candidates; model samples fill
    the rest, each with its provenance. Raises NotFound for a deleted prompt, and GenerationFailed
    or GenerationUnavailable from the backend, in every case with nothing written.
    """
    prompt = Prompt.objects.select_related("project").filter(pk=prompt_id).first()
    if prompt is None:
        raise NotFound(f"prompt {prompt_id} does not exist")
    project = prompt.project
    outcome = GenerationOutcome(prompt_id=prompt_id, k=project.k)
    seen = candidate_hashes(prompt_id=prompt_id)
    missing = project.k - len(seen)
    drafts: list[CandidateDraft] = []

    if missing > 0 and project.demonstrations_as_candidates:
        for demonstration in demonstrations_without_candidate(prompt_id=prompt_id):
            if len(drafts) == missing:
                break
            content_hash = candidate_text_hash(text=demonstration.text)
            if content_hash in seen:
                continue
            seen.add(content_hash)
            drafts.append(
                CandidateDraft(
                    text=demonstration.text.strip(),
                    content_hash=content_hash,
                    source=CandidateSource.DEMONSTRATION,
                    demonstration_id=demonstration.pk,
                )
            )

    if len(drafts) < missing:
        backend = backend or generation_backend_get(project=project)
        sampling = generation_sampling_get(project=project)
        record = backend.sampling_record(sampling=sampling)
        budget = MAX_SAMPLES_PER_MISSING * (missing - len(drafts))
        while (wanted := min(missing - len(drafts), budget - outcome.samples)) > 0:
            seeds = [_seed_source.randrange(1, 2**31 - 1) for _ in range(wanted)]
            completions = backend.generate(turns=prompt.turns, sampling=sampling, seeds=seeds)
            if not completions:  # a backend that answers nothing would otherwise be asked forever
                break
            for completion in completions:
                outcome.samples += 1
                content_hash = candidate_text_hash(text=completion.text)
                if not completion.text or content_hash in seen:
                    continue
                seen.add(content_hash)
                drafts.append(
                    CandidateDraft(
                        text=completion.text,
                        content_hash=content_hash,
                        source=CandidateSource.MODEL,
                        backend=backend.name,
                        model_name=backend.model_name,
                        sampling_params=record,
                        seed=completion.seed,
                        prompt_tokens=completion.prompt_tokens,
                        completion_tokens=completion.completion_tokens,
                        generation_seconds=round(completion.seconds, 4),
                        finish_reason=completion.finish_reason[:20],
                    )
                )

    error_if_short = (
        f"only {len(drafts)} of the {missing} missing candidates came out distinct and non-empty "
        f"after {outcome.samples} samples; raise the temperature or check the model and prompt format"
    )
    created, outcome.total, short = candidates_store(
        prompt_id=prompt_id, drafts=drafts, k=project.k, error_if_short=error_if_short
    )
    outcome.created = len(created)
    outcome.completion_tokens = sum(candidate.completion_tokens or 0 for candidate in created)
    outcome.error = error_if_short if short else ""
    return outcome


@transaction.atomic
def candidates_store(
    *, prompt_id: int, drafts: list[CandidateDraft], k: int, error_if_short: str = ""
) -> tuple[list[Candidate], int, bool]:
    """Store the drafts that are still new, up to K in all, and settle the prompt's bookkeeping.

    Locks the prompt row so two workers topping up the same prompt never pass K between them.
    Clears the queue mark; records `error_if_short` when the prompt is still short of K, and
    clears any earlier error otherwise. Returns (created candidates, total, still short).
    """
    prompt = Prompt.objects.select_for_update().filter(pk=prompt_id).first()
    if prompt is None:
        return [], 0, False
    existing = candidate_hashes(prompt_id=prompt_id)
    taken_demonstrations = set(
        Candidate.objects.filter(
            demonstration_id__in=[d.demonstration_id for d in drafts if d.demonstration_id]
        ).values_list("demonstration_id", flat=True)
    )
    new: list[Candidate] = []
    for draft in drafts:
        if len(existing) >= k:
            break
        if draft.content_hash in existing or draft.demonstration_id in taken_demonstrations:
            continue
        existing.add(draft.content_hash)
        new.append(Candidate(prompt_id=prompt_id, **asdict(draft)))
    Candidate.objects.bulk_create(new)

    short = len(existing) < k
    prompt.generation_queued_at = None
    if short and error_if_short:
        prompt.generation_error, prompt.generation_error_at = error_if_short[:MAX_ERROR_CHARS], timezone.now()
    elif not short:
        prompt.generation_error, prompt.generation_error_at = "", None
    prompt.save(update_fields=["generation_queued_at", "generation_error", "generation_error_at"])
    return new, len(existing), short


@transaction.atomic
def prompt_generation_error_record(*, prompt_id: int, message: str) -> None:
    """Show on the prompt why it has no candidates, and take it off the queue."""
    Prompt.objects.filter(pk=prompt_id).update(
        generation_error=message[:MAX_ERROR_CHARS],
        generation_error_at=timezone.now(),
        generation_queued_at=None,
    )


@transaction.atomic
def prompt_generation_retrying(*, prompt_id: int) -> None:
    """Refresh the queue mark while a job waits to retry, so the top-up does not enqueue a second one."""
    Prompt.objects.filter(pk=prompt_id).update(generation_queued_at=timezone.now())


def _enqueue_after_commit(*, prompt_ids: list[int]) -> None:
    for prompt_id in prompt_ids:
        # robust: a broker hiccup for one prompt must not break the others; its queue mark goes
        # stale and the next top-up enqueues it again.
        transaction.on_commit(partial(task_send, GENERATE_TASK, prompt_id), robust=True)


def _prompts_claim(*, prompt_ids: list[int], now: datetime) -> list[int]:
    """Mark the prompts queued and return those this call claimed.

    SKIP LOCKED on PostgreSQL lets two overlapping top-ups split the prompts instead of both
    enqueueing them: the row condition is re-checked on the locked, latest version of each row.
    """
    unclaimed = Q(generation_queued_at__isnull=True) | Q(generation_queued_at__lt=now - QUEUED_STALE_AFTER)
    claimed = list(
        Prompt.objects.select_for_update(skip_locked=True)
        .filter(pk__in=prompt_ids)
        .filter(unclaimed)
        .values_list("pk", flat=True)
    )
    Prompt.objects.filter(pk__in=claimed).update(generation_queued_at=now)
    return claimed


@transaction.atomic
def candidates_top_up(*, now: datetime | None = None) -> dict[int, list[int]]:
    """Keep each active project's pool of ready prompts at its low-water mark, and every working
    labeler supplied.

    Counts ready prompts plus prompts already being generated, and enqueues generation for just
    enough of the next prompts (highest priority first) to reach the mark. A pool can meet its mark
    with prompts only some labelers may still take (a fast labeler has ranked them all, a slower one
    has not): so each labeler who took a task lately also gets PROMPTS_PER_MEMBER prompts that they
    themselves could rank, ready or on their way. Repeated runs enqueue nothing more until a queued
    job finishes or its mark goes stale. Returns {project id: prompt ids}.
    """
    now = now or timezone.now()
    enqueued: dict[int, list[int]] = {}
    for project in projects_active().select_for_update(skip_locked=True):
        # The lock makes overlapping top-ups take turns per project (one that finds it taken skips
        # it): the pool is counted in one statement and the prompts listed in the next, and a
        # top-up committing in between would otherwise be counted by neither and doubled.
        if project.rankings_per_prompt == 0:
            continue
        ready, generating = project_pool_counts(project=project, now=now)
        deficit = project_low_water_mark(project=project) - ready - generating
        prompt_ids = (
            list(prompts_short_of_candidates(project=project, now=now).values_list("pk", flat=True)[:deficit])
            if deficit > 0
            else []
        )
        prompt_ids += _prompts_for_waiting_labelers(project=project, now=now, taken=set(prompt_ids))
        claimed = _prompts_claim(prompt_ids=prompt_ids, now=now)
        if claimed:
            _enqueue_after_commit(prompt_ids=claimed)
            enqueued[project.pk] = claimed
    return enqueued


def _prompts_for_waiting_labelers(*, project: Project, now: datetime, taken: set[int]) -> list[int]:
    """Prompts to generate so that each labeler active in the project has rankable work of their own."""
    chosen: list[int] = []
    for labeler in labelers_active(project=project, now=now):
        theirs = prompts_needing_work(
            project=project, labeler=labeler, kind=TaskKind.RANK, now=now, candidates_ready=False
        ).filter(Q(generation_error_at__isnull=True) | Q(generation_error_at__lt=now - ERROR_COOLDOWN))
        # Ready, on their way, or claimed by this run for someone else but theirs to rank as well.
        # Unordered and capped at what is wanted, so that the scan stops as soon as a labeler is
        # known to be supplied: the usual case, run for every working labeler every top-up.
        ready_or_coming = len(
            theirs.filter(
                Q(ready__gte=project.k)
                | Q(generation_queued_at__gte=now - QUEUED_STALE_AFTER)
                | Q(pk__in=taken)
            )
            .order_by()
            .values_list("pk", flat=True)[:PROMPTS_PER_MEMBER]
        )
        need = PROMPTS_PER_MEMBER - ready_or_coming
        if need <= 0:
            continue
        short = (
            theirs.filter(Q(ready__lt=project.k))  # `ready`: the specification's candidate count
            .filter(
                Q(generation_queued_at__isnull=True) | Q(generation_queued_at__lt=now - QUEUED_STALE_AFTER)
            )
            .exclude(pk__in=taken)
            .order_by("-priority", "-queue_rank", "id")
            .values_list("pk", flat=True)[:need]
        )
        for prompt_id in short:
            taken.add(prompt_id)
            chosen.append(prompt_id)
    return chosen


@transaction.atomic
def prompts_generate_now(*, prompt_ids: list[int]) -> tuple[int, int]:
    """Enqueue generation for the prompts short of K at once, skipping the pool and any error cooldown.

    Returns (queued, already_full).
    """
    prompts = list(prompts_by_ids_with_counts(prompt_ids=prompt_ids))
    short = [prompt.pk for prompt in prompts if prompt.candidate_count < prompt.project.k]
    Prompt.objects.filter(pk__in=short).update(
        generation_queued_at=timezone.now(), generation_error="", generation_error_at=None
    )
    _enqueue_after_commit(prompt_ids=short)
    return len(short), len(prompts) - len(short)


@transaction.atomic
def prompts_regenerate(*, prompt_ids: list[int]) -> tuple[int, int]:
    """Replace the model candidates of prompts nobody has ranked or is ranking, then enqueue generation.

    Demonstration and imported candidates stay. A prompt with a ranking, or with a ranking task
    leased or submitted, is skipped: its candidates are what a labeler saw. Returns (regenerated, skipped).
    """
    locked = list(Prompt.objects.select_for_update().filter(pk__in=prompt_ids).values_list("pk", flat=True))
    ranked = set(Ranking.objects.filter(prompt_id__in=locked).values_list("prompt_id", flat=True))
    ranked |= set(
        Assignment.objects.filter(
            prompt_id__in=locked,
            kind=TaskKind.RANK,
            status__in=[AssignmentStatus.LEASED, AssignmentStatus.SUBMITTED],
        ).values_list("prompt_id", flat=True)
    )
    chosen = [prompt_id for prompt_id in locked if prompt_id not in ranked]
    Candidate.objects.filter(prompt_id__in=chosen, source=CandidateSource.MODEL).delete()
    Prompt.objects.filter(pk__in=chosen).update(
        generation_queued_at=timezone.now(), generation_error="", generation_error_at=None
    )
    _enqueue_after_commit(prompt_ids=chosen)
    return len(chosen), len(locked) - len(chosen)
