"""Real servers on loopback for the generation tests.

`ScriptedServer` is a small OpenAI-compatible HTTP server that answers from a script (delays,
5xx, 429, 4xx, fixed texts), to drive the failure paths a real model server rarely shows on cue.
`llama_server_start` runs llama.cpp's own OpenAI-compatible server on the packaged model.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests


@dataclass
class Reply:
    status: int = 200
    delay: float = 0.0
    text: str | None = None  # on 200: the answer; None gives a fresh distinct answer per request
    body: str | None = None  # raw body instead of a completion
    headers: dict[str, str] = field(default_factory=dict)
    finish_reason: str = "stop"


class ScriptedServer:
    """Answers POST /v1/chat/completions with the next scripted Reply, then with `default`."""

    def __init__(self) -> None:
        self.script: list[Reply] = []
        self.default = Reply()
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next(self, request: dict[str, Any]) -> tuple[Reply, int]:
        with self._lock:
            self.requests.append(request)
            reply = self.script.pop(0) if self.script else self.default
            return reply, len(self.requests)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                payload = json.loads(self.rfile.read(length) or b"{}")
                reply, number = server._next(
                    {"path": self.path, "headers": dict(self.headers.items()), "json": payload}
                )
                time.sleep(reply.delay)
                if reply.body is not None:
                    body = reply.body
                elif reply.status == 200:
                    text = reply.text if reply.text is not None else f"Answer number {number}."
                    body = json.dumps(
                        {
                            "choices": [
                                {
                                    "message": {"role": "assistant", "content": text},
                                    "finish_reason": reply.finish_reason,
                                }
                            ],
                            "usage": {"prompt_tokens": 7, "completion_tokens": 3},
                        }
                    )
                else:
                    body = json.dumps({"error": {"message": f"scripted failure {reply.status}"}})
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body.encode())))
                    self.end_headers()
                    self.wfile.write(body.encode())
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

        return Handler


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def llama_server_start(
    *,
    model: Path,
    api_key: str,
    log_path: Path,
    timeout_seconds: float = 120.0,
    extra_arguments: Sequence[str] = (),
) -> tuple[subprocess.Popen, str]:
    """Start `python -m llama_cpp.server` on a free loopback port; return it once it answers.

    `extra_arguments` go after the standard ones (another server setting, say)."""
    port = free_port()
    log = log_path.open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_threads",
            "1",  # see annotation/generation/embedded.py: spare threads spin when cores are busy
            "--n_ctx",
            "2048",
            # A base model answers nothing under its own chat template; this plain format it continues.
            "--chat_format",
            "snoozy",
            "--api_key",
            api_key,
            *extra_arguments,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()  # the child holds its own descriptor
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"llama_cpp.server exited with {process.returncode}: {log_path.read_text()[-2000:]}"
            )
        try:
            response = requests.get(
                f"{base_url}/models", headers={"Authorization": f"Bearer {api_key}"}, timeout=1
            )
            if response.status_code == 200:
                return process, base_url
        except requests.RequestException:
            pass
        time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"llama_cpp.server did not answer within {timeout_seconds} s")


def llama_server_stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
