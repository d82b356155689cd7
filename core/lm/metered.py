"""`MeteredLM`: usage accounting, timing and the `chat <model>` span for any `dspy.BaseLM`.

The runtime wraps every role's LM once (`instrument`: `pearl.runtime.session.make_lm`
and `pearl.runtime.runner.Runner` do it), so a backend may return any `dspy.BaseLM`:
a `pearl.lm.base.PearlLM`, a plain `dspy.LM` (LiteLLM and every hosted provider it
reaches, or DSPy's native engines), or a third party's own class. Steps, judges,
usage budgets and the traces then see the same numbers whichever it is.

How it works. DSPy calls the wrapper like any LM (`lm(messages=..., **kwargs)`), and
`dspy.BaseLM.__call__` hands the call to `MeteredLM.forward`, which, in the calling
thread and inside its OpenTelemetry and `pearl.lm.usage` contexts:

1. opens the `chat <model>` CLIENT span (`pearl.traces.spans.llm_call_span`),
2. calls the inner LM's `forward` (a `PearlLM`: `plan` then `send`, so the span shows
   the request exactly as sent, schema fitting included),
3. reads the OpenAI-shaped response's `usage` (`prompt_tokens`, `completion_tokens`,
   `prompt_tokens_details.cached_tokens`; the Responses API's `input_tokens` /
   `output_tokens` too) and records it, with the call's wall time, in every open
   `pearl.lm.usage.meter()`, and
4. finishes the span with the response.

Being per call and in the caller's own context, the accounting is exact under threads
(`pearl.runtime.concurrency`, `dspy.Parallel`, the runner's step workers): each call is
counted by exactly the meters open where it was made. A response served from DSPy's
cache (`cache_hit`) made no model call: it gets a span but no usage. A call that raises
is counted nowhere and its span is marked as an error.

Everything else is the inner LM's: `model`, `kwargs` (the same dict), `history` (DSPy
records each call there, once), `callbacks`, `supports_response_schema` and the other
capability flags, `dump_state`, and any public attribute (`n_ctx`, `count_tokens`,
`seed`, ...). `copy(**kw)` copies the inner LM and wraps the copy, so `call_program`'s
retry with another temperature stays metered. DSPy's usage tracker (`dspy.track_usage`)
sees each call once, as it would without the wrapper.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import dspy

from pearl.errors import BackendError
from pearl.lm import usage
from pearl.lm.base import ChatRequest, Completion, PearlLM, chat_request
from pearl.traces.spans import llm_call_span

#: Span attribute set on the `chat` span of a response DSPy served from its cache.
CACHE_HIT_ATTRIBUTE = "pearl.lm.cache_hit"


class MeteredLM(dspy.BaseLM):
    """A `dspy.BaseLM` that meters and traces every call of the LM it wraps (see the module docstring)."""

    def __init__(self, inner: dspy.BaseLM):
        if isinstance(inner, MeteredLM):
            inner = inner.inner
        if not isinstance(inner, dspy.BaseLM):
            raise TypeError(f"MeteredLM wraps a dspy.BaseLM, not {type(inner).__name__}")
        # BaseLM.__init__ is not called: model, model_type, kwargs and callbacks belong to `inner`.
        self.__dict__["inner"] = inner
        self.cache = False  # the inner LM caches, if it does
        self.num_retries = 0  # the inner LM retries, if it does
        self._warned_zero_temp_rollout = False

    # --- the inner LM's identity and settings -------------------------------------------------
    @property
    def model(self) -> str:
        return self.inner.model

    @property
    def model_type(self) -> str:
        return getattr(self.inner, "model_type", "chat")

    @property
    def kwargs(self) -> dict[str, Any]:
        return self.inner.kwargs

    @kwargs.setter
    def kwargs(self, value: dict[str, Any]) -> None:
        self.inner.kwargs = value

    @property
    def history(self) -> list:
        """The inner LM's history: DSPy records each call there (`lm.inspect_history()` works on either)."""
        return self.inner.history

    @history.setter
    def history(self, value: list) -> None:
        self.inner.history = value

    @property
    def callbacks(self) -> list:
        return getattr(self.inner, "callbacks", [])

    @callbacks.setter
    def callbacks(self, value: list) -> None:
        self.inner.callbacks = value

    @property
    def supports_function_calling(self) -> bool:
        return self.inner.supports_function_calling

    @property
    def supports_reasoning(self) -> bool:
        return self.inner.supports_reasoning

    @property
    def supports_response_schema(self) -> bool:
        return self.inner.supports_response_schema

    @property
    def supported_params(self) -> set[str]:
        return self.inner.supported_params

    def __getattr__(self, name: str) -> Any:
        # Only called for names the wrapper lacks. Private and dunder names are not proxied:
        # DSPy probes private ones (`_engine_spec`) to choose how to run an LM, and copy/pickle
        # probe dunders on a half-built object.
        inner = self.__dict__.get("inner")
        if inner is None or name.startswith("_"):
            raise AttributeError(name)
        return getattr(inner, name)

    def __repr__(self) -> str:
        return f"MeteredLM({self.inner!r})"

    def copy(self, **kwargs: Any) -> "MeteredLM":
        """The inner LM's `copy(**kwargs)`, wrapped."""
        return MeteredLM(self.inner.copy(**kwargs))

    def dump_state(self) -> dict[str, Any]:
        return self.inner.dump_state()

    # --- calls ------------------------------------------------------------------------------
    def forward(self, prompt=None, messages=None, **kwargs):
        inner = self.inner
        with _CallSpan(inner, self._request(prompt, messages, kwargs)) as (request, finish):
            t0 = time.perf_counter()
            if isinstance(inner, PearlLM):
                response = inner.send(request)
            else:
                response = inner.forward(prompt=prompt, messages=messages, **kwargs)
            finish(response, time.perf_counter() - t0)
        return response

    async def aforward(self, prompt=None, messages=None, **kwargs):
        inner = self.inner
        with _CallSpan(inner, self._request(prompt, messages, kwargs)) as (request, finish):
            t0 = time.perf_counter()
            if isinstance(inner, PearlLM):
                response = await asyncio.to_thread(inner.send, request)
            else:
                response = await inner.aforward(prompt=prompt, messages=messages, **kwargs)
            finish(response, time.perf_counter() - t0)
        return response

    def _request(self, prompt, messages, kwargs) -> ChatRequest:
        """The request as the span shows it: a `PearlLM`'s own plan, else read from the call."""
        inner = self.inner
        if isinstance(inner, PearlLM):
            return inner.plan(prompt, messages, **kwargs)
        return chat_request(prompt, messages, {**inner.kwargs, **kwargs})


class _CallSpan:
    """The `chat` span of one call, yielding `(request, finish(response, seconds))`."""

    def __init__(self, inner: dspy.BaseLM, request: ChatRequest):
        self._manager = llm_call_span(describe(inner), request)
        self._request = request
        self._model = inner.model

    def __enter__(self):
        call = self._manager.__enter__()

        def finish(response: Any, seconds: float) -> None:
            completion = completion_of(response, self._model)
            if _get(response, "cache_hit"):
                call.span.set_attribute(CACHE_HIT_ATTRIBUTE, True)
            else:
                usage.record(completion.prompt_tokens, completion.completion_tokens, completion.cached_tokens,
                             seconds)
            call.finish(completion)

        return self._request, finish

    def __exit__(self, *exc_info):
        return self._manager.__exit__(*exc_info)


def instrument(lm: Any) -> MeteredLM:
    """`lm` wrapped in one `MeteredLM` (an already wrapped LM is returned as it is)."""
    if isinstance(lm, MeteredLM):
        return lm
    if not isinstance(lm, dspy.BaseLM):
        raise BackendError(f"a backend returned {type(lm).__name__}, not a dspy.BaseLM: "
                           f"Backend.create must return a dspy.BaseLM (for example a dspy.LM or a PearlLM)")
    return MeteredLM(lm)


def describe(lm: Any) -> SimpleNamespace:
    """What the `chat` span names about `lm`: `model`, `provider`, `server_address`.

    A `PearlLM` says so itself; for any other LM the provider is the model's prefix
    (`openai/gpt-4o` -> `openai`) and the server its `api_base` / `base_url`, if set.
    """
    model = getattr(lm, "model", None) or "unknown"
    provider = getattr(lm, "provider", None)
    if not isinstance(provider, str):
        provider = model.split("/", 1)[0] if "/" in model else None
    server = getattr(lm, "server_address", None)
    if not isinstance(server, str):
        kwargs = getattr(lm, "kwargs", None) or {}
        server = kwargs.get("api_base") or kwargs.get("base_url")
    return SimpleNamespace(model=model, provider=provider, server_address=server if isinstance(server, str) else None)


def completion_of(response: Any, model: str | None = None) -> Completion:
    """A `Completion` read from an OpenAI-shaped response (dict or object; chat or Responses API).

    Missing counts read as 0: a server that reports no usage is metered as calls only.
    """
    choices = _get(response, "choices") or []
    first = choices[0] if choices else None
    message = _get(first, "message")
    text = _get(message, "content") if message is not None else _get(first, "text")
    u = _get(response, "usage") or {}
    details = _get(u, "prompt_tokens_details") or _get(u, "input_tokens_details") or {}
    return Completion(
        text=text if isinstance(text, str) else "",
        prompt_tokens=_count(_get(u, "prompt_tokens"), _get(u, "input_tokens")),
        completion_tokens=_count(_get(u, "completion_tokens"), _get(u, "output_tokens")),
        cached_tokens=_count(_get(details, "cached_tokens")),
        finish_reason=_get(first, "finish_reason"),
        model=_get(response, "model") or model,
    )


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _count(*values: Any) -> int:
    for value in values:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return int(value)
    return 0
