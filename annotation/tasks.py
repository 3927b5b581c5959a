"""Celery tasks of the annotation app: thin shells over services."""

from __future__ import annotations

import logging

from celery import shared_task

from annotation.services.leases import assignments_expire as assignments_expire_service

logger = logging.getLogger(__name__)


@shared_task(name="annotation.assignments_expire", soft_time_limit=60, time_limit=90)
def assignments_expire() -> int:
    expired = assignments_expire_service()
    if expired:
        logger.info("expired %d assignment lease(s)", expired)
    return expired
