"""`SGLangTestDouble`: a loopback test double of an SGLang 0.5 server (NOT SGLang).

It answers with the request and response shapes of SGLang's own API definitions:

- routes from `python/sglang/srt/entrypoints/http_server.py`: `GET /health` (empty 200),
  `GET /get_model_info` (`model_path`, `tokenizer_path`, `is_generation`,
  `preferred_sampling_params`, `weight_version`), `GET /v1/models` (a `ModelList` of
  `ModelCard`s), `POST /generate`, `POST /v1/chat/completions`; a `ValueError` in a
  handler becomes HTTP 400 `{"error": {"message": ...}}` (`_create_error_response`);
- `/generate` bodies as `GenerateReqInput` in `python/sglang/srt/managers/io_struct.py`:
  `text` is a string or a LIST of strings; `sampling_params` a dict or a list with one
  dict per prompt, whose keys are `SamplingParams` fields
  (`python/sglang/srt/sampling/sampling_params.py`: `max_new_tokens`, `temperature`,
  `top_p`, `stop`, `json_schema` as a JSON *string*, `regex`, `ebnf`; at most one
  grammar). The answer is one `{"text", "meta_info"}` object per prompt, a list for a
  list; `meta_info` holds `id`, `finish_reason` (`{"type": "stop", "matched": ...}` or
  `{"type": "length", "length": n}`), `prompt_tokens`, `completion_tokens`,
  `cached_tokens` (`python/sglang/srt/managers/tokenizer_manager.py`);
- chat bodies as `ChatCompletionRequest` in
  `python/sglang/srt/entrypoints/openai/protocol.py` (`response_format` with
  `json_schema.schema`, SGLang extras `regex`/`ebnf`), answered as a chat completion whose
  `usage` is `UsageInfo` with `prompt_tokens_details.cached_tokens`.

What it computes is a stand-in: it counts one token per character, serves a prompt's
longest common prefix with any earlier prompt "from cache" (a radix cache in
miniature), and answers a schema with the simplest JSON value that satisfies it.
Faults can be scripted per POST: `fail(status)`, `hang(seconds)`, `malformed()`.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def value_for(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> Any:
    """The simplest JSON value satisfying `schema` (the subset pydantic emits)."""
    defs = defs if defs is not None else schema.get("$defs", {})
    if "$ref" in schema:
        return value_for(defs[schema["$ref"].split("/")[-1]], defs)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return value_for(options[0], defs)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties", {})
        return {name: value_for(sub, defs) for name, sub in props.items()}
    if kind == "array":
        return [value_for(schema.get("items", {"type": "string"}), defs)] * max(1, schema.get("minItems", 1))
    return {"string": "double", "integer": 1, "number": 0.5, "boolean": True, "null": None}[kind]


def common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class SchemaFormRejected(ValueError):
    """A response_format form the double is set to refuse (answered with 500, as llama-cpp-python's server does)."""


class SGLangTestDouble:
    """Runs on 127.0.0.1 on a free port; `url` is its root. Use as a context manager."""

    def __init__(self, *, model_path: str = "double/tiny-chat", tokenizer_path: str | None = None):
        self.model_path = model_path
        self.tokenizer_path = tokenizer_path or model_path
        self.requests: list[dict[str, Any]] = []
        self.prompts_seen: list[str] = []
        self.script: list[tuple[str, Any]] = []
        #: How /v1/chat/completions treats response_format: "json_schema" (SGLang's own
        #: behaviour), "json_object" (llama-cpp-python's server: json_schema is a 500,
        #: json_object + schema is enforced) or "ignore" (a server that constrains nothing).
        self.schema_form = "json_schema"
        self._lock = threading.Lock()
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, payload: Any = None, raw: bytes | None = None):
                body = raw if raw is not None else (b"" if payload is None else json.dumps(payload).encode())
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                    pass

            def do_GET(self):
                double._record("GET", self.path, dict(self.headers), None)
                if self.path == "/health":
                    return self._send(200)
                if self.path == "/get_model_info":
                    return self._send(200, {"model_path": double.model_path, "tokenizer_path": double.tokenizer_path,
                                            "is_generation": True, "preferred_sampling_params": None,
                                            "weight_version": "default"})
                if self.path == "/v1/models":
                    return self._send(200, {"object": "list", "data": [
                        {"id": double.model_path, "object": "model", "created": int(time.time()),
                         "owned_by": "sglang", "root": double.model_path, "max_model_len": 4096}]})
                return self._send(404, {"detail": "Not Found"})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"null")
                except ValueError:
                    return self._send(400, {"error": {"message": "invalid JSON body"}})
                double._record("POST", self.path, dict(self.headers), body)
                fault = double._next_fault()
                if fault is not None:
                    kind, arg = fault
                    if kind == "status":
                        return self._send(arg, {"error": {"message": f"scripted failure {arg}"}})
                    if kind == "hang":
                        time.sleep(arg)
                    if kind == "malformed":
                        return self._send(200, raw=b"<html>upstream proxy error")
                try:
                    if self.path == "/generate":
                        return self._send(200, double.generate(body))
                    if self.path == "/v1/chat/completions":
                        return self._send(200, double.chat(body))
                except SchemaFormRejected as exc:  # llama-cpp-python's server answers 500 here
                    return self._send(500, {"error": {"message": str(exc)}})
                except ValueError as exc:
                    return self._send(400, {"error": {"message": str(exc)}})
                return self._send(404, {"detail": "Not Found"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # -- lifecycle ------------------------------------------------------
    def __enter__(self) -> "SGLangTestDouble":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- scripting --------------------------------------------------------
    def fail(self, status: int = 500, times: int = 1) -> None:
        self.script += [("status", status)] * times

    def hang(self, seconds: float) -> None:
        self.script.append(("hang", seconds))

    def malformed(self) -> None:
        self.script.append(("malformed", None))

    def _next_fault(self):
        with self._lock:
            return self.script.pop(0) if self.script else None

    def _record(self, method, path, headers, body):
        with self._lock:
            self.requests.append({"method": method, "path": path, "headers": {k.lower(): v for k, v in headers.items()},
                                  "body": body})

    def posts(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == "POST" and r["path"] == path]

    # -- the model stand-in ---------------------------------------------
    def _serve_prompt(self, prompt: str) -> int:
        with self._lock:
            cached = max((common_prefix(prompt, p) for p in self.prompts_seen), default=0)
            self.prompts_seen.append(prompt)
        return min(cached, max(0, len(prompt) - 1))

    @staticmethod
    def _answer(schema: dict[str, Any] | None, regex: str | None, max_tokens: int) -> tuple[str, dict[str, Any]]:
        if schema is not None:
            text = json.dumps(value_for(schema))
        elif regex is not None:
            text = "yes" if "yes" in regex else "0"
        else:
            text = "double says: ok"
        if len(text) > max_tokens:
            return text[:max_tokens], {"type": "length", "length": max_tokens}
        return text, {"type": "stop", "matched": 1}

    def generate(self, body: dict[str, Any]) -> Any:
        text = body.get("text")
        params = body.get("sampling_params") or {}
        batch = isinstance(text, list)
        prompts = text if batch else [text]
        if not all(isinstance(p, str) for p in prompts):
            raise ValueError("text must be a string or a list of strings")
        per_prompt = params if isinstance(params, list) else [params] * len(prompts)
        if len(per_prompt) != len(prompts):
            raise ValueError("The length of sampling_params and text must match")
        out = []
        for prompt, sp in zip(prompts, per_prompt):
            grammars = [sp.get(k) for k in ("json_schema", "regex", "ebnf") if sp.get(k) is not None]
            if len(grammars) > 1:
                raise ValueError("Only one of regex, json_schema, or ebnf can be set.")
            schema = json.loads(sp["json_schema"]) if isinstance(sp.get("json_schema"), str) else None
            if sp.get("json_schema") is not None and schema is None:
                raise ValueError("json_schema must be a JSON string")
            answer, reason = self._answer(schema, sp.get("regex"), int(sp.get("max_new_tokens", 128)))
            cached = self._serve_prompt(prompt)
            out.append({"text": answer, "meta_info": {
                "id": uuid.uuid4().hex, "finish_reason": reason, "prompt_tokens": len(prompt),
                "completion_tokens": len(answer), "cached_tokens": cached, "e2e_latency": 0.001}})
        return out if batch else out[0]

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ValueError("messages must be a non-empty list")
        prompt = "".join(f"<{m['role']}>\n{m['content']}\n" for m in messages) + "<assistant>\n"
        fmt = body.get("response_format") or {}
        schema = None
        if fmt.get("type") == "json_schema":
            if self.schema_form == "json_object":
                raise SchemaFormRejected("response_format.type: Input should be 'text' or 'json_object'")
            schema = (fmt.get("json_schema") or {}).get("schema")
            if schema is None:
                raise ValueError("response_format.json_schema.schema is required")
        elif fmt.get("type") == "json_object" and self.schema_form == "json_object":
            schema = fmt.get("schema")
        if self.schema_form == "ignore":
            schema = None
        answer, reason = self._answer(schema, body.get("regex"), int(body.get("max_tokens") or 128))
        cached = self._serve_prompt(prompt)
        return {
            "id": uuid.uuid4().hex, "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "default"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer, "reasoning_content": None,
                                                 "tool_calls": None},
                         "logprobs": None, "finish_reason": reason["type"], "matched_stop": reason.get("matched")}],
            "usage": {"prompt_tokens": len(prompt), "total_tokens": len(prompt) + len(answer),
                      "completion_tokens": len(answer), "prompt_tokens_details": {"cached_tokens": cached},
                      "reasoning_tokens": 0},
        }
