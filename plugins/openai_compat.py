"""`openai`: any OpenAI-compatible chat-completions server (vLLM, SGLang, llama.cpp's
server, Ollama, hosted APIs).

Settings: `url` (the API base, usually ending in `/v1`; also `PEARL_BACKEND_URL` or
`OPENAI_BASE_URL`), `model` (the served model id; default: the first of `GET /models`),
and the backend options `timeout` (s, default 120), `max_retries` (default 3),
`backoff` (s, default 0.5), `schema_format` (`auto`, `json_schema`, `json_object`).

The API key comes from the environment only: `PEARL_API_KEY`, else `OPENAI_API_KEY`, or
the variable named by `--api-key-env NAME` (a pipeline file's `api_key_env` may name only
those two; see `pearl.host.backend.check_api_key_variable`). It is sent as a bearer token
and never logged, traced, printed or saved with a program; errors and spans show it
redacted (`pearl.redact`).

Structured steps send the step's JSON schema as OpenAI's
`response_format = {"type": "json_schema", ...}`, or as the older
`{"type": "json_object", "schema": ...}` that llama-cpp-python's server reads. With
`schema_format = "auto"` (default) the first structured call probes which form the
server really enforces (`probe_schema_format`) and uses it from then on. The LM is safe
to call from many threads at once: requests are independent and share one connection
pool.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any
from urllib.parse import urlsplit

from pearl.errors import BackendError
from pearl.host.backend import API_KEY_VARIABLES, Backend, BackendSettings, check_api_key_variable, check_url
from pearl.host.hookspecs import hookimpl
from pearl.lm.base import ChatRequest, Completion, PearlLM
from pearl.lm.http import HttpClient, HttpStatusError
from pearl.lm.openai_wire import chat_body, completion_of, host_of, http_options
from pearl.lm.schema import LLAMA_CPP_MAX_STRING_CHARS
from pearl.redact import redact_url, register_secret

API_KEY_VARS = API_KEY_VARIABLES
SCHEMA_FORMATS = ("auto", "json_schema", "json_object")


def api_key_from_environment(var: str | None = None) -> str | None:
    """The API key from `var` (checked by `check_api_key_variable`), else the first of `API_KEY_VARS` that is set."""
    var = check_api_key_variable(var)
    for name in ([var] if var else []) + list(API_KEY_VARS):
        value = os.environ.get(name)
        if value:
            register_secret(value)  # masked in every error, span and log line from now on
            return value
    return None


PROBE_ANSWER = {"probe": "pearl-schema-probe"}
PROBE_SCHEMA = {"type": "object", "properties": {"probe": {"type": "string", "enum": ["pearl-schema-probe"]}},
                "required": ["probe"], "additionalProperties": False}


def probe_schema_format(client: HttpClient, model: str) -> str:
    """The `response_format` form under which the server really constrains decoding.

    A server may accept a form and still ignore it, so accepting is not enough: the
    probe's schema admits exactly one answer, which no unconstrained model writes by
    chance. (llama-cpp-python's server rejects `json_schema`, with a 500, and enforces
    `json_object` + `schema`; vLLM, SGLang and hosted APIs enforce `json_schema`.) Each
    form is tried once, `json_schema` first; a server that honours neither is an error,
    since every structured step relies on the constraint.
    """
    request = ChatRequest(messages=[{"role": "user", "content": "Answer with a JSON object."}],
                          max_tokens=64, json_schema=PROBE_SCHEMA)
    refused: HttpStatusError | None = None
    for fmt in ("json_schema", "json_object"):
        try:
            body = client.post("chat/completions", chat_body(request, model, fmt), retries=0)
        except HttpStatusError as exc:  # a form the server does not take (422, or 500 from llama-cpp-python)
            refused = exc
            continue
        text = completion_of(body, client.label, client.base_url).text
        try:
            if json.loads(text) == PROBE_ANSWER:
                return fmt
        except ValueError:
            pass
        refused = None
    if refused is not None:
        raise refused
    raise BackendError(
        f"the server at {client.base_url} does not constrain decoding to a JSON schema (tried response_format "
        f"json_schema and json_object): structured steps need it. Use a server that does (vLLM, SGLang, llama.cpp), "
        f"or set the backend option schema_format = \"json_schema\" to send schemas without this check"
    )


class OpenAICompatLM(PearlLM):
    """A `PearlLM` over an OpenAI-compatible `/chat/completions` endpoint."""

    provider = "openai"

    def __init__(self, client: HttpClient, served_model: str, *, schema_format: str = "auto",
                 temperature: float = 0.0, max_tokens: int = 512, seed: int | None = 0):
        super().__init__(f"openai/{served_model}", temperature=temperature, max_tokens=max_tokens, seed=seed)
        self.client = client
        self.served_model = served_model
        self.server_address = host_of(client.base_url)
        self.schema_format = schema_format
        self._format_lock = threading.Lock()

    def fit(self, request: ChatRequest) -> ChatRequest:
        if request.json_schema is not None and self.schema_format == "auto":
            self.resolve_schema_format()
        return super().fit(request)

    def resolve_schema_format(self) -> str:
        """Probe the server once (`probe_schema_format`); concurrent first calls wait for it."""
        with self._format_lock:
            if self.schema_format == "auto":
                self.schema_format = probe_schema_format(self.client, self.served_model)
                if self.schema_format == "json_object" and self.max_string_chars is None:
                    # Only llama-cpp-python's server takes that form: its grammar has llama.cpp's limits.
                    self.max_string_chars = LLAMA_CPP_MAX_STRING_CHARS
        return self.schema_format

    def complete(self, request: ChatRequest) -> Completion:
        fmt = self.schema_format if self.schema_format != "auto" else "json_schema"
        body = self.client.post("chat/completions", chat_body(request, self.served_model, fmt))
        return completion_of(body, self.client.label, self.client.base_url)

    def dump_state(self) -> dict[str, Any]:
        return {"model": self.model, "url": redact_url(self.client.base_url)}


def normalise_base_url(url: str) -> str:
    """`http://host:port` -> `http://host:port/v1`; a URL with a path is kept as given."""
    url = url.rstrip("/")
    if urlsplit(url).path in ("", "/"):
        url += "/v1"
    return url


class OpenAIBackend(Backend):
    name = "openai"
    description = "any OpenAI-compatible server (vLLM, SGLang, llama.cpp server, Ollama, hosted APIs)"

    def client(self, settings: BackendSettings) -> HttpClient:
        url = settings.url or os.environ.get("OPENAI_BASE_URL")
        if not url:
            raise BackendError(
                "the openai backend needs the server's URL: pass --backend-url http://HOST:PORT/v1 "
                "or set PEARL_BACKEND_URL"
            )
        try:  # OPENAI_BASE_URL is not a setting: check it like one
            check_url(url)
        except ValueError as exc:
            raise BackendError(f"backend URL {exc}") from None
        base = normalise_base_url(url)
        try:
            key = api_key_from_environment(settings.api_key_env or settings.options.get("api_key_env"))
        except ValueError as exc:
            raise BackendError(str(exc)) from None
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return HttpClient(base, label="OpenAI-compatible server", headers=headers,
                          unreachable=f"no OpenAI-compatible server at {base}: start one (for example "
                                      f"`python -m llama_cpp.server --model MODEL.gguf`) or fix --backend-url",
                          **http_options(settings))

    def served_model(self, client: HttpClient, settings: BackendSettings) -> str:
        if settings.model:
            return settings.model
        listing = client.get("models")
        try:
            return listing["data"][0]["id"]
        except (KeyError, IndexError, TypeError):
            raise BackendError(
                f"the server at {client.base_url} lists no model under /models: pass the model id with --model"
            ) from None

    def create(self, settings: BackendSettings) -> OpenAICompatLM:
        fmt = settings.options.get("schema_format", "auto")
        if fmt not in SCHEMA_FORMATS:
            raise BackendError(f"schema_format '{fmt}' is not one of {', '.join(SCHEMA_FORMATS)}")
        client = self.client(settings)
        model = self.served_model(client, settings)
        return OpenAICompatLM(client, model, schema_format=fmt, temperature=settings.temperature,
                              max_tokens=settings.max_tokens, seed=settings.seed)

    def check(self, settings: BackendSettings) -> str:
        client = self.client(settings)
        listing = client.get("models", retries=0, timeout=5.0)
        ids = [m.get("id") for m in (listing.get("data") or []) if isinstance(m, dict)]
        return f"reachable at {client.base_url}; models: {', '.join(map(str, ids)) or 'none listed'}"


@hookimpl
def register_backends(register):
    register(OpenAIBackend)
