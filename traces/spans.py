"""The spans Pearlpoint opens, through the OpenTelemetry API only.

The library never installs a tracer provider or exporter (the CLI does, see
`pearl.traces.configure`); with none installed every span here is a no-op. Three
context managers cover a run end to end:

    run_span(...)       `invoke_workflow <pipeline>`  one per pipeline run     (runner)
    step_span(...)      `step <id>`                   one per step            (runner)
    llm_call_span(...)  `chat <model>`, kind CLIENT   one per LM completion   (PearlLM.forward)

and `pearl.traces.hooks` adds one span per plugin hook call. Each manager makes its span
current, so whatever runs inside (in this thread, or in workers started through
`pearl.runtime.concurrency` or `dspy.Parallel`) is its child. An exception leaving a span sets
its status to ERROR with the message, `error.type`, and an `exception` event; Ctrl-C
marks it ERROR "interrupted".

Message content (`input.value`, `output.value`, `gen_ai.input.messages`,
`gen_ai.output.messages`) is added only when `pearl.traces.content.capture_content()`.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import traceback
from contextlib import contextmanager
from typing import Any, Iterator
from urllib.parse import urlsplit

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from pearl.redact import MAX_MESSAGE_CHARS, clean
from pearl.traces import semconv as sc
from pearl.traces.attributes import annotate_step, span_kind_for
from pearl.traces.content import as_json, capture_content

TRACER_NAME = "pearl"
DISTRIBUTION = "pearlpoint"


@functools.cache
def pearl_version() -> str:
    """The installed `pearlpoint` version, read from its metadata (importing the `pearl`
    facade from traces would pull in the runtime above it)."""
    return importlib.metadata.version(DISTRIBUTION)


def tracer() -> trace.Tracer:
    """Pearlpoint's tracer from the current global provider (a no-op until one is set)."""
    return trace.get_tracer(TRACER_NAME, pearl_version())


@contextmanager
def _span(name: str, kind: SpanKind, attributes: dict[str, Any]) -> Iterator[trace.Span]:
    with tracer().start_as_current_span(name, kind=kind, attributes=_clean(attributes), record_exception=False,
                                        set_status_on_exception=False) as span:
        try:
            yield span
        except Exception as exc:
            mark_error(span, exc)
            raise
        except BaseException as exc:  # KeyboardInterrupt, SystemExit: the span still ends, marked
            span.set_status(Status(StatusCode.ERROR, f"interrupted ({exc.__class__.__name__})"))
            span.set_attribute(sc.ERROR_TYPE, exc.__class__.__name__)
            raise


def mark_error(span: trace.Span, exc: BaseException) -> None:
    """Record `exc` on `span`: ERROR status with the message, `error.type`, an exception event.

    The status, the event's message and its stack trace pass through `pearl.redact`
    (known secrets and URL credentials masked, the length bounded).
    """
    if not span.is_recording():
        return
    message = clean(str(exc))
    stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    span.add_event("exception", {
        "exception.type": f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix("builtins."),
        "exception.message": message,
        "exception.stacktrace": clean(stack, 4 * MAX_MESSAGE_CHARS),
        "exception.escaped": "False",
    })
    span.set_status(Status(StatusCode.ERROR, f"{exc.__class__.__name__}: {message}"))
    span.set_attribute(sc.ERROR_TYPE, exc.__class__.__name__)


def _clean(attributes: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attributes.items() if v is not None}


# --- run --------------------------------------------------------------------------------

@contextmanager
def run_span(pipeline: str, run_id: str, conversation: Any = None, *, backend: str | None = None,
             model: str | None = None) -> Iterator[trace.Span]:
    """The root span of one pipeline run; finish it with `record_run(span, result)`."""
    attributes = {
        sc.GEN_AI_OPERATION_NAME: sc.OPERATION_INVOKE_WORKFLOW,
        sc.GEN_AI_WORKFLOW_NAME: pipeline,
        sc.OPENINFERENCE_SPAN_KIND: sc.KIND_CHAIN,
        sc.PEARL_PIPELINE: pipeline,
        sc.PEARL_RUN_ID: run_id,
        sc.PEARL_BACKEND: backend,
        sc.GEN_AI_REQUEST_MODEL: model,
    }
    if conversation is not None and capture_content():
        attributes[sc.INPUT_VALUE] = as_json(conversation)
        attributes[sc.INPUT_MIME_TYPE] = sc.MIME_JSON
    with _span(f"{sc.OPERATION_INVOKE_WORKFLOW} {pipeline}", SpanKind.INTERNAL, attributes) as span:
        yield span


def record_run(span: trace.Span, result: Any) -> None:
    """Totals of a finished run (a `pearl.types.Result`) on its span."""
    if not span.is_recording():
        return
    u = result.usage
    span.set_attributes({
        sc.PEARL_USAGE_CALLS: u.calls,
        sc.GEN_AI_USAGE_INPUT_TOKENS: u.prompt_tokens,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: u.completion_tokens,
        sc.LLM_TOKEN_COUNT_PROMPT: u.prompt_tokens,
        sc.LLM_TOKEN_COUNT_COMPLETION: u.completion_tokens,
        sc.LLM_TOKEN_COUNT_TOTAL: u.prompt_tokens + u.completion_tokens,
    })
    if u.cached_tokens:
        span.set_attribute(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, u.cached_tokens)
    if capture_content():
        span.set_attribute(sc.OUTPUT_VALUE, result.response)
        span.set_attribute(sc.OUTPUT_MIME_TYPE, sc.MIME_TEXT)


# --- step -------------------------------------------------------------------------------

@contextmanager
def step_span(step_id: str, use: str, *, run_id: str | None = None, plugin: str | None = None,
              params: Any = None, output_type: type | None = None,
              inputs: dict[str, Any] | None = None, program: str | None = None) -> Iterator[trace.Span]:
    """The span of one step (`use` is the step plugin's registered name, `plugin` who registered it,
    `program` the compiled state file loaded into it)."""
    attributes = {
        sc.OPENINFERENCE_SPAN_KIND: span_kind_for(output_type),
        sc.PEARL_STEP_ID: step_id,
        sc.PEARL_STEP_USE: use,
        sc.PEARL_STEP_PLUGIN: plugin,
        sc.PEARL_STEP_PROGRAM: program,
        sc.PEARL_RUN_ID: run_id,
        **param_attributes(params),
    }
    if inputs and capture_content():
        attributes[sc.INPUT_VALUE] = as_json(inputs)
        attributes[sc.INPUT_MIME_TYPE] = sc.MIME_JSON
    with _span(f"step {step_id}", SpanKind.INTERNAL, attributes) as span:
        yield span


def record_step(span: trace.Span, output: Any, usage: Any = None) -> None:
    """A finished step's output (see `pearl.traces.attributes`) and usage on its span."""
    if not span.is_recording():
        return
    annotate_step(span, output)
    if usage is not None:
        span.set_attributes({
            sc.PEARL_USAGE_CALLS: usage.calls,
            sc.GEN_AI_USAGE_INPUT_TOKENS: usage.prompt_tokens,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: usage.completion_tokens,
        })
    if output is not None and capture_content():
        span.set_attribute(sc.OUTPUT_VALUE, as_json(output))
        span.set_attribute(sc.OUTPUT_MIME_TYPE, sc.MIME_JSON)


def param_attributes(params: Any) -> dict[str, Any]:
    """A step's parameters as `pearl.host.step.param.<name>` (scalars as they are, the rest as JSON)."""
    if params is None:
        return {}
    values = params.model_dump(mode="json") if hasattr(params, "model_dump") else dict(params)
    out: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        if not isinstance(value, (str, bool, int, float)):
            value = json.dumps(value, ensure_ascii=False, sort_keys=True)
        out[f"{sc.PEARL_STEP_PARAM}.{name}"] = value
    return out


# --- LM call ----------------------------------------------------------------------------

class LLMCall:
    """Handle of an open `chat` span; `finish(completion)` records the response."""

    def __init__(self, span: trace.Span):
        self.span = span

    def finish(self, completion: Any) -> None:
        """Record a `pearl.lm.base.Completion` on the span."""
        span = self.span
        if not span.is_recording():
            return
        prompt, output = completion.prompt_tokens, completion.completion_tokens
        attributes = {
            sc.GEN_AI_RESPONSE_MODEL: completion.model,
            sc.GEN_AI_RESPONSE_FINISH_REASONS: [completion.finish_reason] if completion.finish_reason else None,
            sc.GEN_AI_USAGE_INPUT_TOKENS: prompt,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: output,
            sc.LLM_TOKEN_COUNT_PROMPT: prompt,
            sc.LLM_TOKEN_COUNT_COMPLETION: output,
            sc.LLM_TOKEN_COUNT_TOTAL: prompt + output,
        }
        if completion.cached_tokens:
            attributes[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = completion.cached_tokens
            attributes[sc.LLM_TOKEN_COUNT_CACHE_READ] = completion.cached_tokens
        if capture_content():
            message = {"role": "assistant", "parts": [{"type": "text", "content": completion.text}]}
            if completion.finish_reason:
                message["finish_reason"] = completion.finish_reason
            attributes[sc.GEN_AI_OUTPUT_MESSAGES] = json.dumps([message], ensure_ascii=False)
            attributes[sc.OUTPUT_VALUE] = completion.text
            attributes[sc.OUTPUT_MIME_TYPE] = sc.MIME_TEXT
        span.set_attributes(_clean(attributes))


@contextmanager
def llm_call_span(lm: Any, request: Any) -> Iterator[LLMCall]:
    """The CLIENT span of one chat completion by `lm` (a `PearlLM`) for `request` (a `ChatRequest`)."""
    model = getattr(lm, "model", None) or "unknown"
    structured = request.json_schema is not None or request.json_mode
    attributes: dict[str, Any] = {
        sc.GEN_AI_OPERATION_NAME: sc.OPERATION_CHAT,
        sc.GEN_AI_PROVIDER_NAME: getattr(lm, "provider", None),
        sc.GEN_AI_REQUEST_MODEL: model,
        sc.GEN_AI_REQUEST_TEMPERATURE: float(request.temperature),
        sc.GEN_AI_REQUEST_MAX_TOKENS: int(request.max_tokens),
        sc.GEN_AI_REQUEST_SEED: request.seed,
        sc.GEN_AI_REQUEST_TOP_P: request.top_p,
        sc.GEN_AI_REQUEST_STOP_SEQUENCES: list(request.stop) if request.stop else None,
        sc.GEN_AI_OUTPUT_TYPE: "json" if structured else "text",
        sc.OPENINFERENCE_SPAN_KIND: sc.KIND_LLM,
        sc.LLM_MODEL_NAME: model,
        sc.LLM_PROVIDER: getattr(lm, "provider", None),
        sc.LLM_INVOCATION_PARAMETERS: json.dumps(_clean({
            "temperature": request.temperature, "max_tokens": request.max_tokens, "seed": request.seed,
            "top_p": request.top_p, "stop": request.stop, "json_schema": structured or None,
        })),
        **server_attributes(getattr(lm, "server_address", None)),
    }
    if capture_content():
        attributes[sc.GEN_AI_INPUT_MESSAGES] = json.dumps(
            [_message_parts(m) for m in request.messages], ensure_ascii=False)
        attributes[sc.INPUT_VALUE] = json.dumps(request.messages, ensure_ascii=False, default=str)
        attributes[sc.INPUT_MIME_TYPE] = sc.MIME_JSON
    with _span(f"{sc.OPERATION_CHAT} {model}", SpanKind.CLIENT, attributes) as span:
        yield LLMCall(span)


def _message_parts(message: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI-style message in the GenAI conventions' shape (`role`, `parts`)."""
    content = message.get("content")
    if isinstance(content, list):  # already a list of parts (multimodal)
        parts = [{"type": "text", "content": p.get("text", "")} if isinstance(p, dict) and p.get("type") == "text"
                 else {"type": str(p.get("type", "unknown")) if isinstance(p, dict) else "unknown"} for p in content]
    else:
        parts = [{"type": "text", "content": "" if content is None else str(content)}]
    return {"role": message.get("role", "user"), "parts": parts}


def server_attributes(address: str | None) -> dict[str, Any]:
    """`server.address` / `server.port` from a URL (`http://host:port/v1`) or a bare host[:port]."""
    if not address:
        return {}
    parts = urlsplit(address if "://" in address else f"//{address}")
    out: dict[str, Any] = {sc.SERVER_ADDRESS: parts.hostname or address}
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None and "://" in address:
        port = {"http": 80, "https": 443}.get(parts.scheme)
    if port is not None:
        out[sc.SERVER_PORT] = port
    return out


def trace_headers() -> dict[str, str]:
    """W3C `traceparent` (and `tracestate`) of the current span, for an outgoing HTTP request.

    HTTP backends add these to the requests they send from `complete()`, so a server that
    traces (SGLang, vLLM) joins the run's trace; empty when no span is recording.
    """
    headers: dict[str, str] = {}
    propagate.inject(headers)
    return headers
