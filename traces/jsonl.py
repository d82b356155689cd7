"""The JSONL trace format: one finished span per line, written and read back.

`JsonlSpanExporter(path)` is an OpenTelemetry SDK `SpanExporter` that appends each span
as one JSON object to `path` (so one file can collect many runs); `read_spans(path)`
reads such a file back into `SpanRecord`s (`read_trace` also reports a torn last line, as
a killed run leaves: the whole spans before it are read). A line::

    {"trace_id": "32 hex", "span_id": "16 hex", "parent_span_id": "16 hex" | null,
     "name": "step screen", "kind": "INTERNAL" | "CLIENT" | "SERVER" | "PRODUCER" | "CONSUMER",
     "start_time_unix_nano": int, "end_time_unix_nano": int, "duration_ms": float,
     "status": {"code": "UNSET" | "OK" | "ERROR", "description": str | null},
     "attributes": {...}, "events": [{"name": str, "time_unix_nano": int, "attributes": {...}}],
     "links": [{"trace_id": ..., "span_id": ..., "attributes": {...}}],
     "resource": {...}, "scope": {"name": "pearl", "version": "0.1.0"}}

Attribute values are JSON strings, numbers, booleans or arrays of them, as in OTel.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from pydantic import BaseModel, Field, ValidationError

from pearl.errors import InputError

try:  # the SDK is a dependency of the CLI's tracing, not of the instrumented library
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
except ImportError:  # pragma: no cover
    SpanExporter = object  # type: ignore[misc,assignment]


def _hex(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def span_to_dict(span: "ReadableSpan") -> dict[str, Any]:
    """One SDK span as the JSON object of one line (the format in the module docstring)."""
    ctx = span.context
    start, end = span.start_time or 0, span.end_time or 0
    scope = span.instrumentation_scope
    return {
        "trace_id": _hex(ctx.trace_id, 32),
        "span_id": _hex(ctx.span_id, 16),
        "parent_span_id": _hex(span.parent.span_id, 16) if span.parent is not None else None,
        "name": span.name,
        "kind": span.kind.name,
        "start_time_unix_nano": start,
        "end_time_unix_nano": end,
        "duration_ms": round((end - start) / 1e6, 3),
        "status": {"code": span.status.status_code.name, "description": span.status.description},
        "attributes": _attrs(span.attributes),
        "events": [{"name": e.name, "time_unix_nano": e.timestamp, "attributes": _attrs(e.attributes)}
                   for e in span.events],
        "links": [{"trace_id": _hex(link.context.trace_id, 32), "span_id": _hex(link.context.span_id, 16),
                   "attributes": _attrs(link.attributes)} for link in span.links],
        "resource": _attrs(span.resource.attributes) if span.resource is not None else {},
        "scope": {"name": scope.name, "version": scope.version} if scope is not None else None,
    }


def _attrs(attributes) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in (attributes or {}).items()}


def _check_appendable(path: Path) -> None:
    """Refuse to append spans to a file that holds something else (a conversation, results, notes)."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    try:
        next(iter_spans(path), None)
    except InputError:
        raise InputError(f"--trace jsonl:{path}: the file exists and is not a Pearlpoint trace (its first line is "
                         f"not a span): name a new file, or a trace file to add these spans to") from None


class JsonlSpanExporter(SpanExporter):
    """Appends finished spans to a JSONL file, one span per line (thread-safe)."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        _check_appendable(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise InputError(
                f"cannot write the trace file '{path}' ({exc.strerror or exc}): choose a writable path for --trace jsonl:PATH"
            ) from None
        self._lock = threading.Lock()
        self._closed = False

    def export(self, spans: Sequence["ReadableSpan"]) -> "SpanExportResult":
        lines = "".join(json.dumps(span_to_dict(s), ensure_ascii=False, default=str) + "\n" for s in spans)
        with self._lock:
            if self._closed:
                return SpanExportResult.FAILURE
            self._file.write(lines)
            self._file.flush()
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        with self._lock:
            if not self._closed:
                self._file.flush()
        return True

    def shutdown(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._file.close()


# --- reading ----------------------------------------------------------------------------

class SpanStatus(BaseModel):
    code: str = "UNSET"
    description: str | None = None


class SpanEvent(BaseModel):
    name: str
    time_unix_nano: int = 0
    attributes: dict[str, Any] = Field(default_factory=dict)


class SpanRecord(BaseModel):
    """One line of a JSONL trace file."""

    trace_id: str
    span_id: str
    parent_span_id: str | None = None
    name: str
    kind: str = "INTERNAL"
    start_time_unix_nano: int
    end_time_unix_nano: int
    duration_ms: float = 0.0
    status: SpanStatus = Field(default_factory=SpanStatus)
    attributes: dict[str, Any] = Field(default_factory=dict)
    events: list[SpanEvent] = Field(default_factory=list)
    links: list[dict[str, Any]] = Field(default_factory=list)
    resource: dict[str, Any] = Field(default_factory=dict)
    scope: dict[str, Any] | None = None

    @property
    def seconds(self) -> float:
        return max(0, self.end_time_unix_nano - self.start_time_unix_nano) / 1e9

    @property
    def is_error(self) -> bool:
        return self.status.code == "ERROR"


@dataclass(frozen=True)
class TornTail:
    """A last line cut short (no newline at its end, not a whole span): what a killed run leaves."""

    line: int
    size: int  # bytes

    def describe(self, path: str | Path) -> str:
        return (f"{path}: line {self.line} is cut off ({self.size} bytes, no newline at the end: the run that wrote "
                f"it was stopped mid-write); it was skipped, the spans before it are shown")


def iter_spans(path: str | Path, *, on_torn_tail: Callable[[TornTail], None] | None = None) -> Iterator[SpanRecord]:
    """The spans of a JSONL trace file, in file order.

    A malformed line is an `InputError`, except a torn last line (`TornTail`: no newline
    at its end, and not a whole span), which is skipped and passed to `on_torn_tail`.
    """
    p = Path(path).expanduser()
    if p.is_dir():
        raise InputError(f"trace file '{path}' is a folder: pass a file written by --trace jsonl:PATH")
    if not p.is_file():
        raise InputError(f"trace file '{path}' does not exist: write one with `pearl run --trace jsonl:{path} ...`")
    with p.open("rb") as f:  # decoded line by line: a line that is not UTF-8 is named, not a traceback
        for number, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            torn = not raw.endswith(b"\n")  # only the last line of a file can lack its newline
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                if torn:  # a torn last line may end inside a character: it fails below as JSON
                    line = raw.decode("utf-8", "replace")
                else:
                    raise InputError(
                        f"{path}, line {number} is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at byte "
                        f"{exc.start + 1}): pass a file written by --trace jsonl:PATH") from None
            try:
                record = SpanRecord.model_validate_json(line)
            except ValidationError as exc:
                if torn:
                    if on_torn_tail is not None:
                        on_torn_tail(TornTail(line=number, size=len(raw)))
                    return
                first = exc.errors()[0]
                where = ".".join(str(x) for x in first.get("loc", ())) or "line"
                raise InputError(
                    f"{path}, line {number} is not a Pearlpoint span ({where}: {first.get('msg')}): "
                    f"pass a file written by --trace jsonl:PATH"
                ) from None
            yield record


def read_trace(path: str | Path) -> tuple[list[SpanRecord], TornTail | None]:
    """All whole spans of a JSONL trace file, and its torn last line if it has one."""
    torn: list[TornTail] = []
    spans = list(iter_spans(path, on_torn_tail=torn.append))
    return spans, (torn[0] if torn else None)


def read_spans(path: str | Path) -> list[SpanRecord]:
    """All whole spans of a JSONL trace file (a torn last line is skipped; `read_trace` reports it)."""
    return read_trace(path)[0]
