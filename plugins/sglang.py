"""`sglang`: the GPU backend, an HTTP client of an SGLang server (0.5.x API).

Two routes, chosen per micro-batch (see `pearl.lm.microbatch`):

- **one call** in the batch window -> OpenAI-compatible `POST /v1/chat/completions`;
  the server applies the model's chat template. Structured steps send
  `response_format = {"type": "json_schema", ...}`; SGLang's own grammar fields
  (`regex`, `ebnf`) travel in the same body when a request's `extra` holds them (a
  step asks for them with `config={"extra_body": {"regex": ...}}`).
- **several calls** (sibling requests of a fan-out step, or concurrent pipeline runs)
  -> one native `POST /generate` whose `text` is the LIST of prompts and whose
  `sampling_params` is the list of per-prompt settings (`max_new_tokens`,
  `temperature`, `top_p`, `stop`, and `json_schema` as a JSON string, or `regex` /
  `ebnf`). SGLang schedules the batch together and, with `--schedule-policy lpm`,
  shares their common prefix through its radix cache.

`/generate` takes prompt text, so the chat template is applied on the client
(`pearl.lm.chat_template`): from the backend option `chat_template` (a `.jinja`
file or tokenizer folder), else from the `tokenizer_path` the server reports in
`GET /get_model_info` when that folder is readable here (always the case for a server
started with `pearl backend launch sglang`). When no template is available a batch is
sent as concurrent `/v1/chat/completions` requests instead, which SGLang's continuous
batching still runs together.

Seeds: the chat route sends `seed`; `/generate` does not (not every 0.5.x
`SamplingParams` has `sampling_seed`), which matters only when sampling: the default
temperature 0 decodes greedily.

Usage: `prompt_tokens`, `completion_tokens` and `cached_tokens` come from `meta_info`
(`/generate`) or `usage.prompt_tokens_details` (chat; the server needs
`--enable-cache-report`). Every request carries the caller's W3C `traceparent`; a
batch carries its leader's. Timeouts, retries with backoff and the errors come from
`pearl.lm.http`.

Options: `timeout`, `max_retries`, `backoff` (as for `openai`), `batch_window_ms`
(default 5), `max_batch` (default 64), `chat_template`.
Request/response shapes follow SGLang's `python/sglang/srt/entrypoints/http_server.py`,
`python/sglang/srt/managers/io_struct.py` (`GenerateReqInput`) and
`python/sglang/srt/entrypoints/openai/protocol.py`.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pearl.host.backend import Backend, BackendSettings
from pearl.errors import BackendError
from pearl.host.hookspecs import hookimpl
from pearl.lm.chat_template import ChatTemplate, find_template
from pearl.lm.http import HttpClient, HttpStatusError, trace_headers
from pearl.lm.base import ChatRequest, Completion, PearlLM
from pearl.lm.microbatch import MicroBatcher
from pearl.lm.openai_wire import chat_body, completion_of, host_of, http_options

DEFAULT_URL = "http://127.0.0.1:30000"
GRAMMAR_KEYS = ("regex", "ebnf")


def unreachable_advice(url: str) -> str:
    return f"no SGLang server at {url}: start one with `pearl backend launch sglang --model PATH_OR_ID`"


@dataclass
class _Call:
    request: ChatRequest
    headers: dict[str, str] = field(default_factory=dict)


def sampling_params(request: ChatRequest) -> dict[str, Any]:
    """SGLang `SamplingParams` for one prompt of a `/generate` batch."""
    params: dict[str, Any] = {"max_new_tokens": request.max_tokens, "temperature": request.temperature}
    if request.top_p is not None:
        params["top_p"] = request.top_p
    if request.stop:
        params["stop"] = request.stop
    grammar = {k: request.extra[k] for k in GRAMMAR_KEYS if request.extra.get(k)}
    if grammar:
        params.update(grammar)
    elif request.json_schema is not None:
        params["json_schema"] = json.dumps(request.json_schema)
    elif request.json_mode:
        params["json_schema"] = json.dumps({"type": "object"})
    return params


def finish_reason(meta: dict[str, Any]) -> str | None:
    """SGLang reports `{"type": "stop" | "length" | "abort", ...}`; OpenAI says the type."""
    reason = meta.get("finish_reason")
    if isinstance(reason, dict):
        return reason.get("type")
    return reason


class SGLangLM(PearlLM):
    """A `PearlLM` over an SGLang server, with a micro-batcher (see the module docstring)."""

    provider = "sglang"

    def __init__(self, client: HttpClient, served_model: str, *, template: ChatTemplate | None,
                 window: float = 0.005, max_batch: int = 64, temperature: float = 0.0, max_tokens: int = 512,
                 seed: int | None = 0):
        super().__init__(f"sglang/{served_model}", temperature=temperature, max_tokens=max_tokens, seed=seed)
        self.client = client
        self.served_model = served_model
        self.server_address = host_of(client.base_url)
        self.template = template
        self.batcher: MicroBatcher[_Call, Completion] = MicroBatcher(self._send_batch, window=window,
                                                                     max_batch=max_batch)
        self.stats = {"chat_requests": 0, "generate_requests": 0, "generate_prompts": 0}
        self._stats_lock = threading.Lock()

    def _count(self, key: str, n: int = 1) -> None:
        with self._stats_lock:
            self.stats[key] += n

    # -- the two routes -------------------------------------------------
    def complete(self, request: ChatRequest) -> Completion:
        return self.batcher.submit(_Call(request, trace_headers()))

    def _send_batch(self, calls: list[_Call]) -> list[Completion | BaseException]:
        if len(calls) == 1:
            return [self._chat(calls[0])]
        if self.template is None:
            with ThreadPoolExecutor(max_workers=len(calls), thread_name_prefix="pearl-sglang") as pool:
                return list(pool.map(self._chat_or_error, calls))
        return self._generate(calls)

    def _chat_or_error(self, call: _Call) -> Completion | BaseException:
        try:
            return self._chat(call)
        except BackendError as exc:
            return exc

    def _chat(self, call: _Call) -> Completion:
        body = chat_body(call.request, self.served_model, "json_schema")
        self._count("chat_requests")
        data = self.client.post("v1/chat/completions", body, headers=call.headers)
        return completion_of(data, self.client.label, self.client.base_url)

    def _generate(self, calls: list[_Call]) -> list[Completion]:
        body = {
            "text": [self.template.render(c.request.messages) for c in calls],
            "sampling_params": [sampling_params(c.request) for c in calls],
        }
        self._count("generate_requests")
        self._count("generate_prompts", len(calls))
        data = self.client.post("generate", body, headers=calls[0].headers)
        if not isinstance(data, list) or len(data) != len(calls):
            raise BackendError(
                f"the SGLang server at {self.client.base_url} answered a batch of {len(calls)} prompts with "
                f"{type(data).__name__} {str(data)[:120]!r} instead of a list of {len(calls)} results: "
                f"is it an SGLang 0.5 server?"
            )
        out = []
        for item in data:
            if not isinstance(item, dict) or not isinstance(item.get("text"), str):
                raise BackendError(f"the SGLang server at {self.client.base_url} returned a /generate item without "
                                   f"'text' ({str(item)[:120]!r}): is it an SGLang 0.5 server?")
            meta = item.get("meta_info") or {}
            out.append(Completion(
                text=item["text"],
                prompt_tokens=int(meta.get("prompt_tokens") or 0),
                completion_tokens=int(meta.get("completion_tokens") or 0),
                cached_tokens=int(meta.get("cached_tokens") or 0),
                finish_reason=finish_reason(meta),
                model=self.served_model,
            ))
        return out

    def dump_state(self) -> dict[str, Any]:
        return {"model": self.model, "url": self.client.base_url}


def server_root(url: str) -> str:
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def model_info(client: HttpClient) -> dict[str, Any]:
    """`GET /get_model_info` (SGLang 0.5), or `/model_info` on servers that renamed it."""
    try:
        return client.get("get_model_info")
    except HttpStatusError as exc:
        if exc.status != 404:
            raise
        return client.get("model_info")


class SGLangBackend(Backend):
    name = "sglang"
    description = "HTTP client of an SGLang server (GPU): /generate batches, json_schema, prefix cache"

    def client(self, settings: BackendSettings) -> HttpClient:
        root = server_root(settings.url or DEFAULT_URL)
        if not root.startswith(("http://", "https://")):
            raise BackendError(f"backend URL '{root}' is not an http(s) URL: write it as http://HOST:PORT")
        return HttpClient(root, label="SGLang server", unreachable=unreachable_advice(root), **http_options(settings))

    def create(self, settings: BackendSettings) -> SGLangLM:
        client = self.client(settings)
        info = model_info(client)
        if info.get("is_generation") is False:
            raise BackendError(f"the SGLang server at {client.base_url} serves an embedding model "
                               f"({info.get('model_path')}): launch it with a generative model")
        listing = client.get("v1/models")
        try:
            served = listing["data"][0]["id"]
        except (KeyError, IndexError, TypeError):
            served = info.get("model_path") or "default"
        explicit = settings.options.get("chat_template")
        template = find_template(explicit) if explicit else None
        if explicit and template is None:
            raise BackendError(f"chat_template '{explicit}' is neither a .jinja file nor a tokenizer folder "
                               f"with a chat template: fix the path")
        if template is None:
            template = find_template(info.get("tokenizer_path")) or find_template(info.get("model_path"))
        try:
            window = float(settings.options.get("batch_window_ms", 5)) / 1000.0
            max_batch = int(settings.options.get("max_batch", 64))
        except (TypeError, ValueError):
            raise BackendError("batch_window_ms and max_batch must be numbers") from None
        return SGLangLM(client, served, template=template, window=window, max_batch=max_batch,
                        temperature=settings.temperature, max_tokens=settings.max_tokens, seed=settings.seed)

    def check(self, settings: BackendSettings) -> str:
        client = self.client(settings)
        info = model_info(client) if client.probe("get_model_info") is not None else None
        if info is None:
            raise BackendError(unreachable_advice(client.base_url))
        health = client.probe("health", timeout=30.0)
        state = "healthy" if health == 200 else f"/health answered {health}"
        return f"{state} at {client.base_url}; model {info.get('model_path')}"


@hookimpl
def register_backends(register):
    register(SGLangBackend)
