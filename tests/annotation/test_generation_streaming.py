"""Streaming generation: the embedded model's batched stream, the OpenAI-compatible backend streaming
from llama.cpp's real server and from a scripted one, and the text handling both share."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from annotation.generation.base import (
    Completion,
    GenerationFailed,
    GenerationUnavailable,
    SamplingParams,
    StreamEvent,
)
from annotation.generation.embedded import EmbeddedBackend, model_load, packaged_model_path
from annotation.generation.formatting import completion_clean, stop_sequences_merge
from annotation.generation.openai_http import OpenAICompatibleBackend
from annotation.generation.streaming import StreamText
from tests.annotation.generation_servers import free_port, llama_server_start, llama_server_stop

API_KEY = "sk-stream-test-7731"
LOOPBACK = ("*", "127.0.0.1")
SHORT = SamplingParams(temperature=1.0, top_p=0.95, max_tokens=20)
OPEN_QUESTION = [{"role": "user", "content": "Write one sentence about the sea."}]
# Greedy, this prompt makes the packaged model write well past 100 tokens (a numbered list), so a
# stream of it is still running when the test kills its server.
LONG_ANSWER = [{"role": "user", "content": "Count from 1 to 200, separated by commas."}]
# llama-cpp-python's server ends a running stream with [DONE] when another request arrives
# unless told not to; then it serves the K requests one after another.
NO_INTERRUPT = ("--interrupt_requests", "false")


def collect(stream: Iterator[StreamEvent], slots: int) -> tuple[list[str], list[Completion]]:
    """Each slot's joined pieces and its completion, checking that each slot ends exactly once."""
    pieces: list[str] = [""] * slots
    completions: list[Completion | None] = [None] * slots
    for event in stream:
        assert completions[event.slot] is None, "an event after the slot's done event"
        pieces[event.slot] += event.text
        if event.done:
            assert isinstance(event.completion, Completion)
            completions[event.slot] = event.completion
        else:
            assert event.completion is None
    assert all(completion is not None for completion in completions)
    return pieces, completions  # type: ignore[return-value]


def assert_preview_consistent(pieces: list[str], completions: list[Completion]) -> None:
    for joined, completion in zip(pieces, completions, strict=True):
        assert completion.text == completion_clean(text=joined)
        assert joined.startswith(completion.text)  # the preview never showed anything else first


# --- StreamText --------------------------------------------------------------------------------


def test_stream_text_holds_back_what_may_be_a_stop_sequence():
    text = StreamText(stop=["\nQuestion:"])
    assert text.feed(" The sea") == "The sea"  # leading whitespace is never shown
    assert text.feed(" is wide.\nQues") == " is wide."
    assert text.feed("t") == ""
    assert text.feed("ion: next") == ""
    assert text.stopped and text.text == " The sea is wide."
    assert text.feed(" more") == "" and text.finish() == ""


def test_stream_text_releases_a_false_alarm_and_cuts_at_the_earliest_stop():
    text = StreamText(stop=["###", "\nQ:"])
    assert text.feed("a\nQ") == "a"
    assert text.feed("uiet ##") == "\nQuiet "
    assert text.feed("x\nQ:y###") == "##x"
    assert text.text == "a\nQuiet ##x" and text.stopped


def test_stream_text_never_splits_a_character():
    data = "Mer: é 🌊.".encode()
    wave = data.index("🌊".encode())
    text = StreamText()
    pieces = [text.feed(data[: wave + 1]), text.feed(data[wave + 1 : wave + 3]), text.feed(data[wave + 3 :])]
    assert pieces == ["Mer: é ", "", "🌊."]
    assert StreamText().feed(b"ab\xf0\x9f") == "ab"
    unfinished = StreamText()
    assert unfinished.feed(b"ok\xf0\x9f") == "ok"
    assert unfinished.finish() == "" and unfinished.text == "ok"  # an unfinished character is dropped


# --- Embedded ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_embedded_stream_samples_k_answers_together():
    backend = EmbeddedBackend()
    seeds = [11, 22, 33]
    pieces, completions = collect(backend.stream(turns=OPEN_QUESTION, sampling=SHORT, seeds=seeds), 3)

    assert [c.seed for c in completions] == seeds
    assert_preview_consistent(pieces, completions)
    assert all(c.text for c in completions) and len({c.text for c in completions}) == 3
    for joined, completion in zip(pieces, completions, strict=True):
        for stop in stop_sequences_merge(project_stop=(), base_model=True):
            assert stop not in joined
        assert 1 <= completion.completion_tokens <= SHORT.max_tokens
        assert completion.prompt_tokens and completion.prompt_tokens > 5
        assert completion.finish_reason in {"stop", "length"} and completion.seconds > 0
    # The same seeds give the same answers again.
    _, again = collect(backend.stream(turns=OPEN_QUESTION, sampling=SHORT, seeds=seeds), 3)
    assert [c.text for c in again] == [c.text for c in completions]


@pytest.mark.slow
def test_embedded_stream_cuts_at_a_project_stop_sequence_and_never_shows_it():
    sampling = SamplingParams(temperature=1.0, top_p=0.95, max_tokens=24, stop=(" the",))
    pieces, completions = collect(
        EmbeddedBackend().stream(turns=OPEN_QUESTION, sampling=sampling, seeds=[1, 2, 3, 4]), 4
    )
    assert_preview_consistent(pieces, completions)
    assert all(" the" not in joined for joined in pieces)
    # With these seeds some answers do reach " the": the cut is exercised, not only avoided.
    assert any(c.finish_reason == "stop" and c.completion_tokens < 24 for c in completions)


@pytest.mark.slow
def test_embedded_stream_of_one_answer_is_what_generate_gives():
    """The stream samples with generate()'s chain and seed; with K > 1 the batched arithmetic may
    differ in the last bits, so only one answer alone is comparable token for token."""
    backend = EmbeddedBackend()
    [generated] = backend.generate(turns=OPEN_QUESTION, sampling=SHORT, seeds=[7])
    _, [streamed] = collect(backend.stream(turns=OPEN_QUESTION, sampling=SHORT, seeds=[7]), 1)
    assert streamed.text == generated.text
    assert streamed.completion_tokens == generated.completion_tokens


@pytest.mark.slow
def test_embedded_stream_closed_early_releases_the_model():
    backend = EmbeddedBackend()
    stream = backend.stream(turns=OPEN_QUESTION, sampling=SHORT, seeds=[1, 2])
    first = next(event for event in stream if event.text)
    assert first.text and not first.done
    lock = model_load(path=str(packaged_model_path())).lock
    assert lock.locked()  # the stream holds the model while it is open
    stream.close()
    assert not lock.locked()
    assert backend.generate(turns=OPEN_QUESTION, sampling=SHORT, seeds=[3])[0].text


@pytest.mark.slow
def test_embedded_stream_that_cannot_fit_is_a_clear_error():
    sampling = SamplingParams(temperature=1.0, top_p=0.95, max_tokens=4000)
    stream = EmbeddedBackend().stream(turns=OPEN_QUESTION, sampling=sampling, seeds=[1, 2, 3])
    with pytest.raises(GenerationFailed, match="does not fit the streaming context"):
        next(stream)


# --- OpenAI-compatible against llama.cpp's server ----------------------------------------------


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    log_path = tmp_path_factory.mktemp("llama_server") / "server.log"
    process, base_url = llama_server_start(
        model=packaged_model_path(), api_key=API_KEY, log_path=log_path, extra_arguments=NO_INTERRUPT
    )
    yield base_url
    llama_server_stop(process)


@pytest.mark.slow
def test_http_stream_from_llama_cpp_server(llama_server):
    backend = OpenAICompatibleBackend(
        base_url=llama_server, model="gemma", api_key=API_KEY, allowed_hosts=LOOPBACK
    )
    sampling = SamplingParams(temperature=1.0, top_p=0.95, max_tokens=20, stop=("USER:",))
    pieces, completions = collect(backend.stream(turns=OPEN_QUESTION, sampling=sampling, seeds=[5, 6]), 2)

    assert [c.seed for c in completions] == [5, 6]
    assert_preview_consistent(pieces, completions)
    assert all(c.text for c in completions)
    assert all(c.finish_reason in {"stop", "length"} and c.seconds > 0 for c in completions)


@pytest.mark.slow
def test_http_stream_from_a_server_killed_midway_is_unavailable(tmp_path):
    process, base_url = llama_server_start(
        model=packaged_model_path(), api_key=API_KEY, log_path=tmp_path / "server.log"
    )
    try:
        backend = OpenAICompatibleBackend(
            base_url=base_url, model="gemma", api_key=API_KEY, max_attempts=1, allowed_hosts=LOOPBACK
        )
        sampling = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=400)
        stream = backend.stream(turns=LONG_ANSWER, sampling=sampling, seeds=[1])
        first = next(event for event in stream if event.text)
        assert not first.done
        process.kill()
        with pytest.raises(GenerationUnavailable):
            for _event in stream:
                pass
    finally:
        llama_server_stop(process)


# --- OpenAI-compatible against a scripted streaming server -------------------------------------


class StreamingServer:
    """Answers POST /v1/chat/completions with a chunked event stream of `pieces`, as servers do.

    `status` other than 200 answers that status instead. `stall_after` pieces, the server stops
    sending and waits for the client to hang up (recorded in `client_left`); `break_after` pieces,
    it drops the connection without ending the stream.
    """

    def __init__(self) -> None:
        self.pieces = ["The", " sea", " is", " wide", "."]
        self.status = 200
        self.stall_after: int | None = None
        self.break_after: int | None = None
        self.requests: list[dict[str, Any]] = []
        self.client_left = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                payload = json.loads(self.rfile.read(length))
                server.requests.append(
                    {"path": self.path, "headers": dict(self.headers.items()), "json": payload}
                )
                if server.status != 200:
                    body = b'{"error": {"message": "scripted"}}'
                    self.send_response(server.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for number, piece in enumerate(server.pieces):
                    if number == server.stall_after:
                        self.connection.settimeout(60)
                        with contextlib.suppress(OSError):
                            self.connection.recv(1)  # returns when the client hangs up
                        server.client_left.set()
                        return
                    if number == server.break_after:
                        self.close_connection = True
                        return
                    self._event(
                        {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                    )
                self._event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                self._event({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 5}})
                self._chunk(b"data: [DONE]\n\n")
                self._chunk(b"")

            def _event(self, chunk: dict[str, Any]) -> None:
                self._chunk(b": keep-alive\n\ndata: " + json.dumps(chunk).encode() + b"\n\n")

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

        return Handler


@pytest.fixture
def streaming_server():
    server = StreamingServer()
    yield server
    server.stop()


def _backend(server: StreamingServer, **overrides: Any) -> OpenAICompatibleBackend:
    options: dict[str, Any] = {
        "read_timeout": 60.0,
        "max_attempts": 2,
        "backoff_seconds": 0.01,
        "allowed_hosts": LOOPBACK,
    }
    return OpenAICompatibleBackend(
        base_url=server.url, model="scripted", api_key=API_KEY, **(options | overrides)
    )


def test_http_stream_sends_generates_request_streamed(streaming_server):
    sampling = SamplingParams(temperature=0.3, top_p=0.5, max_tokens=12, stop=("###",))
    pieces, completions = collect(
        _backend(streaming_server).stream(turns=OPEN_QUESTION, sampling=sampling, seeds=[4, 5]), 2
    )

    assert pieces == ["The sea is wide.", "The sea is wide."]
    assert [(c.text, c.seed, c.finish_reason) for c in completions] == [
        ("The sea is wide.", 4, "stop"),
        ("The sea is wide.", 5, "stop"),
    ]
    assert all((c.prompt_tokens, c.completion_tokens) == (9, 5) for c in completions)
    request = next(r for r in streaming_server.requests if r["json"]["seed"] == 4)
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == f"Bearer {API_KEY}"
    assert request["json"] == {
        "model": "scripted",
        "messages": OPEN_QUESTION,
        "temperature": 0.3,
        "top_p": 0.5,
        "max_tokens": 12,
        "seed": 4,
        "stop": ["###"],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_http_stream_4xx_fails_and_5xx_is_unavailable(streaming_server):
    streaming_server.status = 400
    stream = _backend(streaming_server).stream(turns=OPEN_QUESTION, sampling=SHORT, seeds=[1])
    with pytest.raises(GenerationFailed, match="HTTP 400") as raised:
        list(stream)
    assert not isinstance(raised.value, GenerationUnavailable)
    assert len(streaming_server.requests) == 1

    streaming_server.status = 503
    with pytest.raises(GenerationUnavailable, match="HTTP 503.*after 2 attempts"):
        list(_backend(streaming_server).stream(turns=OPEN_QUESTION, sampling=SHORT, seeds=[1]))


def test_http_stream_broken_midway_is_unavailable(streaming_server):
    streaming_server.break_after = 2
    events: list[StreamEvent] = []
    with pytest.raises(GenerationUnavailable, match="while streaming|before the answer was finished"):
        for event in _backend(streaming_server).stream(turns=OPEN_QUESTION, sampling=SHORT, seeds=[1]):
            events.append(event)
    assert "".join(event.text for event in events) == "The sea"


def test_http_stream_closed_early_hangs_up(streaming_server):
    streaming_server.stall_after = 2
    stream = _backend(streaming_server).stream(turns=OPEN_QUESTION, sampling=SHORT, seeds=[1])
    assert next(stream).text == "The"
    started = time.monotonic()
    stream.close()
    # The server is left waiting with nothing to send: only the client hanging up ends its wait,
    # and that comes at once, not after the 60 s read timeout.
    assert streaming_server.client_left.wait(timeout=30)
    assert time.monotonic() - started < 30


def test_http_stream_connection_refused_is_unavailable_from_the_iterator():
    backend = OpenAICompatibleBackend(
        base_url=f"http://127.0.0.1:{free_port()}/v1", model="m", max_attempts=1, allowed_hosts=LOOPBACK
    )
    stream = backend.stream(turns=OPEN_QUESTION, sampling=SHORT, seeds=[1, 2])
    with pytest.raises(GenerationUnavailable, match="cannot connect"):
        next(stream)
