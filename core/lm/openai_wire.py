"""The OpenAI chat-completions wire format, shared by the HTTP backends.

`chat_body` writes a `ChatRequest` as a `/chat/completions` body, `completion_of` reads
the answer back (`usage_of` its token counts), and `http_options` validates the
transport options every HTTP backend takes (`timeout`, `max_retries`, `backoff`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pearl.errors import BackendError
from pearl.host.backend import BackendSettings
from pearl.lm.base import ChatRequest, Completion


def http_options(settings: BackendSettings) -> dict[str, Any]:
    """The transport options shared by the HTTP backends, validated.

    The timeout is `settings.timeout` (`--timeout`) when set, else the backend option
    `timeout`, else 120 s.
    """
    opts = settings.options
    try:
        chosen = {
            "timeout": settings.timeout or float(opts.get("timeout", 120.0)),
            "max_retries": int(opts.get("max_retries", 3)),
            "backoff": float(opts.get("backoff", 0.5)),
        }
    except (TypeError, ValueError) as exc:
        raise BackendError(f"bad backend option ({exc}): timeout and backoff are seconds, max_retries a count") from None
    if not 0 < chosen["timeout"] < float("inf") or not 0 <= chosen["backoff"] < float("inf") or chosen["max_retries"] < 0:
        raise BackendError(f"bad backend options timeout={chosen['timeout']}, backoff={chosen['backoff']}, "
                           f"max_retries={chosen['max_retries']}: timeout must be positive seconds, backoff 0 or "
                           f"more seconds, max_retries 0 or more")
    return chosen


def host_of(url: str) -> str | None:
    """The host name of `url` (for the `server.address` of spans)."""
    return urlsplit(url).hostname


def usage_of(body: dict[str, Any]) -> tuple[int, int, int]:
    """(prompt, completion, cached) tokens from an OpenAI-shaped `usage` object."""
    u = body.get("usage") or {}
    details = u.get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens") if isinstance(details, dict) else 0
    return int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0), int(cached or 0)


def chat_body(request: ChatRequest, model: str, schema_format: str = "json_schema") -> dict[str, Any]:
    """The `/chat/completions` body for `request` (`schema_format`: json_object, else json_schema)."""
    body: dict[str, Any] = {"model": model, **request.openai_fields(schema_format)}
    body.update(request.extra)
    return body


def completion_of(body: Any, label: str, url: str) -> Completion:
    """A `Completion` from an OpenAI chat-completion response, or a clear error."""
    try:
        choice = body["choices"][0]
        text = choice["message"].get("content") or ""
    except (KeyError, IndexError, TypeError, AttributeError):
        raise BackendError(
            f"the {label} at {url} answered without choices[0].message (got {str(body)[:160]!r}): "
            f"is it an OpenAI-compatible chat-completions server?"
        ) from None
    prompt, completion, cached = usage_of(body)
    return Completion(text=text, prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached,
                      finish_reason=choice.get("finish_reason"), model=body.get("model"),
                      top_logprobs=first_token_alternatives(choice))


def first_token_alternatives(holder: Any) -> list[tuple[str, float]] | None:
    """The first token's `top_logprobs` under `holder["logprobs"]` (an OpenAI chat choice, or a DSPy LM output
    with `logprobs`), as (token, logprob) pairs; dicts or objects (LiteLLM's); None when there are none."""
    logprobs = holder.get("logprobs") if isinstance(holder, dict) else getattr(holder, "logprobs", None)
    content = _field(logprobs, "content")
    if not content:
        return None
    pairs = [(_field(t, "token"), _field(t, "logprob")) for t in _field(content[0], "top_logprobs") or []]
    return [(str(token or ""), float(lp)) for token, lp in pairs if lp is not None]


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
