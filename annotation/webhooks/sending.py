"""One webhook request: POST the signed body to the URL, once, and say what happened.

Only allowed hosts are reached, by the same rules and the same checks as the OpenAI-compatible
generation backend (annotation.generation.hosts): every address the host resolves to before the
request, and the address each connection actually reached, so DNS rebinding cannot point an allowed
name at the internal network. The allowlist is WEBHOOK_ALLOWED_HOSTS, handed in as `allowed_hosts`.
Redirects are never followed (a redirect could lead anywhere), the environment's proxies and .netrc
are ignored, and the receiver's body is never read: only its status code is kept.

Retrying is the caller's business (the Celery task, minutes apart): `WebhookResponse.retryable`
says whether trying again could help.

Reads no settings and touches no database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import urlsplit

import requests

from annotation.generation.base import GenerationUnavailable
from annotation.generation.hosts import HostPolicy, HostRefused
from annotation.generation.openai_http import _PeerCheckedAdapter

SETTING = "WEBHOOK_ALLOWED_HOSTS"
USER_AGENT = "rlhf-platform-webhooks/1"
# Worth another attempt later: the receiver is overloaded, restarting or rate-limiting.
RETRYABLE_STATUS = frozenset({408, 425, 429})


class WebhookHostRefused(Exception):
    """The URL's host is not allowed by WEBHOOK_ALLOWED_HOSTS (or the URL is not http(s))."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class WebhookResponse:
    status_code: int | None  # None when no response came (refused, timed out, host refused)
    error: str  # empty on success
    retryable: bool

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def host_policy_parse(allowed_hosts: Sequence[str]) -> HostPolicy:
    """The policy for WEBHOOK_ALLOWED_HOSTS entries; WebhookHostRefused naming a bad entry."""
    try:
        return HostPolicy.parse(allowed_hosts)
    except ValueError as error:
        # hosts.py names the generation setting in its messages; this list is another one.
        raise WebhookHostRefused(str(error).replace("GENERATION_ALLOWED_HOSTS", SETTING)) from None


def _refusal(error: HostRefused) -> WebhookHostRefused:
    """The generation module's refusal, told in terms of this setting."""
    details = error.details if isinstance(error.details, dict) else {}
    host = details.get("host", "the host")
    if "address" in details:
        return WebhookHostRefused(
            f"{host} is at {details['address']}, a private, loopback or link-local address; webhooks "
            f"reach such a host only if {SETTING} lists it"
        )
    if "host" in details:
        return WebhookHostRefused(f"{host} is not in {SETTING}")
    return WebhookHostRefused("the webhook URL must be http:// or https:// and name a host")


def webhook_url_check(*, url: str, allowed_hosts: Sequence[str]) -> None:
    """Refuse a URL whose host the allowlist does not allow, as it resolves now.

    Raises WebhookHostRefused; a name that does not resolve passes (DNS can come back, and the
    check runs again before every request).
    """
    policy = host_policy_parse(allowed_hosts)
    try:
        policy.url_check(url)
    except HostRefused as error:
        raise _refusal(error) from None
    except GenerationUnavailable:
        pass


def url_shown(url: str) -> str:
    """The URL without any user:password@ and query, for messages and logs."""
    parts = urlsplit(url)
    host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return f"{parts.scheme}://{host}{parts.path}"


def _status_text(code: int) -> str:
    try:
        return f"HTTP {code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"HTTP {code}"


def webhook_post(
    *,
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout_seconds: float,
    allowed_hosts: Sequence[str],
) -> WebhookResponse:
    """POST `body` with `headers` to `url` once; never raises for what the receiver or network does.

    `timeout_seconds` bounds the connection and each read. A host the allowlist refuses, a
    redirect, and a 4xx other than 408/425/429 are final (a setting to fix); a 5xx, those three,
    a refused connection and a timeout are retryable.
    """
    shown = url_shown(url)
    try:
        policy = host_policy_parse(allowed_hosts)
        policy.url_check(url)
    except WebhookHostRefused as error:
        return WebhookResponse(None, error.message, retryable=False)
    except HostRefused as error:
        return WebhookResponse(None, _refusal(error).message, retryable=False)
    except GenerationUnavailable:
        return WebhookResponse(None, f"cannot resolve the host of {shown}", retryable=True)
    session = requests.Session()
    session.trust_env = False  # no proxies from the environment: the peer check must see the receiver
    adapter = _PeerCheckedAdapter(policy)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    try:
        response = session.post(
            url,
            data=body,
            headers={**headers, "User-Agent": USER_AGENT, "Content-Type": "application/json"},
            timeout=(timeout_seconds, timeout_seconds),
            allow_redirects=False,
            stream=True,  # the body is never read: it is the receiver's, not ours to store or show
        )
    except HostRefused as error:  # the connection reached an address the policy refuses
        return WebhookResponse(None, _refusal(error).message, retryable=False)
    except requests.Timeout:
        return WebhookResponse(None, f"{shown} timed out after {timeout_seconds:g} s", retryable=True)
    except requests.ConnectionError as error:
        return WebhookResponse(None, f"cannot connect to {shown}: {type(error).__name__}", retryable=True)
    except requests.RequestException as error:
        return WebhookResponse(None, f"request to {shown} failed: {type(error).__name__}", retryable=False)
    finally:
        session.close()
    code = response.status_code
    response.close()
    if 200 <= code < 300:
        return WebhookResponse(code, "", retryable=False)
    if 300 <= code < 400:
        return WebhookResponse(
            code,
            f"{shown} answered with a redirect ({_status_text(code)}); redirects are not followed",
            retryable=False,
        )
    retryable = code >= 500 or code in RETRYABLE_STATUS
    return WebhookResponse(code, f"{shown} answered {_status_text(code)}", retryable=retryable)
