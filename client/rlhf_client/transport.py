"""HTTP for the client: token auth, a timeout on every request, bounded retries of 429 and 503 after
the server's Retry-After, and errors turned into ApiError."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Mapping
from typing import IO, Any

import requests

from rlhf_client.errors import ApiError

# (connect, read) seconds. The read timeout bounds the wait for each chunk of a stream, not the whole
# download, so a long export streams as long as bytes keep coming.
DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 60.0)
# 429 (throttled) and 503 (database or broker unreachable) mean the server did nothing; both say when
# to come back. A few tries cover a throttle window or a restart without hiding a real outage.
DEFAULT_MAX_RETRIES = 3
# A Retry-After longer than this is not waited for: the ApiError is raised at once instead of a
# script sleeping for an hour (an export throttle counts per hour).
DEFAULT_MAX_RETRY_WAIT = 60.0
# When a 429 or 503 names no Retry-After.
FALLBACK_RETRY_WAIT = 1.0
RETRIED_STATUSES = frozenset({429, 503})


def retry_after_seconds(value: str | None) -> float:
    """Retry-After as seconds: delta-seconds or an HTTP date; FALLBACK_RETRY_WAIT if absent or unreadable."""
    if not value:
        return FALLBACK_RETRY_WAIT
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return FALLBACK_RETRY_WAIT
    return max(0.0, when.timestamp() - time.time())


class Transport:
    """One requests.Session bound to a base URL and a token."""

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_retry_wait: float = DEFAULT_MAX_RETRY_WAIT,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self.session = session or requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"
        self.session.headers.setdefault("User-Agent", "rlhf-client/0.1")
        self._sleep = sleep

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        files: Mapping[str, tuple[str, IO[bytes]]] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """The response to a successful request (2xx); ApiError for any other status.

        Retries 429 and 503 up to max_retries times, each after its Retry-After (at most
        max_retry_wait seconds). Uploaded files are rewound before each try. A streamed response is
        returned unread: close it (or use it in a `with`).
        """
        attempt = 0
        while True:
            for _name, (_filename, handle) in (files or {}).items():
                handle.seek(0)
            response = self.session.request(
                method,
                self.url(path),
                params=params,
                json=json,
                data=data,
                files=files,
                stream=stream,
                timeout=self.timeout,
            )
            if response.ok:
                return response
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            retry = (
                response.status_code in RETRIED_STATUSES
                and attempt < self.max_retries
                and wait <= self.max_retry_wait
            )
            if not retry:
                raise self._error(response)
            response.close()
            attempt += 1
            self._sleep(wait)

    def get_json(self, path: str, *, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params).json()

    def post_json(self, path: str, *, json: Any = None) -> Any:
        return self.request("POST", path, json=json).json()

    @staticmethod
    def _error(response: requests.Response) -> ApiError:
        text = response.text  # reads a streamed body too: an error is small
        try:
            body = response.json()
        except ValueError:
            body = None
        finally:
            response.close()
        return ApiError.from_response_body(status=response.status_code, body=body, text=text)
