"""The client's retries and error decoding against a real local HTTP server that answers what the
platform answers only during an outage: 503 with Retry-After (seconds or an HTTP date), and pages
that are not the API's JSON error shape (a proxy's)."""

from __future__ import annotations

import email.utils
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from rlhf_client import ApiError, Client

pytestmark = pytest.mark.timeout(60)


class Outage:
    """Scripted answers, one per request, then 200 {"ok": true}; records each request's time."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, str], bytes]] = []
        self.seen: list[tuple[float, str, str | None]] = []


@pytest.fixture
def outage() -> Iterator[tuple[Outage, str]]:
    state = Outage()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.seen.append((time.monotonic(), self.path, self.headers.get("Authorization")))
            status, headers, body = state.script.pop(0) if state.script else (200, {}, b'{"ok": true}')
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


UNAVAILABLE = b'{"error": {"code": "unavailable", "message": "The database cannot be reached."}}'


def test_503_is_retried_after_its_retry_after_in_seconds_or_as_a_date(outage):
    state, url = outage
    later = email.utils.formatdate(time.time() + 4, usegmt=True)  # 2-3 s after the first wait
    state.script = [(503, {"Retry-After": "1"}, UNAVAILABLE), (503, {"Retry-After": later}, UNAVAILABLE)]
    client = Client(url, token="secret")
    assert client.queue_depth(project_id=3) == {"ok": True}
    times = [seen[0] for seen in state.seen]
    assert len(times) == 3 and times[1] - times[0] >= 0.9 and times[2] - times[1] >= 1.5
    assert {seen[1] for seen in state.seen} == {"/api/projects/3/quality/queue-depth"}
    assert {seen[2] for seen in state.seen} == {"Token secret"}


def test_retries_are_bounded_in_number_and_in_wait(outage):
    state, url = outage
    state.script = [(503, {"Retry-After": "0"}, UNAVAILABLE)] * 3
    with pytest.raises(ApiError) as exhausted:
        Client(url, token="t", max_retries=2).queue_depth(project_id=1)
    assert (exhausted.value.status, exhausted.value.code) == (503, "unavailable") and len(state.seen) == 3

    state.seen.clear()
    state.script = [(429, {"Retry-After": "3600"}, b'{"error": {"code": "throttled", "message": "later"}}')]
    began = time.monotonic()
    with pytest.raises(ApiError) as too_long:
        Client(url, token="t").queue_depth(project_id=1)
    assert too_long.value.code == "throttled" and len(state.seen) == 1 and time.monotonic() - began < 5


def test_a_page_that_is_not_the_error_shape_still_raises_api_error(outage):
    state, url = outage
    state.script = [(502, {"Content-Type": "text/html"}, b"<html>Bad gateway</html>")]
    with pytest.raises(ApiError) as bad_gateway:
        Client(url, token="t").quality_summary(project_id=1)
    error = bad_gateway.value
    assert (error.status, error.code, error.message, error.details) == (
        502,
        "http_502",
        "<html>Bad gateway</html>",
        None,
    )
