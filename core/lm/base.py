"""`PearlLM`: the base class of the built-in backends' LMs (any `dspy.BaseLM` works as a backend).

DSPy calls `forward(prompt, messages, **kwargs)`. `PearlLM` splits that into two halves:
`plan(...)` turns the call into a backend-neutral `ChatRequest` (messages, sampling
settings, the JSON schema DSPy asked for) fitted to its budget, and `send(request)`
calls the subclass's `complete(request)` and returns the OpenAI-shaped response DSPy
reads. Usage accounting, timing and the `chat <model>` span are not done here: the
runtime wraps every role's LM in `pearl.lm.metered.MeteredLM`, which does them for any
`dspy.BaseLM` (and, for a `PearlLM`, traces the planned request exactly as it is sent).

A schema-constrained call is fitted to its budget (`fit_to_budget`): free strings get a
`maxLength`, `max_tokens` covers the longest valid answer, so decoding never stops
mid-JSON.

Contract for subclasses: implement `complete(request) -> Completion` (called from any
thread; concurrent calls must be safe or serialised by the subclass); raise
`pearl.errors.BackendError` (or `InputError` for a prompt that cannot fit) with advice.
Set `provider` (the GenAI provider name for spans) and, for HTTP backends,
`server_address`; send `pearl.lm.http.trace_headers()` with requests so a tracing
server joins the run's trace. Override `fit` when the backend learns its limits from
the server.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any

import dspy

from pearl.lm.schema import bound_free_strings, json_schema_of, max_answer_chars, wants_json

# DSPy 3.4 still supports (and warns about) BaseLM.forward subclasses; pyproject pins <3.5.
warnings.filterwarnings("ignore", message="Implementing custom LMs through BaseLM", category=DeprecationWarning)
warnings.filterwarnings("ignore", message="Passing OpenAI-style message dictionaries", category=DeprecationWarning)


@dataclass
class ChatRequest:
    """One chat completion, as every backend sees it."""

    messages: list[dict[str, Any]]
    temperature: float = 0.0
    max_tokens: int = 512
    seed: int | None = None
    stop: list[str] | None = None
    top_p: float | None = None
    json_schema: dict[str, Any] | None = None
    json_mode: bool = False
    #: Ask for the `top_logprobs` most likely first tokens and their log-probabilities (`Completion.top_logprobs`).
    top_logprobs: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def openai_fields(self, schema_format: str = "json_schema") -> dict[str, Any]:
        """The OpenAI chat-completion arguments of this request (without `model` and `extra`).

        `schema_format` picks how a JSON schema is sent: "json_schema" (OpenAI's
        `{"type": "json_schema", "json_schema": {...}}`) or "json_object" (llama.cpp's
        `{"type": "json_object", "schema": {...}}`).
        """
        fields: dict[str, Any] = {"messages": self.messages, "temperature": self.temperature,
                                  "max_tokens": self.max_tokens}
        if self.seed is not None:
            fields["seed"] = self.seed
        if self.stop:
            fields["stop"] = self.stop
        if self.top_p is not None:
            fields["top_p"] = self.top_p
        if self.top_logprobs:
            fields["logprobs"], fields["top_logprobs"] = True, self.top_logprobs
        if self.json_schema is not None:
            if schema_format == "json_object":
                fields["response_format"] = {"type": "json_object", "schema": self.json_schema}
            else:
                fields["response_format"] = {"type": "json_schema",
                                             "json_schema": {"name": "output", "schema": self.json_schema}}
        elif self.json_mode:
            fields["response_format"] = {"type": "json_object"}
        return fields


@dataclass
class Completion:
    """What a backend returns for one request."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    finish_reason: str | None = None
    model: str | None = None
    #: For a request with `top_logprobs`: the first generated token's most likely alternatives, as
    #: (token text, natural log-probability), most likely first.
    top_logprobs: list[tuple[str, float]] | None = None


class PearlLM(dspy.BaseLM):
    """Base of the backends' LMs (see the module docstring)."""

    provider: str = "unknown"
    server_address: str | None = None
    #: The longest string bound the backend's grammar engine accepts (None: no limit).
    max_string_chars: int | None = None

    def __init__(self, model: str, *, temperature: float = 0.0, max_tokens: int = 512, seed: int | None = 0):
        super().__init__(model=model, model_type="chat", temperature=temperature, max_tokens=max_tokens,
                         cache=False, num_retries=0)
        self.seed = seed

    @property
    def supports_response_schema(self) -> bool:
        return True

    @property
    def supported_params(self) -> set[str]:
        return {"response_format", "temperature", "max_tokens", "seed", "stop", "top_p", "logprobs", "top_logprobs"}

    def complete(self, request: ChatRequest) -> Completion:
        raise NotImplementedError

    def build_request(self, prompt=None, messages=None, **kwargs) -> ChatRequest:
        """The call as a `ChatRequest`: this LM's `kwargs` overridden by the call's."""
        return chat_request(prompt, messages, {**self.kwargs, **kwargs}, default_seed=self.seed)

    def fit(self, request: ChatRequest) -> ChatRequest:
        """`request` with its schema fitted to its budget (`fit_to_budget`, capped at
        `max_string_chars`); subclasses that learn their limits from the server override it."""
        if request.json_schema is None:
            return request
        schema, max_tokens = fit_to_budget(request.json_schema, request.max_tokens, self.max_string_chars)
        return replace(request, json_schema=schema, max_tokens=max_tokens)

    def plan(self, prompt=None, messages=None, **kwargs) -> ChatRequest:
        """The request a call with these arguments sends: built, then fitted to its budget."""
        return self.fit(self.build_request(prompt, messages, **kwargs))

    def send(self, request: ChatRequest) -> SimpleNamespace:
        """`complete(request)` as the OpenAI-shaped response DSPy reads."""
        return as_openai_response(self.complete(request), self.model)

    def forward(self, prompt=None, messages=None, **kwargs):
        return self.send(self.plan(prompt, messages, **kwargs))


def chat_request(prompt: str | None, messages: list[dict[str, Any]] | None, merged: dict[str, Any], *,
                 default_seed: int | None = None) -> ChatRequest:
    """A DSPy LM call (`prompt` or `messages`, and the merged LM + call `kwargs`) as a `ChatRequest`."""
    if messages is None:
        messages = [{"role": "user", "content": prompt or ""}]
    response_format = merged.get("response_format")
    stop = merged.get("stop")
    return ChatRequest(
        messages=list(messages),
        temperature=float(merged.get("temperature") or 0.0),
        max_tokens=int(merged.get("max_tokens") or merged.get("max_completion_tokens") or 512),
        seed=merged.get("seed", default_seed),
        stop=[stop] if isinstance(stop, str) else stop,
        top_p=merged.get("top_p"),
        top_logprobs=int(merged.get("top_logprobs") or 0) or None if merged.get("logprobs") else None,
        json_schema=json_schema_of(response_format),
        json_mode=wants_json(response_format),
        extra=dict(merged.get("extra_body") or {}),  # server-specific fields, e.g. SGLang's regex/ebnf
    )


def fit_to_budget(schema: dict[str, Any] | None, max_tokens: int,
                  max_string_chars: int | None = None) -> tuple[dict[str, Any] | None, int]:
    """The schema and `max_tokens` a schema-constrained call is sent with.

    A JSON answer cut off at `max_tokens` cannot be parsed. So free strings get a share
    of the budget as `maxLength` (`bound_free_strings`), and `max_tokens` is raised to
    the schema's longest valid answer (`max_answer_chars`: a token carries at least one
    character): the grammar always reaches the closing brace. Free-text calls, and
    schemas with an unbounded array, keep `max_tokens` as given. `max_string_chars`
    caps each free string's share, for grammar engines that refuse long repetitions.
    """
    if schema is None:
        return None, max_tokens
    fitted = bound_free_strings(schema, max_tokens, max_string_chars)
    bound = max_answer_chars(fitted)
    return fitted, max_tokens if bound is None else max(max_tokens, bound)


def as_openai_response(c: Completion, model: str) -> SimpleNamespace:
    """A `Completion` in the OpenAI chat-completion shape DSPy reads."""
    return SimpleNamespace(
        id=None,
        model=c.model or model,
        choices=[SimpleNamespace(index=0, message=SimpleNamespace(role="assistant", content=c.text),
                                 finish_reason=c.finish_reason, logprobs=logprobs_of(c))],
        usage={"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
               "total_tokens": c.prompt_tokens + c.completion_tokens,
               "prompt_tokens_details": {"cached_tokens": c.cached_tokens}},
    )


def logprobs_of(c: Completion) -> dict[str, Any] | None:
    """`c.top_logprobs` in the OpenAI chat shape (`{"content": [{token, logprob, top_logprobs}]}`), or None."""
    if c.top_logprobs is None:
        return None
    top = [{"token": t, "logprob": lp} for t, lp in c.top_logprobs]
    first = top[0] if top else {"token": "", "logprob": 0.0}
    return {"content": [{**first, "top_logprobs": top}]}
