"""`SGLangTestDouble`: a loopback test double of an SGLang 0.5 server or router (NOT SGLang).

It is as strict as SGLang: every request passes SGLang's rules (tests/sglang_rules.py,
each rule citing the SGLang source it replicates; `/generate` bodies go through SGLang's
own generated contract decoder when it can be imported) and every refusal has the status
and one of the three error shapes SGLang uses there. What it serves:

- `mode="server"` (one SGLang server, `sglang/srt/entrypoints/http_server.py`):
  `GET /health` (503 while starting, then an empty 200), `/model_info` and
  `/get_model_info`, `/v1/models`; `POST /generate` (a prompt or a LIST of prompts, as
  `text` or `input_ids`; `sampling_params` a dict or one per prompt; a list answered with
  a list of `{"text", "meta_info"}`), `POST /v1/chat/completions`, and
  `POST /v1/tokenize` (`prompt`, or `messages` rendered with the server's chat template
  as SGLang 0.5.23 does; `tokenize_messages=False` answers as older servers, whose
  `TokenizeRequest` requires `prompt`).
- `mode="router"` (SGLang's router, `sgl-model-gateway/src/server.rs`): `GET /workers`,
  `/health` answering "OK", and a `/generate` that takes ONE prompt (a list `text` is a
  422 in plain text); the rest is forwarded to one worker, as the router does.

The model stand-in: one token per character (token id = code point); the server's chat
template is Gemma-like, `<bos><start_of_turn>ROLE\\nCONTENT<end_of_turn>\\n...`, and its
tokenizer adds `<bos>` to `/generate` text (as `add_special_tokens=True` does), so a client
that sends an already-templated prompt WITH `<bos>` gets two; `double_bos` counts those.
A prompt's longest common prefix with any earlier prompt is served "from cache" (a radix
cache in miniature); a schema is answered with the simplest JSON value that satisfies it.
`context_length` (tokens) bounds prompt + `max_new_tokens`, as SGLang does.

Faults, scripted per model call (`/generate`, `/v1/chat/completions`): `fail(status)` (SGLang's shape for that route), `overload()`
(a 503 from a full queue), `abort()` (the next prompt finishes with
`finish_reason: {"type": "abort"}` and no status code, which SGLang returns as an
ordinary completion), `hang(seconds)`, `malformed()`. `latency` adds a per-request service
time (for benchmarks); `busy_seconds` sums the time spent serving, so a client's own
overhead can be measured.
"""

from __future__ import annotations

import bisect
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import sglang_rules as rules
from sglang_rules import Rejected

BOS = "<bos>"


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
    """Length of the common prefix of `a` and `b` (binary search on slice equality: C-speed)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def render_chat(messages: list[dict[str, Any]]) -> str:
    """The double's server-side chat template (Gemma-like), with the generation prompt."""
    turns = "".join(f"<start_of_turn>{'model' if m.get('role') == 'assistant' else m.get('role')}\n"
                    f"{str(m.get('content') or '').strip()}<end_of_turn>\n" for m in messages)
    return f"{BOS}{turns}<start_of_turn>model\n"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the listen backlog: hundreds of clients connect at once in benchmarks


class SchemaFormRejected(ValueError):
    """A response_format form the double is set to refuse (answered with 500, as llama-cpp-python's server does)."""


class SGLangTestDouble:
    """Runs on 127.0.0.1 on a free port; `url` is its root. Use as a context manager."""

    def __init__(self, *, model_path: str = "double/tiny-chat", tokenizer_path: str | None = None,
                 mode: str = "server", context_length: int = 32768, tokenize_messages: bool | None = None,
                 starting_seconds: float = 0.0, latency: float = 0.0, use_sglang_contract: bool = True,
                 expose_workers: bool = True):
        if mode not in ("server", "router"):
            raise ValueError("mode is 'server' or 'router'")
        self.model_path = model_path
        self.tokenizer_path = tokenizer_path or model_path
        self.mode = mode
        self.context_length = context_length
        #: Whether /v1/tokenize renders `messages` (SGLang 0.5.23+); the router's own tokenize does not.
        self.tokenize_messages = (mode == "server") if tokenize_messages is None else tokenize_messages
        self.latency = latency
        #: A router behind a proxy that hides `/workers`: the client must notice it by the 422.
        self.expose_workers = expose_workers
        self.use_sglang_contract = use_sglang_contract
        self.requests: list[dict[str, Any]] = []
        self.prompts_seen: list[str] = []
        self._sorted_prompts: list[str] = []
        self.script: list[tuple[str, Any]] = []
        self.double_bos = 0
        self.busy_seconds = 0.0
        #: How /v1/chat/completions treats response_format: "json_schema" (SGLang's own
        #: behaviour), "json_object" (llama-cpp-python's server: json_schema is a 500,
        #: json_object + schema is enforced) or "ignore" (a server that constrains nothing).
        self.schema_form = "json_schema"
        self._lock = threading.Lock()
        self._ready_at = time.monotonic() + starting_seconds
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, payload: Any = None, raw: bytes | None = None, text: bool = False):
                if raw is not None:
                    body = raw
                elif text:
                    body = str(payload).encode()
                else:
                    body = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8" if text else "application/json")
                self.send_header("Content-Length", str(len(body)))
                # headers and body in ONE write: two small writes meet Nagle's algorithm and the
                # client's delayed ACK, a 40 ms stall per response that is not the client's overhead
                self._headers_buffer.append(b"\r\n")
                data, self._headers_buffer = b"".join(self._headers_buffer) + body, []
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                    pass

            def do_GET(self):
                double._record("GET", self.path, dict(self.headers), None)
                status, payload, text = double.get(self.path)
                return self._send(status, payload, text=text)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"null")
                except ValueError:
                    return self._send(400, {"error": "expected value at line 1 column 1"})
                double._record("POST", self.path, dict(self.headers), body)
                t0 = time.perf_counter()
                try:
                    status, payload, text = double.post(self.path, body)
                finally:
                    with double._lock:
                        double.busy_seconds += time.perf_counter() - t0
                if status == -1:
                    return self._send(200, raw=b"<html>upstream proxy error")
                return self._send(status, payload, text=text)

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    # -- lifecycle ------------------------------------------------------
    def __enter__(self) -> "SGLangTestDouble":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def starting(self) -> bool:
        return time.monotonic() < self._ready_at

    # -- scripting --------------------------------------------------------
    def fail(self, status: int = 500, times: int = 1) -> None:
        self.script += [("status", status)] * times

    def overload(self, times: int = 1) -> None:
        """The next POSTs are refused as by a full queue: 503 (`--max-queued-requests`)."""
        self.script += [("overload", 503)] * times

    def abort(self, times: int = 1) -> None:
        """The next prompts finish aborted, without a status code (a completion, not an error status)."""
        self.script += [("abort", None)] * times

    def hang(self, seconds: float) -> None:
        self.script.append(("hang", seconds))

    def malformed(self) -> None:
        self.script.append(("malformed", None))

    def _next_fault(self, kinds: tuple[str, ...]):
        with self._lock:
            if self.script and self.script[0][0] in kinds:
                return self.script.pop(0)
            return None

    def _record(self, method, path, headers, body):
        with self._lock:
            self.requests.append({"method": method, "path": path, "headers": {k.lower(): v for k, v in headers.items()},
                                  "body": body})

    def posts(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == "POST" and r["path"] == path]

    # -- routes -------------------------------------------------------------
    def get(self, path: str) -> tuple[int, Any, bool]:
        if path == "/health":
            if self.mode == "router":
                return 200, "OK", True  # the router's liveness (server.rs `health`)
            return (503, None, False) if self.starting else (200, None, False)
        if path == "/workers" and self.mode == "router" and self.expose_workers:
            return 200, {"workers": [{"id": "w0", "url": "http://127.0.0.1:30001", "model_id": self.model_path,
                                      "is_healthy": True, "load": 0}], "total": 1}, False
        if path in ("/model_info", "/get_model_info"):
            return 200, {"model_path": self.model_path, "served_model_name": self.model_path,
                         "tokenizer_path": self.tokenizer_path, "is_generation": True,
                         "preferred_sampling_params": None, "weight_version": "default"}, False
        if path == "/v1/models":
            return 200, {"object": "list", "data": [
                {"id": self.model_path, "object": "model", "created": int(time.time()), "owned_by": "sglang",
                 "root": self.model_path, "max_model_len": self.context_length}]}, False
        return 404, {"detail": "Not Found"}, False

    def post(self, path: str, body: Any) -> tuple[int, Any, bool]:
        """(status, payload, is_text) for one POST; status -1 means a malformed (non-JSON) body."""
        openai_route = path.startswith("/v1/")
        model_call = path in ("/generate", "/v1/chat/completions")  # scripted faults hit these, not /v1/tokenize
        fault = self._next_fault(("status", "overload", "hang", "malformed")) if model_call else None
        if fault is not None:
            kind, arg = fault
            if kind == "status":
                rejected = (rules.openai_error(f"scripted failure {arg}", arg) if openai_route
                            else rules.native_error(f"scripted failure {arg}", arg))
                return rejected.status, rejected.payload, False
            if kind == "overload":
                # `Scheduler._abort_on_queued_limit` (sglang/srt/managers/scheduler.py) aborts with status 503;
                # `_handle_abort_finish_reason` (tokenizer_manager.py) raises it as an HTTPException, which
                # http_server.py's handler answers in the ErrorResponse shape with type "503"
                message = "The request queue is full."
                return 503, {"object": "error", "message": message, "type": "503", "param": None, "code": 503}, False
            if kind == "hang":
                time.sleep(arg)
            if kind == "malformed":
                return -1, None, False
        if self.latency and model_call:
            time.sleep(self.latency)
        try:
            if path == "/generate":
                if self.mode == "router":
                    rules.router_generate(body)
                return 200, self.generate(body), False
            if path == "/v1/chat/completions":
                return 200, self.chat(body), False
            if path == "/v1/tokenize":
                return 200, self.tokenize(body), False
        except Rejected as exc:
            return exc.status, exc.payload, exc.text
        except SchemaFormRejected as exc:  # llama-cpp-python's server answers 500 here
            return 500, {"error": {"message": str(exc)}}, False
        return 404, {"detail": "Not Found"}, False

    # -- the model stand-in ---------------------------------------------
    def _serve_prompt(self, prompt: str) -> int:
        """Tokens of `prompt` served from cache: its longest common prefix with any earlier
        prompt, which is shared with a sorted neighbour (so a lookup is a bisection)."""
        with self._lock:
            i = bisect.bisect_left(self._sorted_prompts, prompt)
            near = self._sorted_prompts[max(0, i - 1): i + 1]
            cached = max((common_prefix(prompt, p) for p in near), default=0)
            self._sorted_prompts.insert(i, prompt)
            self.prompts_seen.append(prompt)
        return min(cached, max(0, len(prompt) - 1))

    @staticmethod
    def _answer(schema: dict[str, Any] | None, regex: str | None, max_tokens: int | None,
                ebnf: str | None = None) -> tuple[str, dict[str, Any]]:
        if schema is not None:
            text = json.dumps(value_for(schema))
        elif regex is not None:
            text = "yes" if "yes" in regex else "0"
        elif ebnf is not None:  # the first quoted literal of the grammar
            text = ebnf.split('"')[1] if ebnf.count('"') >= 2 else "0"
        else:
            text = "double says: ok"
        limit = 128 if max_tokens is None else max_tokens
        if len(text) > limit:
            return text[:limit], {"type": "length", "length": limit}
        return text, {"type": "stop", "matched": 1}

    def _run(self, prompt: str, params: dict[str, Any], error) -> tuple[str, dict[str, Any], int]:
        """Validate one prompt as the tokenizer manager does, then answer it: (text, finish_reason, cached)."""
        rules.verify_length(len(prompt), params.get("max_new_tokens"), self.context_length, error=error)
        if prompt.startswith(BOS + BOS):
            with self._lock:
                self.double_bos += 1
        schema = json.loads(params["json_schema"]) if params.get("json_schema") else None
        answer, reason = self._answer(schema, params.get("regex"), params.get("max_new_tokens"), params.get("ebnf"))
        if self._next_fault(("abort",)) is not None:
            answer, reason = "", {"type": "abort", "message": "Abort before prefill"}
        return answer, reason, self._serve_prompt(prompt)

    def generate(self, body: Any) -> Any:
        rules.generate_contract(body, use_sglang=self.use_sglang_contract)
        prompts, per_prompt, batch = rules.generate_prompts(body)
        texts = []
        for prompt, params in zip(prompts, per_prompt):
            rules.verify_sampling(params)
            # text is tokenized WITH special tokens (the tokenizer adds BOS); input_ids are used as given
            texts.append(BOS + prompt if isinstance(prompt, str) else "".join(map(chr, prompt)))
        for text, params in zip(texts, per_prompt):  # the batch fails as a whole when one prompt is refused
            rules.verify_length(len(text), params.get("max_new_tokens"), self.context_length)
        out = []
        for text, params in zip(texts, per_prompt):
            answer, reason, cached = self._run(text, params, rules.native_error)
            out.append({"text": answer, "meta_info": {
                "id": uuid.uuid4().hex, "finish_reason": reason, "prompt_tokens": len(text),
                "completion_tokens": len(answer), "cached_tokens": cached, "e2e_latency": 0.001,
                "weight_version": "default"}})
        return out if batch else out[0]

    def chat(self, body: Any) -> dict[str, Any]:
        if self.schema_form == "json_schema":
            params = rules.chat_sampling(body)
        else:  # an OpenAI-compatible server of another kind (llama-cpp-python) for the openai backend's tests
            params = {"max_new_tokens": body.get("max_tokens"), "regex": body.get("regex")}
            fmt = body.get("response_format") or {}
            if fmt.get("type") == "json_schema" and self.schema_form == "json_object":
                raise SchemaFormRejected("response_format.type: Input should be 'text' or 'json_object'")
            if fmt.get("type") == "json_object" and self.schema_form == "json_object" and fmt.get("schema"):
                params["json_schema"] = json.dumps(fmt["schema"])
        prompt = render_chat(body["messages"])
        answer, reason, cached = self._run(prompt, params, rules.openai_error)
        return {
            "id": uuid.uuid4().hex, "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "default"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer, "reasoning_content": None,
                                                 "tool_calls": None},
                         "logprobs": chat_logprobs(answer, body), "finish_reason": reason["type"],
                         "matched_stop": reason.get("matched")}],
            "usage": {"prompt_tokens": len(prompt), "total_tokens": len(prompt) + len(answer),
                      "completion_tokens": len(answer), "prompt_tokens_details": {"cached_tokens": cached},
                      "reasoning_tokens": 0},
        }

    def tokenize(self, body: Any) -> dict[str, Any]:
        if not self.tokenize_messages and isinstance(body, dict) and body.get("messages") is not None:
            raise rules.openai_error("prompt: Field required", err_type="Bad Request")
        kind, value = rules.tokenize_input(body)
        if kind == "messages":  # rendered as for a chat completion, encoded without special tokens
            ids = [ord(c) for c in render_chat(value)]
            return {"tokens": ids, "count": len(ids), "max_model_len": self.context_length}
        prompts = value if isinstance(value, list) else [value]
        add = body.get("add_special_tokens", True)
        rows = [[ord(c) for c in ((BOS if add else "") + p)] for p in prompts]
        if isinstance(value, list):
            return {"tokens": rows, "count": [len(r) for r in rows], "max_model_len": self.context_length}
        return {"tokens": rows[0], "count": len(rows[0]), "max_model_len": self.context_length}


def chat_logprobs(answer: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """SGLang's `ChoiceLogprobs` for a chat request with `logprobs` (None without): the answer's first word
    as the first token at log-probability -0.05, and " no" at -3.0 as its runner-up, cut to `top_logprobs`."""
    if not body.get("logprobs"):
        return None
    first = (answer.split(" ") or [""])[0]
    top = [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in ((first, -0.05), (" no", -3.0))]
    top = top[: int(body.get("top_logprobs") or 0)]
    return {"content": [{**top[0], "top_logprobs": top}] if top else []}
