"""A small OpenAI-compatible server that streams its answers slowly, word by word, for the converse tests.

It runs in a thread (`StreamingServer(...).start()`) or as a process of its own that a test can
SIGKILL mid-stream and start again on the same port:

    python -m tests.annotation.converse_server --port 8123 --words 200 --delay 0.05

Each request gets a distinct answer ("Reply 7 (seed 1234): word1 word2 ..."), so K slots always
give K different candidates. `stream: true` gets server-sent events as OpenAI sends them (delta
chunks, a finish_reason, a usage chunk, `[DONE]`); without it, the whole completion at once.
"""

from __future__ import annotations

import argparse
import itertools
import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]
WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "seven",
    "wise",
    "owls",
    "count",
    "the",
    "stars",
]


def answer_words(*, number: int, seed: object, words: int) -> list[str]:
    """The pieces of one answer: a distinct opening, then `words` words, each with its space."""
    body = [f"{WORDS[(number + index) % len(WORDS)]} " for index in range(words)]
    return [f"Reply {number} (seed {seed}): ", *body[:-1], body[-1].strip() + "."] if body else ["Reply."]


class StreamingServer:
    """POST /v1/chat/completions answers `words` words, `delay` seconds apart; GET /v1/models lists one."""

    def __init__(self, *, port: int = 0, words: int = 12, delay: float = 0.0) -> None:
        self.words = words
        self.delay = delay
        self.requests: list[dict[str, Any]] = []
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> StreamingServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                self._json(200, {"object": "list", "data": [{"id": "streaming", "object": "model"}]})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                payload = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    server.requests.append(payload)
                    number = next(server._numbers)
                pieces = answer_words(number=number, seed=payload.get("seed"), words=server.words)
                try:
                    if payload.get("stream"):
                        self._stream(pieces)
                    else:
                        time.sleep(server.delay * len(pieces))
                        message = {"role": "assistant", "content": "".join(pieces)}
                        self._json(
                            200,
                            {
                                "choices": [{"message": message, "finish_reason": "stop"}],
                                "usage": {"prompt_tokens": 7, "completion_tokens": len(pieces)},
                            },
                        )
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client went away (a superseded or cancelled stream)

            def _stream(self, pieces: list[str]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()  # HTTP/1.0: the body ends when the connection closes

                def send(chunk: dict[str, Any] | str) -> None:
                    data = chunk if isinstance(chunk, str) else json.dumps(chunk)
                    self.wfile.write(f"data: {data}\n\n".encode())
                    self.wfile.flush()

                for piece in pieces:
                    time.sleep(server.delay)
                    send({"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
                send({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                send({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": len(pieces)}})
                send("[DONE]")

            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_process_start(*, port: int, words: int, delay: float, log: Path) -> subprocess.Popen:
    """The server as a process of its own on `port`, returned once it answers (within 20 s)."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.annotation.converse_server", "--port", str(port)]
            + ["--words", str(words), "--delay", str(delay)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the streaming server exited with {process.returncode}: {log.read_text()}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 200:
                return process
        except requests.RequestException:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("the streaming server did not answer within 20 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--words", type=int, default=12)
    parser.add_argument("--delay", type=float, default=0.0)
    arguments = parser.parse_args()
    server = StreamingServer(port=arguments.port, words=arguments.words, delay=arguments.delay)
    print(f"streaming on {server.url}", flush=True)
    server._server.serve_forever()


if __name__ == "__main__":
    main()
