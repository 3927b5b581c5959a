"""The client's webhook verifier is the server's signing module, byte for byte, and checks what the
server's deliveries carry."""

from __future__ import annotations

import time
from pathlib import Path

from rlhf_client import verify_signature

from annotation.webhooks.signing import signature_header

ROOT = Path(__file__).resolve().parents[2]


def test_the_clients_copy_is_the_servers_signing_module_unchanged():
    # One scheme in two packages that install apart: the copy may not drift from what the server sends.
    server = (ROOT / "annotation" / "webhooks" / "signing.py").read_bytes()
    assert (ROOT / "client" / "rlhf_client" / "webhooks.py").read_bytes() == server


def test_a_server_signature_verifies_in_the_client_and_nothing_else_does():
    body = b'{"event": "ranking.submitted", "data": {"ranking_id": 7}}'
    header = signature_header(secret="s3cret", body=body)

    assert verify_signature("s3cret", header, body)
    assert not verify_signature("other", header, body)
    assert not verify_signature("s3cret", header, body + b" ")
    assert not verify_signature("s3cret", "t=abc,v1=00", body)
    stale = signature_header(secret="s3cret", body=body, timestamp=int(time.time()) - 3600)
    assert not verify_signature("s3cret", stale, body)
