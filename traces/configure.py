"""Installing an OpenTelemetry SDK and exporters: for command-line tools only.

The library only emits spans through the API; a program that wants them exported
calls `configure_tracing(spec)` once. Specs (also the value of `PEARL_TRACE`)::

    console          spans printed to stderr as they end (the SDK's ConsoleSpanExporter)
    jsonl:PATH       appended to PATH, one span per line (`pearl.traces.jsonl`)
    otlp:URL         OTLP over HTTP/protobuf to a collector, e.g. otlp:http://127.0.0.1:4318
                     (`/v1/traces` is added to a URL without a path); `otlp` alone uses the
                     OTEL_EXPORTER_OTLP_* environment variables

Several specs may be given (a list, or comma-separated in `PEARL_TRACE`). If the
process already has an SDK `TracerProvider` (its own OpenTelemetry set-up), the
exporters are added to it; otherwise one is created with `service.name=pearlpoint`.

`configure_tracing` returns a `Tracing` handle whose `shutdown()` flushes and detaches
its exporters; it is also registered with `atexit`, so spans reach their destination on
normal exit, on errors and on Ctrl-C. A CLI command uses `tracing_for_command(ctx,
trace, content)`, which also closes the handle when the click context closes.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Iterable, Sequence
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor,
                                            SpanExporter)

from pearl.errors import InputError
from pearl.traces.content import set_capture_content
from pearl.traces.spans import pearl_version

ENV_TRACE = "PEARL_TRACE"
SERVICE_NAME = "pearlpoint"
OTLP_TRACES_PATH = "/v1/traces"
SPEC_HELP = "console | jsonl:PATH | otlp:URL"

_provider_lock = threading.Lock()


class DetachableProcessor(SpanProcessor):
    """Forwards to `inner` until `shutdown()`, then ignores spans (providers cannot drop processors)."""

    def __init__(self, inner: SpanProcessor):
        self._inner: SpanProcessor | None = inner

    def on_start(self, span, parent_context=None) -> None:
        inner = self._inner
        if inner is not None:
            inner.on_start(span, parent_context=parent_context)

    def _on_ending(self, span) -> None:
        inner = self._inner
        if inner is not None:
            inner._on_ending(span)

    def on_end(self, span: ReadableSpan) -> None:
        inner = self._inner
        if inner is not None:
            inner.on_end(span)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        inner = self._inner
        return True if inner is None else inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        inner, self._inner = self._inner, None
        if inner is not None:
            inner.shutdown()


@dataclass
class Tracing:
    """The exporters one `configure_tracing` call installed."""

    specs: list[str]
    provider: TracerProvider
    processors: list[DetachableProcessor] = field(default_factory=list)
    _closed: bool = False

    def flush(self, timeout_millis: int = 30000) -> bool:
        return all(p.force_flush(timeout_millis) for p in self.processors)

    def shutdown(self) -> None:
        """Export what is pending, close the exporters, stop receiving spans (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for p in self.processors:
            p.shutdown()
        atexit.unregister(self.shutdown)


def parse_specs(value: str | Sequence[str] | None) -> list[str]:
    """Specs from a CLI value (a string or list) or `PEARL_TRACE` (comma-separated)."""
    if value is None:
        value = os.environ.get(ENV_TRACE, "")
    items = value.split(",") if isinstance(value, str) else [v for item in value for v in item.split(",")]
    return [item.strip() for item in items if item.strip()]


def make_exporter(spec: str) -> tuple[SpanExporter, bool]:
    """The exporter for one spec, and whether it should be batched (off the calling thread)."""
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "console" and not arg:
        return ConsoleSpanExporter(out=sys.stderr), False
    if kind == "jsonl":
        if not arg.strip():
            raise InputError(f"trace spec '{spec}' has no path: write it as jsonl:PATH, e.g. jsonl:run.jsonl")
        from pearl.traces.jsonl import JsonlSpanExporter

        return JsonlSpanExporter(arg.strip()), True
    if kind == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=otlp_endpoint(arg.strip()) if arg.strip() else None), True
    raise InputError(f"unknown trace destination '{spec}': use one of {SPEC_HELP} (or unset {ENV_TRACE})")


def otlp_endpoint(url: str) -> str:
    """A collector URL as the traces endpoint: `http://host:4318` -> `http://host:4318/v1/traces`."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InputError(f"'{url}' is not an OTLP/HTTP URL: write it as otlp:http://HOST:4318")
    if parts.path in ("", "/"):
        return url.rstrip("/") + OTLP_TRACES_PATH
    return url


def sdk_provider() -> TracerProvider:
    """The global SDK provider, created and installed if the process has none."""
    with _provider_lock:
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            return current
        provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME,
                                                            "service.version": pearl_version()}))
        trace.set_tracer_provider(provider)
        installed = trace.get_tracer_provider()
        if not isinstance(installed, TracerProvider):
            raise InputError("another OpenTelemetry tracer provider (not the SDK's) is installed: "
                             "configure its exporters yourself instead of --trace")
        return installed


def configure_tracing(specs: str | Iterable[str] | None = None, *, content: bool | None = None,
                      provider: TracerProvider | None = None) -> Tracing | None:
    """Export spans to `specs` (default: `PEARL_TRACE`); None when nothing is asked for.

    `content=True` opts in to message content on spans, False opts out, None defers to
    `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`.
    """
    if content is not None:
        set_capture_content(content)
    wanted = parse_specs(specs if specs is None or isinstance(specs, str) else list(specs))
    if not wanted:
        return None
    exporters = [make_exporter(spec) for spec in wanted]  # all specs valid before anything is installed
    provider = provider or sdk_provider()
    handle = Tracing(specs=wanted, provider=provider)
    for exporter, batched in exporters:
        inner = BatchSpanProcessor(exporter) if batched else SimpleSpanProcessor(exporter)
        processor = DetachableProcessor(inner)
        provider.add_span_processor(processor)
        handle.processors.append(processor)
    atexit.register(handle.shutdown)
    return handle


def tracing_for_command(ctx, trace_specs: str | Sequence[str] | None, content: bool = False) -> Tracing | None:
    """For a typer/click command: configure from its `--trace` / `--trace-content` values
    (falling back to `PEARL_TRACE`) and shut the exporters down when the command ends."""
    handle = configure_tracing(trace_specs or None, content=True if content else None)
    if handle is not None and ctx is not None:
        ctx.call_on_close(handle.shutdown)
    return handle
