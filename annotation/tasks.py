"""Celery tasks of the annotation app: thin shells over services.

Task names are part of the contract with beat schedules, the routes in config/celery.py and
messages already queued, so they stay as registered even where they no longer match the module
(the generation tasks were once defined in annotation.generation).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.utils.time import get_exponential_backoff_interval

from annotation.generation.base import GenerationFailed, GenerationUnavailable
from annotation.services import candidates as candidate_services
from annotation.services.assignments import assignments_expire as assignments_expire_service
from annotation.services.exports import export_job_run
from annotation.services.exports import export_jobs_resend as export_jobs_resend_service
from annotation.services.live import live_generation_fail, live_generation_run
from annotation.services.prompt_imports import prompt_import_job_run
from annotation.services.signals import projects_signals_review
from annotation.services.submissions import (
    prompt_done_counts_reconcile as prompt_done_counts_reconcile_service,
)
from annotation.services.webhooks import webhook_deliveries_resend as webhook_deliveries_resend_service
from annotation.services.webhooks import webhook_delivery_attempt
from config.celery import time_limits
from config.errors import NotFound

logger = logging.getLogger(__name__)

# Retries of a passing backend failure: up to about 30 s, 1, 2, 4 and 4 minutes apart (full jitter),
# so a server restart or a short outage is ridden out. Each retry refreshes the prompt's queue mark;
# a wait plus one attempt (GENERATION_TIME_LIMIT) stays inside QUEUED_STALE_AFTER
# (annotation/selectors/candidates.py), and a wait inside the broker's visibility timeout, which a
# message held for its countdown also counts against.
MAX_RETRIES = 5
RETRY_BACKOFF_SECONDS = 30
RETRY_BACKOFF_MAX_SECONDS = 4 * 60
# One attempt: K samples, each an HTTP request with its own timeouts and retries, or a local model's
# seconds. Running past it is a passing failure, retried like one.
GENERATION_TIME_LIMIT = 8 * 60


@shared_task(name="annotation.assignments_expire", **time_limits(90))
def assignments_expire() -> int:
    expired = assignments_expire_service()
    if expired:
        logger.info("expired %d assignment lease(s)", expired)
    return expired


@shared_task(name="annotation.prompt_done_counts_reconcile", **time_limits(6 * 60))
def prompt_done_counts_reconcile() -> int:
    repaired = prompt_done_counts_reconcile_service()
    if repaired:
        logger.info("repaired the done counts of %d prompt(s)", repaired)
    return repaired


# As long as the settings' CELERY_TASK_TIME_LIMIT allows (10 minutes by default): exports stream,
# so this is millions of rows; an export past it fails with the reason on the job.
@shared_task(name="annotation.export_run", **time_limits(55 * 60))
def export_run(job_id: int) -> str | None:
    """Write one queued ExportJob to its file under EXPORT_DIR (idempotent: see export_job_run)."""
    job = export_job_run(job_id=job_id)
    return job.status if job else None


# A 100,000-prompt file takes well under a minute; the bound leaves room for files of any size the
# upload allows (MAX_IMPORT_BYTES) within the settings' cap on every task.
@shared_task(name="annotation.prompt_import_run", soft_time_limit=9 * 60, time_limit=10 * 60)
def prompt_import_run(job_id: int) -> str | None:
    """Import one queued prompt file, all or nothing (idempotent: see prompt_import_job_run)."""
    job = prompt_import_job_run(job_id=job_id)
    return job.status if job else None


@shared_task(name="annotation.export_jobs_resend", **time_limits(60))
def export_jobs_resend() -> list[int]:
    """Periodic (every minute): send the export jobs whose task never reached the broker."""
    return export_jobs_resend_service()


@shared_task(
    bind=True,
    name="annotation.generation.candidates_generate",
    max_retries=MAX_RETRIES,
    **time_limits(GENERATION_TIME_LIMIT),
)
def candidates_generate(self: Any, prompt_id: int) -> dict[str, Any]:
    """Top one prompt up to K candidates; retries passing backend errors, records the final one."""
    try:
        return candidate_services.candidates_generate(prompt_id=prompt_id).as_dict()
    except NotFound:
        logger.info("prompt %s was deleted before its candidates were generated", prompt_id)
        return {"prompt_id": prompt_id, "error": "prompt deleted"}
    except (GenerationUnavailable, SoftTimeLimitExceeded) as error:
        message = getattr(error, "message", "") or "generation ran past its time limit"
        attempts = self.request.retries + 1
        if self.request.retries < self.max_retries:
            candidate_services.prompt_generation_retrying(prompt_id=prompt_id)
            countdown = get_exponential_backoff_interval(
                factor=RETRY_BACKOFF_SECONDS,
                retries=self.request.retries,
                maximum=RETRY_BACKOFF_MAX_SECONDS,
                full_jitter=True,
            )
            logger.warning(
                "prompt %s: generation attempt %d failed, retrying: %s", prompt_id, attempts, message
            )
            raise self.retry(exc=error, countdown=countdown) from None
        final = f"gave up after {attempts} attempts: {message}"
    except GenerationFailed as error:
        final = error.message
    candidate_services.prompt_generation_error_record(prompt_id=prompt_id, message=final)
    logger.warning("prompt %s: candidate generation failed: %s", prompt_id, final)
    return {"prompt_id": prompt_id, "error": final}


# A converse turn's K replies: a labeler is watching, so no retries by the broker (the page offers
# one); the limit covers K x max_tokens at a slow CPU's pace.
LIVE_TIME_LIMIT = 5 * 60


@shared_task(name="annotation.live_generate", **time_limits(LIVE_TIME_LIMIT))
def live_generate(live_id: int, attempt: int) -> str:
    """Stream one converse turn's replies into its LiveGeneration row (see annotation/services/live.py)."""
    try:
        return live_generation_run(live_id=live_id, attempt=attempt)
    except SoftTimeLimitExceeded:
        live_generation_fail(
            live_id=live_id, attempt=attempt, message="The replies took too long to write; retry."
        )
        return "timed out"


@shared_task(name="annotation.generation.candidates_top_up", **time_limits(90))
def candidates_top_up() -> dict[str, list[int]]:
    """Periodic: enqueue generation where a project's pool of ready prompts is below its mark."""
    enqueued = candidate_services.candidates_top_up()
    for project_id, prompt_ids in enqueued.items():
        logger.info("project %s: queued generation for %d prompt(s)", project_id, len(prompt_ids))
    return {str(project_id): prompt_ids for project_id, prompt_ids in enqueued.items()}


# One attempt is one request, whose connection and each read are bounded by WEBHOOK_TIMEOUT_SECONDS.
@shared_task(bind=True, name="annotation.webhook_deliver", max_retries=None, **time_limits(2 * 60))
def webhook_deliver(self: Any, delivery_id: int) -> str | None:
    """One attempt of a webhook delivery (idempotent: see webhook_delivery_attempt). A passing
    failure is retried after its backoff; the service counts the attempts and stops at
    WEBHOOK_MAX_ATTEMPTS, so Celery's own count is not bounded here."""
    attempt = webhook_delivery_attempt(delivery_id=delivery_id)
    if attempt is None:
        return None
    if attempt.retry_in_seconds is not None:
        raise self.retry(countdown=attempt.retry_in_seconds)
    return attempt.status


@shared_task(name="annotation.webhook_deliveries_resend", **time_limits(60))
def webhook_deliveries_resend() -> list[int]:
    """Periodic (every minute): send again the webhook deliveries whose message was lost."""
    return webhook_deliveries_resend_service()


@shared_task(name="annotation.labeler_signals_review", **time_limits(5 * 60))
def labeler_signals_review() -> dict[str, dict[str, int]]:
    """Periodic: send the recent work of labelers whose bias or spam signals fire to review (idempotent:
    work already sent or reviewed is left alone, see annotation/services/signals.py)."""
    return {
        str(result.project_id): {
            "labelers_flagged": len(result.flagged),
            "rankings_sent": result.rankings_sent,
            "demonstrations_sent": result.demonstrations_sent,
        }
        for result in projects_signals_review()
    }
