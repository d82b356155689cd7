"""`sglang`: the GPU backend, an HTTP client of an SGLang server or router (0.5.x API).

**How prompts are built** (decided once per LM, from what the server offers; said once
per server through the `pearl.plugins.sglang` logger, as a warning for the two fallbacks,
by `pearl backend launch sglang` and `pearl backend check`, and kept in `prompt_route`
and `route.reason`):

1. ``template``: the backend option `chat_template` (a `.jinja` file or tokenizer
   folder) is rendered here (`pearl.lm.chat_template`) and sent as `text`.
2. ``server``: the server renders the conversation itself. `POST /v1/tokenize` with
   `messages` (SGLang 0.5.23+) returns the token ids its chat endpoint would feed the
   model, with SGLang's own template and BOS handling, and they are sent as `input_ids`.
   This works for a hub id (`--model Qwen/Qwen3-8B`) as well as a folder.
3. ``local``: an older server: the template of the tokenizer folder the server reports
   (`/model_info`'s `tokenizer_path`), when that folder is readable here.
4. ``chat``: none of these: every call is its own `/v1/chat/completions` request (SGLang's
   continuous batching still runs concurrent ones together).

**How requests travel.** Against one server, concurrent calls (siblings of a fan-out
step, concurrent pipeline runs) are coalesced by a `MicroBatcher` into one native
`POST /generate` whose `text` (or `input_ids`) is the LIST of prompts and whose
`sampling_params` has one entry per prompt (`max_new_tokens`, `temperature`, `top_p`,
`stop`, and `json_schema` as a JSON string, or `regex` / `ebnf`). SGLang's router
(`sglang_router`, in front of several workers) takes one prompt per `/generate`, so
behind a router (detected by its `GET /workers`, or by the 422 it gives a list body) every
call goes at once, from its own thread, as a single-prompt `/generate`; the router
spreads them over the workers, cache-aware.

**Failures stay with their prompt.** SGLang refuses a whole batch when one prompt is bad
(too long for the context, prompt + `max_new_tokens` over it, a grammar that does not
compile). A refused batch is split in halves and resent, recursively
(`pearl.lm.microbatch.bisect_failures`), so only the bad prompt's caller gets an error;
for the context length it is `PromptTooLongError`, an `InputError` (the runner adds the
step's name). A batch is never resent whole: on 429/5xx (a full queue answers 503) the
halves go after a backoff pause, and a single prompt is retried with backoff by
`pearl.lm.http`. A prompt that comes back with `finish_reason` "abort" is an error for
its caller, not an answer.

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
`python/sglang/srt/managers/io_struct.py` (`GenerateReqInput`),
`python/sglang/srt/entrypoints/openai/protocol.py` and, for the router,
`sgl-model-gateway/src/protocols/generate.rs`.
"""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pearl.errors import BackendError, InputError, PearlError
from pearl.host.backend import Backend, BackendSettings
from pearl.host.hookspecs import hookimpl
from pearl.lm.base import ChatRequest, Completion, PearlLM
from pearl.lm.chat_template import ChatTemplate, find_template
from pearl.lm.http import RETRY_STATUS, HttpClient, HttpStatusError, trace_headers
from pearl.lm.microbatch import MicroBatcher, bisect_failures
from pearl.lm.openai_wire import chat_body, completion_of, host_of, http_options

DEFAULT_URL = "http://127.0.0.1:30000"
GRAMMAR_KEYS = ("regex", "ebnf")
ROUTES = ("template", "server", "local", "chat")
log = logging.getLogger("pearl.plugins.sglang")
_told: set[tuple[str, str]] = set()
_told_lock = threading.Lock()


class PromptTooLongError(InputError):
    """A prompt (with its `max_new_tokens`) does not fit the served model's context length."""


def unreachable_advice(url: str) -> str:
    return f"no SGLang server at {url}: start one with `pearl backend launch sglang --model PATH_OR_ID`"


def tell_once(url: str, message: str, *, level: int = logging.INFO) -> None:
    """Log `message` once per server URL and message (every LM of a session shares the decision)."""
    with _told_lock:
        if (url, message) in _told:
            return
        _told.add((url, message))
    log.log(level, message)


@dataclass
class _Call:
    request: ChatRequest
    headers: dict[str, str] = field(default_factory=dict)
    prompt: str | list[int] | None = None


@dataclass(frozen=True)
class PromptRoute:
    """How prompts are built (see the module docstring): `kind` is one of `ROUTES`."""

    kind: str
    reason: str
    template: ChatTemplate | None = None


def sampling_params(request: ChatRequest) -> dict[str, Any]:
    """SGLang `SamplingParams` for one prompt of a `/generate` request."""
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


def typed_error(exc: BaseException) -> BaseException:
    """The error a caller gets for its own prompt: a context-length refusal becomes
    `PromptTooLongError`; anything else is passed on."""
    if isinstance(exc, HttpStatusError) and exc.status == 400 and "context length" in exc.detail:
        return PromptTooLongError(
            f"the prompt does not fit the served model's context ({exc.detail}): shorten the conversation, "
            f"lower the step's max_tokens, or serve a model with a longer context (--context-length)")
    return exc


def aborted(url: str, meta: dict[str, Any]) -> BackendError:
    reason = meta.get("finish_reason") if isinstance(meta.get("finish_reason"), dict) else {}
    return BackendError(f"the SGLang server at {url} aborted the request ({reason.get('message') or 'no reason given'})"
                        f": it was cancelled on the server (an /abort_request, a restart or a timeout); run it again")


class SGLangLM(PearlLM):
    """A `PearlLM` over an SGLang server or router (see the module docstring)."""

    provider = "sglang"

    def __init__(self, client: HttpClient, served_model: str, *, route: PromptRoute, router: bool = False,
                 window: float = 0.005, max_batch: int = 64, temperature: float = 0.0, max_tokens: int = 512,
                 seed: int | None = 0):
        super().__init__(f"sglang/{served_model}", temperature=temperature, max_tokens=max_tokens, seed=seed)
        if route.kind not in ROUTES:
            raise ValueError(f"prompt route {route.kind!r} is not one of {ROUTES}")
        self.client = client
        self.served_model = served_model
        self.server_address = host_of(client.base_url)
        self.route = route
        self.router = router
        self.batcher: MicroBatcher[_Call, Completion] = MicroBatcher(self._send_batch, window=window,
                                                                     max_batch=max_batch)
        self.stats = {"chat_requests": 0, "generate_requests": 0, "generate_prompts": 0, "tokenize_requests": 0,
                      "split_batches": 0}
        self._stats_lock = threading.Lock()

    @property
    def template(self) -> ChatTemplate | None:
        """The chat template rendered here (routes `template` and `local`), else None."""
        return self.route.template

    @property
    def prompt_route(self) -> str:
        return self.route.kind

    def _count(self, key: str, n: int = 1) -> None:
        with self._stats_lock:
            self.stats[key] += n

    # -- one call ---------------------------------------------------------
    def complete(self, request: ChatRequest) -> Completion:
        headers = trace_headers()
        if self.route.kind == "chat" or request.top_logprobs:  # token alternatives: the OpenAI-shaped endpoint
            return self._chat(request, headers)
        call = _Call(request, headers, self._prompt(request, headers))
        if self.router:
            return self._generate_one(call)
        return self.batcher.submit(call)

    def _prompt(self, request: ChatRequest, headers: dict[str, str]) -> str | list[int]:
        """The prompt for `/generate`, built in the caller's thread (so concurrent callers tokenize in parallel)."""
        if self.route.template is not None:
            return self.route.template.render(request.messages)
        self._count("tokenize_requests")
        data = self.client.post("v1/tokenize", {"model": self.served_model, "messages": request.messages},
                                headers=headers)
        tokens = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
            raise BackendError(f"the SGLang server at {self.client.base_url} answered /v1/tokenize without a list "
                               f"of token ids ({str(data)[:120]!r}): is it an SGLang 0.5.23+ server?")
        return tokens

    def _chat(self, request: ChatRequest, headers: dict[str, str]) -> Completion:
        body = chat_body(request, self.served_model, "json_schema")
        if any(body.get(k) for k in GRAMMAR_KEYS):  # SGLang refuses a regex/ebnf next to response_format
            body.pop("response_format", None)
        self._count("chat_requests")
        try:
            data = self.client.post("v1/chat/completions", body, headers=headers)
        except HttpStatusError as exc:
            raise typed_error(exc) from None
        completion = completion_of(data, self.client.label, self.client.base_url)
        if completion.finish_reason == "abort":
            raise aborted(self.client.base_url, {})
        return completion

    @staticmethod
    def _body(calls: list[_Call], batch: bool) -> dict[str, Any]:
        prompts = [c.prompt for c in calls]
        key = "text" if isinstance(prompts[0], str) else "input_ids"
        params = [sampling_params(c.request) for c in calls]
        return {key: prompts, "sampling_params": params} if batch else {key: prompts[0], "sampling_params": params[0]}

    def _generate_one(self, call: _Call) -> Completion:
        """One prompt as one `/generate` (the router's form), retried with backoff on 429/5xx."""
        self._count("generate_requests")
        self._count("generate_prompts")
        try:
            data = self.client.post("generate", self._body([call], batch=False), headers=call.headers)
        except HttpStatusError as exc:
            raise typed_error(exc) from None
        result = self._completion(data)
        if isinstance(result, BaseException):
            raise result
        return result

    # -- a batch ----------------------------------------------------------
    def _send_batch(self, calls: list[_Call]) -> list[Completion | BaseException]:
        if self.router:  # found out since these calls were queued
            return self._each_alone(calls)
        return bisect_failures(self._generate, calls, splittable=self._split, before_split=self._pause)

    def _split(self, exc: BaseException) -> bool:
        if isinstance(exc, HttpStatusError):
            self._count("split_batches")
            return True
        return False

    def _pause(self, exc: BaseException) -> None:
        if isinstance(exc, HttpStatusError) and exc.status in RETRY_STATUS:
            self.client.pause(self.client.backoff)

    def _each_alone(self, calls: list[_Call]) -> list[Completion | BaseException]:
        def one(call: _Call) -> Completion | BaseException:
            try:
                return self._generate_one(call)
            except PearlError as exc:
                return exc

        with ThreadPoolExecutor(max_workers=min(len(calls), 64), thread_name_prefix="pearl-sglang") as pool:
            return list(pool.map(one, calls))

    def _generate(self, calls: list[_Call]) -> list[Completion | BaseException]:
        """One `/generate` for `calls`; raises `HttpStatusError` when the server refuses the whole batch."""
        if len(calls) == 1:
            try:
                return [self._generate_one(calls[0])]
            except PearlError as exc:
                return [exc]
        self._count("generate_requests")
        self._count("generate_prompts", len(calls))
        try:
            data = self.client.post("generate", self._body(calls, batch=True), headers=calls[0].headers,
                                    retry_statuses=frozenset())
        except HttpStatusError as exc:
            if exc.status != 422:
                raise
            # SGLang's router refuses a list of prompts (axum's 422): send single prompts from now on
            self.router = True
            tell_once(self.client.base_url, f"the SGLang endpoint at {self.client.base_url} is a router: it takes "
                                            f"one prompt per /generate, so calls go one by one, concurrently")
            return self._each_alone(calls)
        if not isinstance(data, list) or len(data) != len(calls):
            raise BackendError(
                f"the SGLang server at {self.client.base_url} answered a batch of {len(calls)} prompts with "
                f"{type(data).__name__} {str(data)[:120]!r} instead of a list of {len(calls)} results: "
                f"is it an SGLang 0.5 server?"
            )
        return [self._completion(item) for item in data]

    def _completion(self, item: Any) -> Completion | BaseException:
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            return BackendError(f"the SGLang server at {self.client.base_url} returned a /generate item without "
                                f"'text' ({str(item)[:120]!r}): is it an SGLang 0.5 server?")
        meta = item.get("meta_info") or {}
        reason = finish_reason(meta)
        if reason == "abort":
            return aborted(self.client.base_url, meta)
        return Completion(
            text=item["text"],
            prompt_tokens=int(meta.get("prompt_tokens") or 0),
            completion_tokens=int(meta.get("completion_tokens") or 0),
            cached_tokens=int(meta.get("cached_tokens") or 0),
            finish_reason=reason,
            model=self.served_model,
        )

    def dump_state(self) -> dict[str, Any]:
        return {"model": self.model, "url": self.client.base_url}


def server_root(url: str) -> str:
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def model_info(client: HttpClient) -> dict[str, Any]:
    """`GET /model_info` (SGLang 0.5.23; the router too), or `/get_model_info` on older servers."""
    try:
        return client.get("model_info")
    except HttpStatusError as exc:
        if exc.status != 404:
            raise
        return client.get("get_model_info")


def is_router(client: HttpClient) -> bool:
    """SGLang's router answers `GET /workers`; a server answers 404 there."""
    return client.probe("workers") == 200


def server_renders_messages(client: HttpClient, model: str) -> bool:
    """Whether `/v1/tokenize` renders chat `messages` (SGLang 0.5.23+); older servers refuse them."""
    try:
        data = client.post("v1/tokenize", {"model": model, "messages": [{"role": "user", "content": "ping"}]},
                           retries=0)
    except BackendError:
        return False
    tokens = data.get("tokens") if isinstance(data, dict) else None
    return isinstance(tokens, list) and bool(tokens) and all(isinstance(t, int) for t in tokens)


def choose_route(client: HttpClient, served: str, info: dict[str, Any], explicit: str | None) -> PromptRoute:
    """How prompts are built (the module docstring's order), with the reason."""
    if explicit:
        template = find_template(explicit)
        if template is None:
            raise BackendError(f"chat_template '{explicit}' is neither a .jinja file nor a tokenizer folder "
                               f"with a chat template: fix the path")
        return PromptRoute("template", f"the chat_template option ({explicit}) is rendered here", template)
    if server_renders_messages(client, served):
        return PromptRoute("server", "the server renders each conversation with its own chat template "
                                     "(/v1/tokenize with messages)")
    for key in ("tokenizer_path", "model_path"):
        template = find_template(info.get(key))
        if template is not None:
            return PromptRoute("local", f"the server does not render messages (/v1/tokenize, SGLang 0.5.23+), so "
                                        f"the chat template of {info.get(key)} is rendered here", template)
    return PromptRoute("chat", f"the server does not render messages (/v1/tokenize, SGLang 0.5.23+) and its "
                               f"tokenizer folder ({info.get('tokenizer_path')}) is not readable here, so every "
                               f"call is its own chat request; upgrade SGLang or set the backend option "
                               f"chat_template=PATH to batch")


def prompt_note(url: str) -> str:
    """One line on how the `sglang` backend will build prompts for the server at `url`
    (`pearl backend launch sglang` prints it, so a launch that cannot batch says why)."""
    backend = SGLangBackend()
    client = backend.client(BackendSettings(name="sglang", url=url))
    info = model_info(client)
    listing = client.get("v1/models")
    served = (listing.get("data") or [{}])[0].get("id") if isinstance(listing, dict) else None
    route = choose_route(client, served or info.get("model_path") or "default", info, None)
    verdict = "calls are batched" if route.kind != "chat" else "calls are NOT batched"
    return f"{verdict}: {route.reason}"


class SGLangBackend(Backend):
    name = "sglang"
    description = "HTTP client of an SGLang server or router (GPU): /generate batches, json_schema, prefix cache"

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
        try:
            window = float(settings.options.get("batch_window_ms", 5)) / 1000.0
            max_batch = int(settings.options.get("max_batch", 64))
        except (TypeError, ValueError):
            raise BackendError("batch_window_ms and max_batch must be numbers") from None
        router = is_router(client)
        route = choose_route(client, served, info, settings.options.get("chat_template"))
        shape = "a router: one prompt per /generate, sent concurrently" if router else "a server: /generate batches"
        tell_once(client.base_url, f"SGLang at {client.base_url} is {shape}; prompts: {route.reason}",
                  level=logging.INFO if route.kind in ("server", "template") else logging.WARNING)
        return SGLangLM(client, served, route=route, router=router, window=window, max_batch=max_batch,
                        temperature=settings.temperature, max_tokens=settings.max_tokens, seed=settings.seed)

    def check(self, settings: BackendSettings) -> str:
        client = self.client(settings)
        info = model_info(client) if client.probe("model_info") in (200, 404) else None
        if info is None:
            raise BackendError(unreachable_advice(client.base_url))
        health = client.probe("health", timeout=30.0)
        state = "healthy" if health == 200 else f"/health answered {health}" + (" (starting)" if health == 503 else "")
        kind = "router" if is_router(client) else "server"
        return f"{state} at {client.base_url}; {kind}; model {info.get('model_path')}; {prompt_note(client.base_url)}"


@hookimpl
def register_backends(register):
    register(SGLangBackend)
