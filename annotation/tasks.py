"""Celery tasks of the annotation app: thin shells over services."""

from __future__ import annotations

import logging

from celery import shared_task

from annotation.services.leases import assignments_expire as assignments_expire_service
from annotation.services.leases import prompt_done_counts_reconcile as prompt_done_counts_reconcile_service

logger = logging.getLogger(__name__)


@shared_task(name="annotation.assignments_expire", soft_time_limit=60, time_limit=90)
def assignments_expire() -> int:
    expired = assignments_expire_service()
    if expired:
        logger.info("expired %d assignment lease(s)", expired)
    return expired


@shared_task(name="annotation.prompt_done_counts_reconcile", soft_time_limit=5 * 60, time_limit=6 * 60)
def prompt_done_counts_reconcile() -> int:
    repaired = prompt_done_counts_reconcile_service()
    if repaired:
        logger.info("repaired the done counts of %d prompt(s)", repaired)
    return repaired


@shared_task(name="annotation.export_run", soft_time_limit=50 * 60, time_limit=55 * 60)
def export_run(job_id: int) -> str | None:
    """Write one queued ExportJob to its file under EXPORT_DIR (idempotent: see export_job_run)."""
    from annotation.services.exports import export_job_run

    job = export_job_run(job_id=job_id)
    return job.status if job else None
