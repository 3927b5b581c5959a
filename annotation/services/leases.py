"""Lease housekeeping shared by the queue and the periodic jobs."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from annotation.models import Assignment
from annotation.models.assignments import AssignmentStatus


@transaction.atomic
def assignments_expire(*, now: datetime | None = None) -> int:
    """Mark every lease past its expiry as expired, returning its slot to the queue.

    Returns how many leases expired. Safe to run concurrently and repeatedly: the update only
    touches rows still leased, so a submission that lands first keeps its status.
    """
    now = now or timezone.now()
    return Assignment.objects.filter(status=AssignmentStatus.LEASED, expires_at__lte=now).update(
        status=AssignmentStatus.EXPIRED
    )
