"""The OpenAI-compatible backend: `POST {base_url}/chat/completions` on vLLM, TGI, Ollama,
llama.cpp's server or a hosted API.

Every request has a connect and a read timeout. 429, 5xx, timeouts and refused connections are
retried here a few times with exponential backoff (honouring a short Retry-After); if they persist
the backend raises GenerationUnavailable and the Celery task retries later. Any other 4xx, and any
redirect, is a setting to fix and raises GenerationFailed with the status and its standard reason.

Only allowed hosts are reached (`annotation.generation.hosts`): the host's addresses are checked
before each batch of requests and each new connection's peer address is checked again, so DNS
rebinding cannot point an allowed name at the internal network. Redirects are never followed (a
redirect could lead anywhere, with the key), and the environment's proxies and .netrc are ignored.

`stream()` sends the same requests with `stream: true`, one thread per seed, and reads the events
as they come (`annotation.generation.openai_stream`); the same hosts, timeouts and retries apply.

The API key goes into the Authorization header and nowhere else: not in messages, logs, reprs or
provenance. The server's error bodies are never copied into messages: they could be anything the
target chose to answer, an internal service's page included.

Timeouts, attempts, backoff and concurrency are constructor arguments (the service reads them from
the GENERATION_HTTP_* settings); this module reads no settings.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from annotation.generation.base import (
    Completion,
    GenerationFailed,
    GenerationUnavailable,
    SamplingParams,
    StreamEvent,
)
from annotation.generation.formatting import completion_clean
from annotation.generation.hosts import HostPolicy
from annotation.generation.openai_stream import chat_stream_emit, int_or_none, response_interrupt
from annotation.generation.streaming import Emit, Producer, threads_merge

logger = logging.getLogger(__name__)

# Defaults of the constructor's arguments (and of the GENERATION_HTTP_* settings): a server that
# does not accept a connection in 5 s is down; a 120 s read leaves room for a long answer from a
# busy server.
CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 120.0
# Three tries with 1 s, 2 s between them ride out a restart or a burst of 429s without holding a
# worker for long; the task's own retries (minutes apart) cover longer outages.
MAX_ATTEMPTS = 3
BACKOFF_SECONDS = 1.0
RETRY_AFTER_CAP_SECONDS = 30.0
# Requests in flight at once for one prompt's samples; servers batch them (vLLM, TGI, llama.cpp
# with parallel slots), and 4 covers the default K without flooding a small server.
CONCURRENCY = 4
RETRYABLE_STATUS = frozenset({408, 425, 429})
# Without an allowlist from the caller: public hosts only.
PUBLIC_HOSTS_ONLY = ("*",)


class OpenAICompatibleBackend:
    """Samples by chat completions, one request per seed (so each candidate has its own seed), a few
    at a time."""

    name = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str = "",
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
        read_timeout: float = READ_TIMEOUT_SECONDS,
        max_attempts: int = MAX_ATTEMPTS,
        backoff_seconds: float = BACKOFF_SECONDS,
        concurrency: int = CONCURRENCY,
        allowed_hosts: Sequence[str] = PUBLIC_HOSTS_ONLY,
    ) -> None:
        """Timeouts and backoff in seconds; at least one attempt and one request in flight.

        `allowed_hosts`: the GENERATION_ALLOWED_HOSTS entries (see `annotation.generation.hosts`).
        """
        if not base_url:
            raise GenerationFailed("the project uses the OpenAI-compatible backend but has no base URL")
        if not base_url.startswith(("http://", "https://")):
            raise GenerationFailed(f"the base URL must start with http:// or https://, not {base_url!r}")
        if not model:
            raise GenerationFailed("the project uses the OpenAI-compatible backend but names no model")
        self.base_url = base_url.rstrip("/")
        # Messages name the server without any user:password@ written into the URL.
        parts = urlsplit(self.base_url)
        host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
        self._shown_url = urlunsplit(parts._replace(netloc=host)) + "/chat/completions"
        self.model_name = model
        self._api_key = api_key
        # A zero timeout would make every request fail at once: take it as "the default" instead.
        self.connect_timeout = float(connect_timeout or CONNECT_TIMEOUT_SECONDS)
        self.read_timeout = float(read_timeout or READ_TIMEOUT_SECONDS)
        self.max_attempts = max(1, int(max_attempts or MAX_ATTEMPTS))
        self.backoff_seconds = float(backoff_seconds)
        self.concurrency = max(1, int(concurrency))
        try:
            self.host_policy = HostPolicy.parse(allowed_hosts)
        except ValueError as error:
            raise GenerationFailed(str(error)) from None
        # One pooled session, shared by the request threads: urllib3's connection pool is thread-safe
        # and nothing here uses cookies. No proxies or .netrc from the environment: the peer check
        # must see the generation server itself.
        self._session = requests.Session()
        self._session.trust_env = False
        adapter = _PeerCheckedAdapter(self.host_policy)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def __repr__(self) -> str:  # the key stays out of reprs, and so out of tracebacks and logs
        return f"OpenAICompatibleBackend(endpoint={self._shown_url!r}, model={self.model_name!r})"

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/chat/completions"

    def sampling_record(self, *, sampling: SamplingParams) -> dict[str, Any]:
        record = sampling.as_dict()
        record["endpoint"] = "chat/completions"
        return record

    def generate(
        self, *, turns: list[dict[str, str]], sampling: SamplingParams, seeds: Sequence[int]
    ) -> list[Completion]:
        def complete(seed: int) -> Completion:
            started = time.perf_counter()
            body = self._post(self._payload(turns=turns, sampling=sampling, seed=seed))
            return self._completion_parse(body, seed=seed, seconds=time.perf_counter() - started)

        self.host_policy.url_check(self.base_url)  # before the batch; each connection is checked too
        if len(seeds) <= 1 or self.concurrency <= 1:
            return [complete(seed) for seed in seeds]
        # Concurrent requests: a serving engine batches them, so K answers take about as long as one.
        with ThreadPoolExecutor(max_workers=min(len(seeds), self.concurrency)) as pool:
            return list(pool.map(complete, seeds))

    def stream(
        self, *, turns: list[dict[str, str]], sampling: SamplingParams, seeds: Sequence[int]
    ) -> Iterator[StreamEvent]:
        """All seeds' answers at once: one streamed request per seed, each read by its own thread.

        Every seed's request starts at once, whatever `concurrency` says: the labeler watches all K
        answers grow together. Requests are retried like generate()'s until the server answers 2xx;
        a connection lost after that raises GenerationUnavailable (the text already shown cannot be
        taken back by a silent retry). Closing the iterator shuts the connections.
        """
        self.host_policy.url_check(self.base_url)  # before the batch; each connection is checked too
        responses: list[requests.Response] = []
        responses_lock = threading.Lock()

        def producer(slot: int, seed: int) -> Producer:
            def produce(emit: Emit, cancelled: threading.Event) -> None:
                payload = self._payload(turns=turns, sampling=sampling, seed=seed)
                payload |= {"stream": True, "stream_options": {"include_usage": True}}
                started = time.perf_counter()
                response = self._send(payload, stream=True, cancelled=cancelled)
                with responses_lock:
                    responses.append(response)
                try:
                    if not cancelled.is_set():
                        self._stream_read(response, slot=slot, seed=seed, started=started, emit=emit)
                finally:
                    response.close()

            return produce

        def connections_interrupt() -> None:
            with responses_lock:
                for response in responses:
                    response_interrupt(response)

        yield from threads_merge(
            producers=[producer(slot, seed) for slot, seed in enumerate(seeds)],
            on_close=connections_interrupt,
        )

    def _stream_read(
        self, response: requests.Response, *, slot: int, seed: int, started: float, emit: Emit
    ) -> None:
        """Emit one slot's events from a streamed answer; its last event is the `done` one."""
        if response.headers.get("Content-Type", "").startswith("application/json"):
            # A server that does not stream answers with the whole completion: one piece.
            try:
                body = self._json(response)
            except requests.RequestException as error:
                raise GenerationUnavailable(
                    f"lost the connection to {self._shown_url}: {type(error).__name__}"
                ) from None
            completion = self._completion_parse(body, seed=seed, seconds=time.perf_counter() - started)
            emit(StreamEvent(slot=slot, text=completion.text, done=True, completion=completion))
            return
        chat_stream_emit(
            response=response, shown_url=self._shown_url, slot=slot, seed=seed, started=started, emit=emit
        )

    def _payload(self, *, turns: list[dict[str, str]], sampling: SamplingParams, seed: int) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model_name,
            "messages": turns,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
            "seed": seed,
        }
        if sampling.stop:
            payload["stop"] = list(sampling.stop)
        return payload

    def _headers(self, *, accept: str = "application/json") -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": accept}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        """POST with retries; returns the decoded JSON body or raises a GenerationFailed subclass."""
        return self._json(self._send(payload))

    def _json(self, response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise GenerationFailed(
                f"{self._shown_url} answered {response.status_code} with a body that is not JSON"
            ) from None

    def _send(
        self, payload: dict[str, Any], *, stream: bool = False, cancelled: threading.Event | None = None
    ) -> requests.Response:
        """POST with retries; returns a 2xx response or raises a GenerationFailed subclass.

        With `stream` the body is left unread for the caller (who closes the response). A set
        `cancelled` ends the waits between attempts early, with GenerationUnavailable.
        """
        problem = ""
        for attempt in range(1, self.max_attempts + 1):
            retry_after: float | None = None
            try:
                response = self._session.post(
                    self.endpoint,  # the real URL; messages below show _shown_url
                    json=payload,
                    headers=self._headers(accept="text/event-stream" if stream else "application/json"),
                    timeout=(self.connect_timeout, self.read_timeout),
                    allow_redirects=False,
                    stream=stream,
                )
            except requests.Timeout:
                problem = f"{self._shown_url} timed out (connect {self.connect_timeout:g} s, read {self.read_timeout:g} s)"
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as error:
                problem = f"cannot connect to {self._shown_url}: {type(error).__name__}"
            except requests.RequestException as error:
                raise GenerationFailed(
                    f"request to {self._shown_url} failed: {type(error).__name__}"
                ) from None
            else:
                if response.status_code < 300:
                    return response
                status = _status_text(response.status_code)
                response.close()  # the body is never read: it is not ours to show
                if 300 <= response.status_code < 400:
                    raise GenerationFailed(
                        f"{self._shown_url} answered with a redirect ({status}); redirects are not "
                        "followed: give the final URL as the base URL",
                        details={"status": response.status_code},
                    )
                if response.status_code < 500 and response.status_code not in RETRYABLE_STATUS:
                    hint = " (check that the base URL ends in /v1)" if response.status_code == 404 else ""
                    hint = " (check the API key)" if response.status_code in (401, 403) else hint
                    raise GenerationFailed(
                        f"{self._shown_url} refused the request with {status}{hint}",
                        details={"status": response.status_code},
                    )
                problem = f"{self._shown_url} answered {status}"
                retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
            if attempt < self.max_attempts:
                delay = retry_after if retry_after is not None else self.backoff_seconds * 2 ** (attempt - 1)
                logger.warning("generation request attempt %d/%d: %s", attempt, self.max_attempts, problem)
                if cancelled is None:
                    time.sleep(delay)
                elif cancelled.wait(delay):
                    raise GenerationUnavailable(f"{problem} (cancelled before attempt {attempt + 1})")
        raise GenerationUnavailable(f"{problem} (after {self.max_attempts} attempts)")

    def _completion_parse(self, body: Any, *, seed: int, seconds: float) -> Completion:
        try:
            choice = body["choices"][0]
            content = choice["message"].get("content") or ""
            usage = body.get("usage") or {}
        except (KeyError, IndexError, TypeError, AttributeError):
            raise GenerationFailed(
                f"{self._shown_url} returned a body without choices[0].message; is it OpenAI-compatible?"
            ) from None
        if not isinstance(content, str):
            raise GenerationFailed(f"{self._shown_url} returned non-text message content")
        return Completion(
            text=completion_clean(text=content),
            seed=seed,
            prompt_tokens=int_or_none(usage.get("prompt_tokens")),
            completion_tokens=int_or_none(usage.get("completion_tokens")),
            seconds=seconds,
            finish_reason=str(choice.get("finish_reason") or ""),
        )


def _status_text(code: int) -> str:
    """`HTTP 404 Not Found`: the status and its standard phrase, nothing the server wrote."""
    try:
        return f"HTTP {code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"HTTP {code}"


def _peer_checked(connection_class: type[HTTPConnection], policy: HostPolicy) -> type[HTTPConnection]:
    """`connection_class` that checks the address each new socket actually reached."""

    def _new_conn(self):
        sock = connection_class._new_conn(self)
        try:
            policy.address_check(host=self.host, address=sock.getpeername()[0])
        except BaseException:
            sock.close()
            raise
        return sock

    return type(f"PeerChecked{connection_class.__name__}", (connection_class,), {"_new_conn": _new_conn})


class _PeerCheckedAdapter(HTTPAdapter):
    """requests' adapter whose connections refuse a peer address the host policy does not allow."""

    def __init__(self, policy: HostPolicy) -> None:
        self._pool_classes = {
            "http": type(
                "PeerCheckedHTTPConnectionPool",
                (HTTPConnectionPool,),
                {"ConnectionCls": _peer_checked(HTTPConnection, policy)},
            ),
            "https": type(
                "PeerCheckedHTTPSConnectionPool",
                (HTTPSConnectionPool,),
                {"ConnectionCls": _peer_checked(HTTPSConnection, policy)},
            ),
        }
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pool_classes  # type: ignore[attr-defined]


def _retry_after_seconds(value: str | None) -> float | None:
    """Retry-After in seconds when given as a number, capped so one answer cannot stall a worker."""
    if not value:
        return None
    try:
        return max(0.0, min(float(value), RETRY_AFTER_CAP_SECONDS))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
