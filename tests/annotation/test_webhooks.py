"""Webhooks against a real HTTP receiver on loopback: signed payloads for every event, retries with
backoff through the Celery task until a receiver that was down (503, or refusing connections)
takes the event, nothing sent for a rolled-back transaction, the admin's test event and delivery
log, and hosts outside WEBHOOK_ALLOWED_HOSTS refused."""

from __future__ import annotations

import ast
import hashlib
import hmac
import json
import logging
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction
from django.test import override_settings
from rest_framework.test import APIClient

from annotation.models import Demonstration, Ranking, Webhook, WebhookDelivery
from annotation.models.assignments import TaskKind
from annotation.models.webhooks import SUBSCRIBABLE_EVENTS
from annotation.services.assignments import assignment_lease
from annotation.services.exports import export_job_create
from annotation.services.rankings import ranking_submit
from annotation.services.webhooks import webhook_create
from annotation.tasks import webhook_deliver
from annotation.webhooks import signing
from annotation.webhooks.signing import signature_header, verify_signature
from config.celery import app as celery_app
from config.errors import ValidationFailed
from rewards.services.runs import (
    reward_model_activate,
    reward_model_request,
    reward_model_start,
    reward_model_succeed,
)
from tests.annotation.export_data import ranked_prompt
from tests.annotation.queue_helpers import candidates_add

SECRET = "whsec_test-secret-0123456789"
# The documented payload (README: Webhooks): the envelope, and each event's data.
ENVELOPE_KEYS = {"id", "event", "created_at", "project_id", "data"}
DATA_KEYS = {
    "ranking.submitted": {
        "ranking_id", "prompt_id", "assignment_id", "labeler_id", "order", "seconds_spent", "created_at",
    },
    "demonstration.submitted": {
        "demonstration_id", "prompt_id", "assignment_id", "labeler_id", "chars", "seconds_spent", "created_at",
    },
    "export.finished": {
        "export_job_id", "status", "export_format", "file_format", "rows_written", "error", "download_path",
        "finished_at",
    },
    "reward_model.trained": {
        "reward_model_id", "version", "is_active", "validation_accuracy", "comparisons_seen", "data_cutoff",
        "trigger", "finished_at",
    },
    "webhook.test": {"webhook_id", "message"},
}  # fmt: skip
DATA_KEYS["reward_model.activated"] = DATA_KEYS["reward_model.trained"]


class Receiver:
    """A webhook receiver on 127.0.0.1 that answers each POST with the next scripted status (then
    200) and records it. Until `listen()`, its port is bound but not listening: connections are refused."""

    def __init__(self, *, listening: bool = True) -> None:
        self.script: list[int] = []
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class(), bind_and_activate=False)
        self._server.daemon_threads = True
        # Bound now, so the port is ours; listening (and so accepting) only once listen() is called.
        self._server.server_bind()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._listening = False
        if listening:
            self.listen()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/rlhf"

    def listen(self) -> None:
        if not self._listening:
            self._server.server_activate()
            self._thread.start()
            self._listening = True

    def stop(self) -> None:
        if self._listening:
            self._server.shutdown()
        self._server.server_close()

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(request["body"]) for request in self.requests]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    status = receiver.script.pop(0) if receiver.script else 200
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        return Handler


@pytest.fixture
def receiver():
    server = Receiver()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def webhook_settings(settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["*", "127.0.0.1"]  # loopback only because it is listed
    settings.WEBHOOK_BACKOFF_SECONDS = 0.0  # retries at once: the suite never sleeps on them
    settings.WEBHOOK_TIMEOUT_SECONDS = 2.0
    settings.WEBHOOK_MAX_ATTEMPTS = 4
    return settings


@pytest.fixture
def eager_celery():
    """Tasks run where they are sent, retries included (Celery applies a retry at once, eagerly)."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


def hook_for(project, receiver, events=SUBSCRIBABLE_EVENTS) -> Webhook:
    return webhook_create(project_id=project.pk, url=receiver.url, events=list(events), secret=SECRET)


def assert_signed_and_documented(request: dict[str, Any], *, event: str, project_id: int) -> dict:
    assert verify_signature(SECRET, request["headers"]["X-RLHF-Signature"], request["body"])
    assert request["headers"]["X-RLHF-Event"] == event
    assert request["headers"]["Content-Type"] == "application/json"
    payload = json.loads(request["body"])
    assert set(payload) == ENVELOPE_KEYS and payload["event"] == event and payload["project_id"] == project_id
    assert set(payload["data"]) == DATA_KEYS[event], payload["data"]
    return payload["data"]


# --- The signature -------------------------------------------------------------------------------


def test_the_signature_verifies_and_refuses_tampering_other_secrets_and_stale_timestamps():
    body = b'{"event":"ranking.submitted"}'
    header = signature_header(secret=SECRET, body=body, timestamp=1_700_000_000)
    # The documented scheme, computed here independently: v1 = HMAC-SHA256(secret, "<t>.<body>").
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    # The timestamp is signed too: moving it (to pass the age check) breaks the signature.
    assert not verify_signature(
        SECRET, header.replace("t=1700000000", "t=1700000100"), body, now=1_700_000_100
    )
    assert verify_signature(SECRET, header, body, now=1_700_000_100)
    assert verify_signature(SECRET, header, body.decode(), now=1_700_000_100)  # text or bytes
    assert not verify_signature(SECRET, header, body + b" ", now=1_700_000_100)
    assert not verify_signature("another-secret", header, body, now=1_700_000_100)
    assert not verify_signature(SECRET, header, body, now=1_700_000_301)  # past the 300 s tolerance
    assert verify_signature(SECRET, header, body, tolerance=600, now=1_700_000_301)
    # Another v1 (a secret being rotated) beside the right one still verifies; garbage never raises.
    assert verify_signature(SECRET, f"{header},v1=00ff", body, now=1_700_000_000)
    for bad in ["", "t=abc,v1=00", "v1=00", f"t=1700000000,v0={'0' * 64}", "nonsense"]:
        assert not verify_signature(SECRET, bad, body, now=1_700_000_000)


def test_the_readme_documents_each_events_payload():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    documented = {}
    for event in DATA_KEYS:
        [row] = [line for line in readme.splitlines() if line.startswith(f"| `{event}` |")]
        cell = row.split(" | ")[2]
        names = set(re.findall(r"`([a-z_]+)`", cell)) - {"succeeded", "failed"}
        same_as = re.fullmatch(r"as `([a-z_.]+)` \|", cell.strip())
        documented[event] = documented[same_as.group(1)] if same_as else names
    assert documented == DATA_KEYS


def test_the_signing_module_can_be_copied_as_is():
    """It imports only the standard library, so a receiver or the client can vendor the file."""
    tree = ast.parse(Path(signing.__file__).read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported <= {"__future__", "hashlib", "hmac", "time"}, imported


# --- Events, end to end --------------------------------------------------------------------------


def test_a_ranking_submitted_through_the_api_reaches_the_receiver_signed(
    project,
    labeler,
    make_prompts,
    receiver,
    webhook_settings,
    eager_celery,
    django_capture_on_commit_callbacks,
):
    hook_for(project, receiver, events=["ranking.submitted"])
    (prompt,) = make_prompts(project, 1)
    candidates_add(prompt, 4)
    client = APIClient()
    client.force_authenticate(labeler)
    task = client.post("/api/labeler/assignments/lease/", {"kind": "rank"}, format="json").json()
    order = [[candidate["id"]] for candidate in task["candidates"]]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/api/labeler/assignments/{task['id']}/ranking/",
            {"order": order, "idempotency_key": "rank-1"},
            format="json",
        )
        assert response.status_code in (200, 201), response.content
        assert receiver.requests == []  # nothing before the commit
    [request] = receiver.requests
    assert request["path"] == "/hooks/rlhf"
    data = assert_signed_and_documented(request, event="ranking.submitted", project_id=project.pk)
    ranking = Ranking.objects.get()
    assert data["ranking_id"] == ranking.pk and data["order"] == order and data["labeler_id"] == labeler.pk
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.response_code, delivery.attempts) == ("delivered", 200, 1)
    assert request["headers"]["X-RLHF-Delivery"] == str(delivery.uuid)

    # A retried submission (same idempotency key) stores nothing and sends nothing.
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            f"/api/labeler/assignments/{task['id']}/ranking/",
            {"order": order, "idempotency_key": "rank-1"},
            format="json",
        )
    assert len(receiver.requests) == 1


def test_a_demonstration_reaches_only_the_webhooks_subscribed_to_it(
    project,
    labeler,
    make_prompts,
    receiver,
    webhook_settings,
    eager_celery,
    django_capture_on_commit_callbacks,
):
    hook_for(project, receiver, events=["demonstration.submitted"])
    silent = Receiver()
    try:
        hook_for(project, silent, events=["ranking.submitted"])
        make_prompts(project, 1)
        client = APIClient()
        client.force_authenticate(labeler)
        task = client.post("/api/labeler/assignments/lease/", {"kind": "demonstrate"}, format="json").json()
        text = "A careful, complete answer to the question."
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                f"/api/labeler/assignments/{task['id']}/demonstration/",
                {"text": text, "idempotency_key": "demo-1", "seconds_spent": 42},
                format="json",
            )
        assert response.status_code in (200, 201), response.content
        assert silent.requests == []
    finally:
        silent.stop()
    [request] = receiver.requests
    data = assert_signed_and_documented(request, event="demonstration.submitted", project_id=project.pk)
    assert data["demonstration_id"] == Demonstration.objects.get().pk
    assert data["chars"] == len(text) and data["seconds_spent"] == 42


def test_an_export_finishing_is_announced_with_its_download(
    project, labeler, other_labeler, admin_user, receiver, webhook_settings, eager_celery, tmp_path,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    hook_for(project, receiver, events=["export.finished"])
    ranked_prompt(project, 0, [labeler, other_labeler], [[[0], [1], [2], [3]], [[1], [0], [2], [3]]])
    with override_settings(EXPORT_DIR=tmp_path), django_capture_on_commit_callbacks(execute=True):
        job = export_job_create(
            project=project, requested_by=admin_user, export_format="pairs", file_format="jsonl", filters={}
        )
    [request] = receiver.requests
    data = assert_signed_and_documented(request, event="export.finished", project_id=project.pk)
    job.refresh_from_db()
    assert data["status"] == "succeeded" == job.status and data["rows_written"] == job.rows_written > 0
    assert data["download_path"] == f"/api/exports/{job.pk}/download" and data["error"] == ""


def test_reward_model_versions_trained_and_activated_are_announced(
    project, receiver, webhook_settings, tmp_path, django_capture_on_commit_callbacks
):
    """The Celery task with its retry path, applied here: the training and scoring tasks the same
    commits send go to the broker, not run."""
    hook_for(project, receiver, events=["reward_model.trained", "reward_model.activated"])
    versions = []
    for _ in range(2):
        run = reward_model_request(project=project, trigger="api")
        reward_model_start(reward_model_id=run.pk)
        with django_capture_on_commit_callbacks(execute=True):
            versions.append(
                reward_model_succeed(
                    reward_model_id=run.pk, artifact_path=str(tmp_path), metrics={}, validation_accuracy=0.75
                )
            )
    with django_capture_on_commit_callbacks(execute=True):
        reward_model_activate(reward_model=versions[0])
    for delivery in WebhookDelivery.objects.order_by("pk"):
        webhook_deliver.apply(args=[delivery.pk])
    events = [
        (request["headers"]["X-RLHF-Event"], json.loads(request["body"])["data"])
        for request in receiver.requests
    ]
    assert [(event, data["version"]) for event, data in events] == [
        ("reward_model.trained", 1),
        ("reward_model.activated", 1),
        ("reward_model.trained", 2),
        ("reward_model.activated", 2),
        ("reward_model.activated", 1),
    ]
    for request in receiver.requests:
        assert_signed_and_documented(request, event=request["headers"]["X-RLHF-Event"], project_id=project.pk)
    assert events[0][1]["validation_accuracy"] == 0.75 and events[0][1]["is_active"] is True


# --- Retries -------------------------------------------------------------------------------------


def test_a_receiver_answering_503_twice_gets_the_event_on_the_third_attempt(
    project,
    labeler,
    make_prompts,
    receiver,
    webhook_settings,
    eager_celery,
    django_capture_on_commit_callbacks,
):
    hook_for(project, receiver)
    receiver.script = [503, 503]
    make_prompts(project, 1)
    assignment, _ = assignment_lease(labeler=labeler, kind=TaskKind.DEMONSTRATE)
    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):
        from annotation.services.demonstrations import demonstration_submit

        demonstration_submit(
            assignment_id=assignment.pk,
            labeler=labeler,
            text="An answer long enough to keep.",
            idempotency_key="d",
        )
    assert time.monotonic() - started < 5
    assert len(receiver.requests) == 3
    # One delivery: the same id and the same bytes each time, each attempt signed afresh.
    assert len({request["headers"]["X-RLHF-Delivery"] for request in receiver.requests}) == 1
    assert len({request["body"] for request in receiver.requests}) == 1
    assert all(
        verify_signature(SECRET, r["headers"]["X-RLHF-Signature"], r["body"]) for r in receiver.requests
    )
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.response_code, delivery.error) == (
        "delivered",
        3,
        200,
        "",
    )


def test_a_receiver_refusing_connections_twice_gets_the_event_on_the_third_attempt(
    project, labeler, make_prompts, webhook_settings, eager_celery, django_capture_on_commit_callbacks
):
    down = Receiver(listening=False)  # its port refuses connections until it listens

    class ComesBackAfterTwoFailures(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "attempt 2 failed" in record.getMessage():
                down.listen()

    handler = ComesBackAfterTwoFailures(level=logging.WARNING)
    logger = logging.getLogger("annotation.services.webhooks")
    logger.addHandler(handler)
    try:
        hook_for(project, down)
        make_prompts(project, 1)
        assignment, _ = assignment_lease(labeler=labeler, kind=TaskKind.DEMONSTRATE)
        with django_capture_on_commit_callbacks(execute=True):
            from annotation.services.demonstrations import demonstration_submit

            demonstration_submit(
                assignment_id=assignment.pk,
                labeler=labeler,
                text="An answer long enough to keep.",
                idempotency_key="d",
            )
        assert len(down.requests) == 1  # the two refused attempts never reached it
        assert_signed_and_documented(down.requests[0], event="demonstration.submitted", project_id=project.pk)
    finally:
        logger.removeHandler(handler)
        down.stop()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("delivered", 3, 200)


def test_attempts_are_bounded_and_final_answers_are_not_retried(
    project, receiver, webhook_settings, eager_celery, django_capture_on_commit_callbacks, admin_user
):
    from annotation.services.webhooks import webhook_test_send

    webhook = hook_for(project, receiver)
    receiver.script = [503] * 10
    with django_capture_on_commit_callbacks(execute=True):
        webhook_test_send(webhook=webhook)
    assert len(receiver.requests) == 4  # WEBHOOK_MAX_ATTEMPTS
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("failed", 4, 503)
    assert delivery.error.startswith("gave up after 4 attempts")

    for status in (404, 302):  # a setting to fix: once, and a redirect is never followed
        receiver.requests.clear()
        receiver.script = [status]
        with django_capture_on_commit_callbacks(execute=True):
            delivery = webhook_test_send(webhook=webhook)
        delivery.refresh_from_db()
        assert [request["path"] for request in receiver.requests] == ["/hooks/rlhf"]
        assert (delivery.status, delivery.attempts, delivery.response_code) == ("failed", 1, status)


# --- Transactions --------------------------------------------------------------------------------


def test_nothing_is_sent_for_a_rolled_back_transaction(
    transactional_db, project, labeler, make_prompts, receiver, webhook_settings, eager_celery
):
    """Real commits and a real rollback (no test transaction around them)."""
    hook_for(project, receiver)
    (prompt,) = make_prompts(project, 1)
    candidates_add(prompt, 4)
    assignment, _ = assignment_lease(labeler=labeler, kind=TaskKind.RANK)
    order = [[candidate_id] for candidate_id in assignment.shown_order]
    with pytest.raises(RuntimeError, match="after the ranking"), transaction.atomic():
        ranking_submit(assignment_id=assignment.pk, labeler=labeler, order=order, idempotency_key="k")
        raise RuntimeError("something failed after the ranking was written")
    assert not Ranking.objects.exists() and not WebhookDelivery.objects.exists()
    assert receiver.requests == []
    # The same submission committed is sent: the receiver above would have seen a leak.
    ranking_submit(assignment_id=assignment.pk, labeler=labeler, order=order, idempotency_key="k")
    assert [request["headers"]["X-RLHF-Event"] for request in receiver.requests] == ["ranking.submitted"]


# --- Hosts ---------------------------------------------------------------------------------------


def test_hosts_outside_the_allowlist_are_refused_when_saved_and_when_sent(
    project, receiver, settings, webhook_settings, eager_celery, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_ALLOWED_HOSTS = ["*"]  # the default: public hosts only
    for url in (
        receiver.url,
        "http://169.254.169.254/latest/meta-data",
        "http://10.1.2.3/hook",
        "ftp://x.org/",
    ):
        with pytest.raises(ValidationFailed) as refused:
            webhook_create(project_id=project.pk, url=url, events=["ranking.submitted"])
        assert refused.value.code == "webhook_host_refused"
    assert "WEBHOOK_ALLOWED_HOSTS" in str(refused.value.message) or "http" in refused.value.message
    assert not Webhook.objects.exists()

    # Allowed when saved, refused when the allowlist no longer lists it: no request is made.
    settings.WEBHOOK_ALLOWED_HOSTS = ["*", "127.0.0.1"]
    webhook = hook_for(project, receiver)
    settings.WEBHOOK_ALLOWED_HOSTS = ["*"]
    from annotation.services.webhooks import webhook_test_send

    with django_capture_on_commit_callbacks(execute=True):
        delivery = webhook_test_send(webhook=webhook)
    delivery.refresh_from_db()
    assert receiver.requests == []
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("failed", 1, None)
    assert "WEBHOOK_ALLOWED_HOSTS" in delivery.error and "loopback" in delivery.error


# --- The admin -----------------------------------------------------------------------------------


def test_the_admin_creates_a_webhook_with_a_secret_shown_once_and_stored_encrypted(
    project, admin_user, client, webhook_settings, receiver
):
    client.force_login(admin_user)
    response = client.post(
        "/admin/annotation/webhook/add/",
        {
            "project": project.pk,
            "url": receiver.url,
            "events": ["ranking.submitted"],
            "secret": "",
            "is_active": "on",
        },
        follow=True,
    )
    assert response.status_code == 200
    webhook = Webhook.objects.get()
    assert webhook.secret.startswith("whsec_") and len(webhook.secret) > 40
    assert webhook.secret in response.content.decode()  # shown once, to copy into the receiver
    assert webhook.events == ["ranking.submitted"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM annotation_webhook WHERE id = %s", [webhook.pk])
        (stored,) = cursor.fetchone()
    assert webhook.secret not in stored and "whsec_" not in stored  # a Fernet token, not the secret
    page = client.get(f"/admin/annotation/webhook/{webhook.pk}/change/").content.decode()
    assert webhook.secret not in page  # write-only

    # A host outside the allowlist is refused by the form.
    response = client.post(
        "/admin/annotation/webhook/add/",
        {
            "project": project.pk,
            "url": "http://10.0.0.5/hook",
            "events": ["ranking.submitted"],
            "is_active": "on",
        },
    )
    assert response.status_code == 200 and "WEBHOOK_ALLOWED_HOSTS" in response.content.decode()
    assert Webhook.objects.count() == 1


def test_the_admin_sends_a_test_event_and_logs_its_response_code(
    project, admin_user, client, receiver, webhook_settings, eager_celery, django_capture_on_commit_callbacks
):
    webhook = hook_for(project, receiver, events=["export.finished"])
    receiver.script = [202]
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/annotation/webhook/",
            {"action": "send_test_event", "_selected_action": [webhook.pk]},
            follow=True,
        )
    assert response.status_code == 200 and "Queued a test event for 1 webhook" in response.content.decode()
    [request] = receiver.requests
    data = assert_signed_and_documented(request, event="webhook.test", project_id=project.pk)
    assert data["webhook_id"] == webhook.pk and "admin" in data["message"]
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.response_code) == ("delivered", 202)
    log = client.get("/admin/annotation/webhookdelivery/").content.decode()
    assert "webhook.test" in log and ">202<" in log
    assert client.get(f"/admin/annotation/webhookdelivery/{delivery.pk}/change/").status_code == 200


def test_a_project_admin_cannot_test_or_read_another_projects_webhooks(
    project, client, django_user_model, password, receiver, webhook_settings
):
    from django.contrib.auth.models import Permission

    from annotation.models import Membership, Project
    from annotation.models.projects import Role

    other = Project.objects.create(name="Other project")
    theirs = hook_for(other, receiver)
    user = django_user_model.objects.create_user("carol", "carol@example.com", password, is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_webhook", "change_webhook", "view_webhookdelivery"])
    )
    Membership.objects.create(project=project, user=user, role=Role.ADMIN)
    client.force_login(user)
    response = client.post(
        "/admin/annotation/webhook/",
        {"action": "send_test_event", "_selected_action": [theirs.pk]},
        follow=True,
    )
    assert "nothing was changed" in response.content.decode()
    assert not WebhookDelivery.objects.exists() and receiver.requests == []
    assert client.get(f"/admin/annotation/webhook/{theirs.pk}/change/").status_code == 404


def test_a_socket_that_is_bound_but_not_listening_refuses_connections():
    """The premise of the refused-connection test: the receiver's port answers with a refusal."""
    down = Receiver(listening=False)
    try:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", int(down.url.split(":")[2].split("/")[0])), timeout=1)
    finally:
        down.stop()


def test_a_lost_message_is_sent_again_and_a_duplicate_never_sends_twice(
    project, receiver, webhook_settings, eager_celery, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    from annotation.services.webhooks import webhook_deliveries_resend, webhook_test_send

    webhook = hook_for(project, receiver)
    with django_capture_on_commit_callbacks(execute=False):  # committed, but its message never sent
        delivery = webhook_test_send(webhook=webhook)
    assert webhook_deliveries_resend() == []  # not yet long past due: it may still be on its way
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        next_attempt_at=timezone.now() - timedelta(minutes=6)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert webhook_deliveries_resend() == [delivery.pk]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, len(receiver.requests)) == ("delivered", 1, 1)

    # A second message for a delivered one, or for one whose attempt is in flight, sends nothing.
    assert webhook_deliver.apply(args=[delivery.pk]).get() is None
    with django_capture_on_commit_callbacks(execute=False):
        in_flight = webhook_test_send(webhook=webhook)
    WebhookDelivery.objects.filter(pk=in_flight.pk).update(
        next_attempt_at=timezone.now() + timedelta(seconds=70)
    )
    assert webhook_deliver.apply(args=[in_flight.pk]).get() is None
    assert len(receiver.requests) == 1
