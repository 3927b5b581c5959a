"""Signing and verifying webhook payloads: HMAC-SHA256 over a timestamp and the body.

Every request carries the header

    X-RLHF-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" under the secret>

The timestamp is signed with the body so that a captured request cannot be replayed later: a
receiver refuses a signature older (or newer) than its tolerance, 5 minutes by default. A header
may carry several `v1=` values (one per secret while a secret is being rotated); one match is enough.

Standard library only, and no import from this project: copy this file as is into a receiver or
a client library.
"""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "X-RLHF-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE_SECONDS = 300


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def signature_compute(*, secret: str | bytes, timestamp: int, body: str | bytes) -> str:
    """The hex HMAC-SHA256 of `b"<timestamp>." + body` under `secret`."""
    message = str(int(timestamp)).encode("ascii") + b"." + _as_bytes(body)
    return hmac.new(_as_bytes(secret), message, hashlib.sha256).hexdigest()


def signature_header(*, secret: str | bytes, body: str | bytes, timestamp: int | None = None) -> str:
    """The X-RLHF-Signature value for `body`, signed now (or at `timestamp`, unix seconds)."""
    stamp = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={stamp},{SCHEME}={signature_compute(secret=secret, timestamp=stamp, body=body)}"


def verify_signature(
    secret: str | bytes,
    header: str | None,
    body: str | bytes,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    *,
    now: float | None = None,
) -> bool:
    """Whether `header` (the X-RLHF-Signature value) signs `body` under `secret`, within `tolerance`
    seconds of `now` (default: the clock). Never raises for a malformed header: it is just False.

    `body` must be the request's raw bytes, exactly as received: parsing and re-encoding the JSON
    changes them. A `tolerance` of 0 or less turns the age check off (not recommended).
    """
    if not header or not secret:
        return False
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif key == SCHEME and value:
            signatures.append(value.strip().lower())
    if timestamp is None or not signatures:
        return False
    if tolerance > 0 and abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = signature_compute(secret=secret, timestamp=timestamp, body=body)
    # Every candidate is compared in constant time, so timing tells nothing about the expected value.
    return any(hmac.compare_digest(expected, signature) for signature in signatures)
