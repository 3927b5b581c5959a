"""Reading a streamed chat completion: server-sent events from an OpenAI-compatible server.

With `stream: true` the server answers `text/event-stream`: events of `data: {json chunk}` lines,
each chunk carrying `choices[0].delta.content` (the next piece of text) and, at the end, a
`finish_reason`; with `stream_options.include_usage` a last chunk carries the token counts; then
`data: [DONE]`. As in `openai_http`, nothing the server writes is copied into a message.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import requests
import urllib3

from annotation.generation.base import Completion, GenerationFailed, GenerationUnavailable, StreamEvent
from annotation.generation.formatting import completion_clean
from annotation.generation.streaming import Emit, StreamText


def chat_stream_emit(
    *, response: requests.Response, shown_url: str, slot: int, seed: int, started: float, emit: Emit
) -> None:
    """Emit slot `slot`'s events from a streamed chat completion; the last is its `done` event.

    Raises GenerationUnavailable when the connection breaks, times out or ends before the answer
    does; GenerationFailed when the stream is not an OpenAI-compatible one.
    """
    text, finish_reason = StreamText(), ""
    usage: dict[str, Any] = {}
    try:
        for data in sse_data(response):
            if data.strip() == "[DONE]":
                break
            chunk = _chunk_parse(data, shown_url=shown_url)
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices") or ():
                finish_reason = str(choice.get("finish_reason") or finish_reason)
                content = (choice.get("delta") or {}).get("content") or ""
                if not isinstance(content, str):
                    raise GenerationFailed(f"{shown_url} streamed non-text content")
                if piece := text.feed(content):
                    emit(StreamEvent(slot=slot, text=piece))
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as error:
        raise GenerationUnavailable(
            f"lost the connection to {shown_url} while streaming: {type(error).__name__}"
        ) from None
    if not finish_reason:
        # Cut off: the connection ended early, or [DONE] came first (llama-cpp-python's server
        # ends one stream that way when another request arrives, unless --interrupt_requests false).
        raise GenerationUnavailable(f"{shown_url} ended the stream before the answer was finished")
    completion = Completion(
        text=completion_clean(text=text.text),
        seed=seed,
        prompt_tokens=int_or_none(usage.get("prompt_tokens")),
        completion_tokens=int_or_none(usage.get("completion_tokens")),
        seconds=time.perf_counter() - started,
        finish_reason=finish_reason,
    )
    emit(StreamEvent(slot=slot, text=text.finish(), done=True, completion=completion))


def sse_data(response: requests.Response) -> Iterator[str]:
    """The data of each server-sent event in `response`, as the events arrive.

    An event's `data:` lines are joined by newlines; comments, `event:`, `id:` and `retry:` lines
    are skipped. The body is read in the pieces the server flushes (chunked transfer encoding), so
    an event is handed out as soon as its blank line arrives.
    """
    lines: list[str] = []
    for raw in response.iter_lines(chunk_size=1024):
        line = raw.decode("utf-8", errors="replace")
        if not line:
            if lines:
                yield "\n".join(lines)
                lines = []
        elif line.startswith("data:"):
            value = line[len("data:") :]
            lines.append(value[1:] if value.startswith(" ") else value)
    if lines:  # a server that does not end its last event with a blank line
        yield "\n".join(lines)


def response_interrupt(response: requests.Response) -> None:
    """Wake a thread blocked reading `response`: it reads the end of the body and closes it.

    Closing a socket does not wake a read already waiting on it; shutting it down does. urllib3
    (2.3 and later) can shut a response's socket; with an older one the response is closed instead.
    """
    try:
        response.raw.shutdown()
    except (AttributeError, ValueError, RuntimeError, OSError):  # released already, or an old urllib3
        with contextlib.suppress(Exception):
            response.close()


def int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and value >= 0 else None


def _chunk_parse(data: str, *, shown_url: str) -> dict[str, Any]:
    """One streamed chunk; a chunk that is not a JSON object, or that reports an error, raises."""
    try:
        chunk = json.loads(data)
    except ValueError:
        raise GenerationFailed(
            f"{shown_url} streamed an event that is not JSON; is it OpenAI-compatible?"
        ) from None
    if not isinstance(chunk, dict):
        raise GenerationFailed(f"{shown_url} streamed an event that is not a JSON object")
    if chunk.get("error"):
        # As a 5xx would be, had the server known before it started; its words are not shown.
        raise GenerationUnavailable(f"{shown_url} reported an error in the middle of the stream")
    return chunk
