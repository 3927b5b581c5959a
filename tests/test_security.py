"""Production safety: login lockout, API throttles, DEBUG off by default, HTTPS settings, the
Content-Security-Policy header, `check --deploy`, and a /healthz that says what is down and no more."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.throttling import SimpleRateThrottle, UserRateThrottle

from rewards.models import RewardModel

ROOT = Path(__file__).resolve().parents[1]
# What the suite's environment (pyproject's pytest env) relaxes for plain HTTP, and what a
# deployment may set: a production-like child process starts without any of them.
SECURITY_VARIABLES = (
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SECURE_PROXY_SSL_HEADER",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # free again once closed: nothing listens there


def _django(tmp_path: Path, code: str, **variables: str) -> subprocess.CompletedProcess:
    """Run `code` after django.setup() in a fresh process: the environment's security variables
    cleared, then `variables` set."""
    env = {name: value for name, value in os.environ.items() if name not in SECURITY_VARIABLES}
    env.update(VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="config.settings", **variables)
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup()\n{code}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


PRODUCTION = {"DEBUG": "false", "SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "label.example.org"}


# --- Login lockout --------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_120_wrong_passwords_lock_the_username_out_right_password_included(
    client, admin_user, password, path
):
    limit = settings.AXES_FAILURE_LIMIT
    statuses = [
        client.post(path, {"username": "admin", "password": f"wrong-{attempt}"}).status_code
        for attempt in range(120)
    ]
    # The form answers the first wrong passwords; the one that reaches the limit and every later
    # one are refused without a password check.
    assert statuses[: limit - 1] == [200] * (limit - 1)
    assert statuses[limit - 1 :] == [429] * (121 - limit)

    right = client.post(path, {"username": "admin", "password": password})
    assert right.status_code == 429 and b"locked" in right.content.lower()
    assert "_auth_user_id" not in client.session
    # A forged X-Forwarded-For is no new address: the lockout keys on REMOTE_ADDR.
    forged = client.post(path, {"username": "admin", "password": password}, HTTP_X_FORWARDED_FOR="10.9.8.7")
    assert forged.status_code == 429 and "_auth_user_id" not in client.session

    # Another address is not locked out (the lockout is per username and address).
    elsewhere = client.post(path, {"username": "admin", "password": password}, REMOTE_ADDR="10.0.0.2")
    assert elsewhere.status_code == 302 and client.session["_auth_user_id"] == str(admin_user.pk)


def test_the_lockout_ends_after_the_cool_off(client, admin_user, password):
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        client.post("/accounts/login/", {"username": "admin", "password": f"wrong-{attempt}"})
    assert client.post("/accounts/login/", {"username": "admin", "password": password}).status_code == 429
    # The cool-off counts from the last try: move every try back past it.
    AccessAttempt.objects.update(
        attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    )
    assert client.post("/accounts/login/", {"username": "admin", "password": password}).status_code == 302


# --- API throttles --------------------------------------------------------------------------------
@pytest.fixture
def token_client(api_client, labeler):
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=labeler).key}")
    return api_client


def _assert_throttled(response) -> None:
    assert response.status_code == 429, response.content
    assert response.json()["error"]["code"] == "throttled"
    assert set(response.json()["error"]) <= {"code", "message", "details"}
    assert 1 <= int(response["Retry-After"]) <= 60


def test_the_api_answers_429_in_the_error_shape_with_retry_after(
    monkeypatch, token_client, other_labeler, project, api_client
):
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "user", "5/minute")
    assert [token_client.get("/api/labeler/work/").status_code for _ in range(5)] == [200] * 5
    _assert_throttled(token_client.get("/api/labeler/work/"))
    # Counted per user: another labeler is not affected.
    from rest_framework.test import APIClient

    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=other_labeler).key}")
    assert other.get("/api/labeler/work/").status_code == 200


def test_anonymous_clients_are_counted_by_address_not_by_a_header_they_send(monkeypatch, api_client, db):
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "anon", "2/minute")
    assert api_client.get("/api/schema/").status_code == 200
    assert api_client.get("/api/schema/", HTTP_X_FORWARDED_FOR="10.1.1.1").status_code == 200
    response = api_client.get("/api/schema/", HTTP_X_FORWARDED_FOR="10.2.2.2")
    assert response.status_code == 429 and 1 <= int(response["Retry-After"]) <= 60


def test_retraining_has_its_own_scoped_rate(monkeypatch, api_client, admin_user, project):
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "retrain", "2/hour")
    api_client.force_authenticate(admin_user)
    url = f"/api/projects/{project.pk}/reward-models/retrain"
    assert api_client.post(url).status_code == 202
    assert api_client.post(url).status_code == 409  # one run at a time: still counted
    _assert_throttled_hour(api_client.post(url))
    assert RewardModel.objects.filter(project=project).count() == 1
    assert api_client.get(f"/api/projects/{project.pk}/reward-models/").status_code == 200


def test_starting_exports_has_its_own_scoped_rate(monkeypatch, api_client, admin_user, project):
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "export_start", "2/hour")
    api_client.force_authenticate(admin_user)
    url = f"/api/projects/{project.pk}/exports/start"
    body = {"export_format": "pairs", "file_format": "jsonl"}
    assert [api_client.post(url, body, format="json").status_code for _ in range(2)] == [202, 202]
    _assert_throttled_hour(api_client.post(url, body, format="json"))


def _assert_throttled_hour(response) -> None:
    assert response.status_code == 429, response.content
    assert response.json()["error"]["code"] == "throttled"
    assert 1 <= int(response["Retry-After"]) <= 3600


def test_default_rates_are_finite_and_far_above_a_person():
    """bench/queue_load.py's labelers make about one request a second each; a person, far fewer."""
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    throttle = UserRateThrottle()
    for scope in ("anon", "user", "export_start", "retrain"):
        assert rates[scope] is not None, scope
    requests, seconds = throttle.parse_rate(rates["user"])
    assert 10 <= requests / seconds < 1000


# --- DEBUG, HTTPS and the proxy header ------------------------------------------------------------
def test_debug_is_off_by_default_and_the_local_key_needs_it(tmp_path):
    show = "from django.conf import settings; print(settings.DEBUG, settings.SECRET_KEY)"
    missing = _django(tmp_path, show)
    assert missing.returncode != 0 and "SECRET_KEY must be set when DEBUG is off" in missing.stderr
    local = _django(tmp_path, show, DEBUG="true")
    assert local.returncode == 0 and local.stdout.split()[0] == "True", local.stderr[-2000:]
    production = _django(tmp_path, show, **PRODUCTION)
    assert production.stdout.split() == ["False", PRODUCTION["SECRET_KEY"]], production.stderr[-2000:]


@pytest.mark.parametrize(
    ("extra", "warning"),
    [
        ({}, None),
        # The same check does warn, so a clean run above means something.
        ({"SECURE_SSL_REDIRECT": "false"}, "security.W008"),
        ({"SESSION_COOKIE_SECURE": "false"}, "security.W012"),
    ],
)
def test_check_deploy_with_production_settings_prints_no_warning(tmp_path, extra, warning):
    # Nor the browser tests' DJANGO_ALLOW_ASYNC_UNSAFE (tests/browser/conftest.py), which no
    # deployment has and which the check rightly refuses.
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in SECURITY_VARIABLES and name != "DJANGO_ALLOW_ASYNC_UNSAFE"
    }
    env.update(VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="config.settings", **PRODUCTION, **extra)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    if warning is None:
        assert result.returncode == 0, output[-3000:]
        assert "System check identified no issues" in output and "WARNING" not in output.split("INFO")[0]
    else:
        assert result.returncode != 0 and warning in output, output[-3000:]


def test_production_trusts_the_proxy_header_only_when_told(tmp_path):
    show = (
        "from django.conf import settings\n"
        "print(repr(getattr(settings, 'SECURE_PROXY_SSL_HEADER', None)), settings.SECURE_SSL_REDIRECT,"
        " settings.SECURE_HSTS_SECONDS, settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE)"
    )
    default = _django(tmp_path, show, **PRODUCTION)
    assert default.stdout.split() == ["None", "True", "31536000", "True", "True"], default.stderr[-2000:]
    told = _django(tmp_path, show, SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto", **PRODUCTION)
    assert told.stdout.startswith("('HTTP_X_FORWARDED_PROTO', 'https') True"), told.stderr[-2000:]
    wrong = _django(tmp_path, show, SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto: https", **PRODUCTION)
    assert wrong.returncode != 0 and "SECURE_PROXY_SSL_HEADER must be a header name" in wrong.stderr


def test_a_forged_proto_header_gets_no_https_and_a_secure_request_gets_hsts(client, settings, db):
    settings.SECURE_SSL_REDIRECT = True
    forged = client.get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https")
    assert forged.status_code == 301 and forged["Location"].startswith("https://")
    secure = client.get("/accounts/login/", secure=True)
    assert secure.status_code == 200
    assert secure["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    # The orchestrator's health probe comes over plain HTTP and is not redirected.
    assert client.get("/healthz").status_code == 200


def test_pages_carry_a_content_security_policy_without_unsafe_inline(client, labeler, password):
    client.force_login(labeler)
    for path in ("/", "/accounts/login/", "/api/docs/"):
        policy = client.get(path)["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy, (path, policy)
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, (path, policy)
        assert "object-src 'none'" in policy and "frame-ancestors 'none'" in policy


# --- /healthz -------------------------------------------------------------------------------------
def test_healthz_names_a_down_broker_without_its_exception_text(client, settings, db, caplog):
    port = _closed_port()
    settings.CELERY_BROKER_URL = f"redis://:hunter2-broker-password@127.0.0.1:{port}/0"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "down", "down": ["broker"]}
    # The reason goes to the server's log, for the operator.
    assert any("broker is not reachable" in record.getMessage() for record in caplog.records)


def test_healthz_names_a_down_database_and_broker_without_exception_text(tmp_path):
    """A broken DATABASE_URL and broker URL, each with a password, in a fresh process."""
    db_port, broker_port = _closed_port(), _closed_port()
    probe = (
        "from django.test import Client\n"
        "response = Client().get('/healthz')\n"
        "print(response.status_code, response.content.decode())\n"
    )
    result = _django(
        tmp_path,
        probe,
        DEBUG="true",
        DATABASE_URL=f"postgres://rlhf:s3cret-db-password@127.0.0.1:{db_port}/rlhf",
        CELERY_BROKER_URL=f"redis://:s3cret-broker-password@127.0.0.1:{broker_port}/0",
        LOG_LEVEL="CRITICAL",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    status, body = result.stdout.strip().split(" ", 1)
    assert status == "503"
    assert json.loads(body) == {"status": "down", "down": ["broker", "database"]}
    for leak in ("s3cret", "127.0.0.1", str(db_port), str(broker_port), "Error", "refused", "onnect"):
        assert leak not in body, leak
