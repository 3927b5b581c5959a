"""Webhooks: create them, emit events in the transaction that caused them, deliver each one signed.

An event is emitted inside the write's transaction: a delivery row per active webhook of the project
that subscribes to it (none: one indexed query, nothing written), and its Celery task is sent once
that transaction commits. A rolled-back write so leaves no delivery and sends nothing, and a
committed one keeps its deliveries even if the broker is down then: `webhook_deliveries_resend`
(beat, every minute) sends again those long past due.

Delivery is at least once: a receiver may see a delivery twice (a worker killed mid-request, a
message re-sent), with the same X-RLHF-Delivery id, and should drop repeats by it. Each attempt is
signed afresh (annotation/webhooks/signing.py) over the same body, so a retry's timestamp is current.
"""

from __future__ import annotations

import json
import logging
import random
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotation.models import Demonstration, ExportJob, Ranking, Webhook, WebhookDelivery
from annotation.models.webhooks import SUBSCRIBABLE_EVENTS, DeliveryStatus, WebhookEvent
from annotation.webhooks.sending import WebhookHostRefused, webhook_post, webhook_url_check
from annotation.webhooks.signing import HEADER, signature_header
from config.celery import task_send, task_send_safely
from config.errors import ValidationFailed

logger = logging.getLogger(__name__)

# By name: the tasks module imports this one.
DELIVER_TASK = "annotation.webhook_deliver"
# Retries wait WEBHOOK_BACKOFF_SECONDS, doubled each time, at most this long: a message held for its
# countdown counts against the broker's visibility timeout (11 minutes by default).
BACKOFF_MAX_SECONDS = 5 * 60
# A pending delivery this long past due lost its message (broker down at commit, a worker killed,
# a Redis restarted without persistence): the re-send job sends it again.
RESEND_AFTER = timedelta(minutes=5)
# While an attempt is in flight its delivery is due again only after the request could have timed
# out, so a duplicate message meanwhile does not send it twice; and a retry whose worker's clock
# runs a little ahead of this one's is not taken for a duplicate.
IN_FLIGHT_GRACE = timedelta(seconds=60)
CLOCK_SLACK = timedelta(seconds=5)
MAX_ERROR_CHARS = 2000


def webhook_secret_generate() -> str:
    """A new signing secret: 256 bits, url-safe, with a prefix that says what it is."""
    return "whsec_" + secrets.token_urlsafe(32)


def webhook_url_validate(*, url: str) -> None:
    """Refuse a URL whose host WEBHOOK_ALLOWED_HOSTS does not allow (as it resolves now)."""
    try:
        webhook_url_check(url=url, allowed_hosts=settings.WEBHOOK_ALLOWED_HOSTS)
    except WebhookHostRefused as error:
        raise ValidationFailed(error.message, code="webhook_host_refused") from None


def webhook_events_validate(*, events: Any) -> list[str]:
    """The subscribed event names, de-duplicated in the documented order; unknown names refused."""
    if not isinstance(events, list) or not all(isinstance(event, str) for event in events):
        raise ValidationFailed("events must be a list of event names", code="invalid_events")
    unknown = sorted(set(events) - set(SUBSCRIBABLE_EVENTS))
    if unknown:
        raise ValidationFailed(
            f"unknown webhook event(s) {unknown}; known: {SUBSCRIBABLE_EVENTS}",
            code="invalid_events",
            details={"unknown": unknown},
        )
    return [event for event in SUBSCRIBABLE_EVENTS if event in events]


@transaction.atomic
def webhook_create(
    *, project_id: int, url: str, events: list[str], secret: str = "", is_active: bool = True
) -> Webhook:
    """A webhook for the project, its URL checked against WEBHOOK_ALLOWED_HOSTS; without a
    `secret`, a new one is generated (read it from the returned row, once, to give the receiver)."""
    webhook_url_validate(url=url)
    return Webhook.objects.create(
        project_id=project_id,
        url=url,
        events=webhook_events_validate(events=events),
        secret=secret or webhook_secret_generate(),
        is_active=is_active,
    )


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


def _json_ready(value: Any) -> Any:
    """`value` with its datetimes as ISO 8601 text (UTC as Z, as the API writes them)."""
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(item) for item in value]
    return value


def _envelope(*, event: str, project_id: int, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "event": event,
        "created_at": _iso(timezone.now()),
        "project_id": project_id,
        "data": _json_ready(data),
    }


# No savepoint of its own: it runs inside the caller's write (a submission), whose error rolls
# everything back anyway.
@transaction.atomic(savepoint=False)
def webhook_event_emit(*, project_id: int, event: str, data: dict[str, Any]) -> list[int]:
    """Record `event` (with `data`: JSON values and datetimes) for every active webhook of the project subscribed
    to it, in the caller's transaction, and send each delivery's task once it commits.

    Returns the delivery ids (none when no webhook listens). Call it after the write it reports.
    """
    webhook_ids = [
        webhook_id
        for webhook_id, events in Webhook.objects.filter(project_id=project_id, is_active=True).values_list(
            "pk", "events"
        )
        if isinstance(events, list) and event in events
    ]
    if not webhook_ids:
        return []
    payload = _envelope(event=event, project_id=project_id, data=data)
    now = timezone.now()
    deliveries = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(webhook_id=webhook_id, event=event, payload=payload, next_attempt_at=now)
        for webhook_id in webhook_ids
    )
    delivery_ids = [delivery.pk for delivery in deliveries]
    # robust: the write is committed whatever happens here; an unsent delivery is re-sent later.
    transaction.on_commit(lambda: webhook_deliveries_send(delivery_ids=delivery_ids), robust=True)
    return delivery_ids


def webhook_ranking_submitted(*, ranking: Ranking, project_id: int) -> None:
    webhook_event_emit(
        project_id=project_id,
        event=WebhookEvent.RANKING_SUBMITTED,
        data={
            "ranking_id": ranking.pk,
            "prompt_id": ranking.prompt_id,
            "assignment_id": ranking.assignment_id,
            "labeler_id": ranking.labeler_id,
            "order": ranking.order,
            "seconds_spent": ranking.seconds_spent,
            "created_at": ranking.created_at,
        },
    )


def webhook_demonstration_submitted(*, demonstration: Demonstration, project_id: int) -> None:
    webhook_event_emit(
        project_id=project_id,
        event=WebhookEvent.DEMONSTRATION_SUBMITTED,
        data={
            "demonstration_id": demonstration.pk,
            "prompt_id": demonstration.prompt_id,
            "assignment_id": demonstration.assignment_id,
            "labeler_id": demonstration.labeler_id,
            "chars": len(demonstration.text),
            "seconds_spent": demonstration.seconds_spent,
            "created_at": demonstration.created_at,
        },
    )


def webhook_export_finished(*, job: ExportJob) -> None:
    """For a job that has just succeeded or failed (re-read from the database by the caller)."""
    webhook_event_emit(
        project_id=job.project_id,
        event=WebhookEvent.EXPORT_FINISHED,
        data={
            "export_job_id": job.pk,
            "status": job.status,
            "export_format": job.export_format,
            "file_format": job.file_format,
            "rows_written": job.rows_written,
            "error": job.error,
            "download_path": f"/api/exports/{job.pk}/download" if job.status == "succeeded" else None,
            "finished_at": job.finished_at,
        },
    )


@transaction.atomic
def webhook_test_send(*, webhook: Webhook, requested_by: str = "") -> WebhookDelivery:
    """Send a `webhook.test` event to this webhook now, active or not, whatever it subscribes to."""
    data = {
        "webhook_id": webhook.pk,
        "message": "A test event" + (f", sent by {requested_by}" if requested_by else ""),
    }
    delivery = WebhookDelivery.objects.create(
        webhook=webhook,
        event=WebhookEvent.TEST,
        payload=_envelope(event=WebhookEvent.TEST, project_id=webhook.project_id, data=data),
        next_attempt_at=timezone.now(),
    )
    delivery_ids = [delivery.pk]
    transaction.on_commit(lambda: webhook_deliveries_send(delivery_ids=delivery_ids), robust=True)
    return delivery


def webhook_deliveries_send(*, delivery_ids: list[int]) -> list[int]:
    """Send the deliveries' tasks now (after their rows committed); returns the ids the broker
    took. One that did not stays pending for `webhook_deliveries_resend`."""
    return [
        delivery_id
        for delivery_id in delivery_ids
        if task_send_safely(
            partial(task_send, DELIVER_TASK, delivery_id), what=f"webhook delivery {delivery_id}"
        )
    ]


@transaction.atomic
def webhook_deliveries_resend(*, now: datetime | None = None) -> list[int]:
    """Send again the pending deliveries more than RESEND_AFTER past due; returns their ids."""
    now = now or timezone.now()
    lost = list(
        WebhookDelivery.objects.select_for_update(skip_locked=True)
        .filter(status=DeliveryStatus.PENDING, next_attempt_at__lt=now - RESEND_AFTER)
        .values_list("pk", flat=True)[:1000]
    )
    if not lost:
        return []
    # Due now, so the re-sent message is not taken for a duplicate; a failed send is found again.
    WebhookDelivery.objects.filter(pk__in=lost).update(next_attempt_at=now)
    delivery_ids = list(lost)
    transaction.on_commit(lambda: webhook_deliveries_send(delivery_ids=delivery_ids), robust=True)
    logger.warning("re-sending %d webhook deliveries past due", len(lost))
    return lost


@dataclass(frozen=True)
class DeliveryAttempt:
    status: str
    retry_in_seconds: float | None = None  # set when another attempt is due after this wait


def webhook_backoff_seconds(*, attempts: int) -> float:
    """The wait after the `attempts`-th failed attempt: the base doubled each time, capped, with
    half of it random so that receivers coming back are not hit by every retry at once."""
    delay = min(BACKOFF_MAX_SECONDS, settings.WEBHOOK_BACKOFF_SECONDS * 2 ** (attempts - 1))
    return delay / 2 + random.uniform(0, delay / 2)


def _body(payload: Any) -> bytes:
    # The same bytes on every attempt: keys sorted, no spaces.
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def webhook_delivery_attempt(*, delivery_id: int) -> DeliveryAttempt | None:
    """Make the next attempt of a pending delivery; None when there is nothing to do (delivered,
    given up, deleted, or an attempt already in flight: a duplicate message).

    The row is claimed (attempts counted) in a short transaction and the request made outside
    any, so no lock is held while the receiver answers.
    """
    now = timezone.now()
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update()
            .select_related("webhook")
            .filter(pk=delivery_id, status=DeliveryStatus.PENDING)
            .first()
        )
        if delivery is None or (delivery.next_attempt_at and delivery.next_attempt_at > now + CLOCK_SLACK):
            return None
        webhook = delivery.webhook
        if not webhook.is_active and delivery.event != WebhookEvent.TEST:
            delivery.status = DeliveryStatus.FAILED
            delivery.error = "the webhook was deactivated before this event was delivered"
            delivery.save(update_fields=["status", "error"])
            return DeliveryAttempt(status=delivery.status)
        delivery.attempts += 1
        delivery.last_attempt_at = now
        delivery.next_attempt_at = now + timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS) + IN_FLIGHT_GRACE
        delivery.save(update_fields=["attempts", "last_attempt_at", "next_attempt_at"])

    body = _body(delivery.payload)
    response = webhook_post(
        url=webhook.url,
        body=body,
        headers={
            HEADER: signature_header(secret=webhook.secret, body=body),
            "X-RLHF-Event": delivery.event,
            "X-RLHF-Delivery": str(delivery.uuid),
        },
        timeout_seconds=settings.WEBHOOK_TIMEOUT_SECONDS,
        allowed_hosts=settings.WEBHOOK_ALLOWED_HOSTS,
    )
    finished = timezone.now()
    update: dict[str, Any] = {
        "response_code": response.status_code,
        "error": response.error[:MAX_ERROR_CHARS],
    }
    retry_in: float | None = None
    if response.ok:
        update.update(status=DeliveryStatus.DELIVERED, delivered_at=finished, next_attempt_at=None)
    elif response.retryable and delivery.attempts < settings.WEBHOOK_MAX_ATTEMPTS:
        retry_in = webhook_backoff_seconds(attempts=delivery.attempts)
        update.update(next_attempt_at=finished + timedelta(seconds=retry_in))
    else:
        if response.retryable:
            update["error"] = f"gave up after {delivery.attempts} attempts: {response.error}"[
                :MAX_ERROR_CHARS
            ]
        update.update(status=DeliveryStatus.FAILED, next_attempt_at=None)
    # Only this attempt's claim: a row deleted meanwhile (its webhook removed) stays deleted.
    WebhookDelivery.objects.filter(pk=delivery.pk, attempts=delivery.attempts).update(**update)
    if not response.ok:
        logger.warning(
            "webhook delivery %s (%s) attempt %d failed%s: %s",
            delivery.pk,
            delivery.event,
            delivery.attempts,
            f", retrying in {retry_in:.0f} s" if retry_in is not None else "",
            response.error,
        )
    return DeliveryAttempt(status=update.get("status", DeliveryStatus.PENDING), retry_in_seconds=retry_in)
