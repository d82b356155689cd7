"""`OpenAITestDouble`: a loopback test double of an OpenAI-compatible chat-completions server
(NOT OpenAI), for testing LMs that speak the OpenAI wire format, e.g. a plain `dspy.LM`.

An `http.server` in a thread on 127.0.0.1 (port chosen by the OS) that answers

- `GET  /v1/models`: `{"object": "list", "data": [{"id": <model>, "object": "model", ...}]}`;
- `POST /v1/chat/completions`: a `chat.completion` object with one choice whose
  `message.content` is the JSON text of `route(body)` (a dict; the request body is the
  OpenAI `ChatCompletionRequest` as sent) and a `usage` block: `prompt_tokens` = the
  whitespace-separated words of all request messages, `completion_tokens` = the words of
  the answer text, `total_tokens`, and `prompt_tokens_details.cached_tokens` (the
  constructor's `cached_tokens`, capped at the prompt).

Every request body and every `usage` block it reported is kept (`requests`, `reported`),
so a test can compare what a client metered with what the server said. `route` runs in
the server's handler threads and may be called concurrently; a `route` that raises gives
an HTTP 500 with an OpenAI-shaped error body.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from pearl.types import Usage

Route = Callable[[dict[str, Any]], dict[str, Any]]


def words(text: Any) -> int:
    """The double's token count: whitespace-separated words."""
    return len(str(text).split())


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):  # content parts
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


class OpenAITestDouble:
    """The server; use it as a context manager (`with OpenAITestDouble(route) as double: double.url`)."""

    def __init__(self, route: Route, *, model: str = "double-chat", cached_tokens: int = 0):
        self.route = route
        self.model = model
        self.cached_tokens = cached_tokens
        self.requests: list[dict[str, Any]] = []
        self.reported: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [
                        {"id": double.model, "object": "model", "created": 0, "owned_by": "test-double"}]})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                    return
                try:
                    self._send(200, double.chat(body))
                except Exception as exc:  # the route's failure, as an OpenAI-shaped error
                    self._send(500, {"error": {"message": f"{exc.__class__.__name__}: {exc}", "type": "server_error"}})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="openai-double", daemon=True)

    @property
    def url(self) -> str:
        """The API base, ending in `/v1`."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> "OpenAITestDouble":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """The chat completion answering `body` (see the module docstring)."""
        with self._lock:
            self.requests.append(body)
        text = json.dumps(self.route(body))
        prompt = sum(words(message_text(m)) for m in body.get("messages", []))
        completion = words(text)
        usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                 "prompt_tokens_details": {"cached_tokens": min(self.cached_tokens, prompt)}}
        with self._lock:
            self.reported.append(usage)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", self.model),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": usage,
        }

    def total(self) -> Usage:
        """The sum of every `usage` block reported so far (seconds left 0)."""
        with self._lock:
            reported = list(self.reported)
        return Usage(calls=len(reported), prompt_tokens=sum(u["prompt_tokens"] for u in reported),
                     completion_tokens=sum(u["completion_tokens"] for u in reported),
                     cached_tokens=sum(u["prompt_tokens_details"]["cached_tokens"] for u in reported))
