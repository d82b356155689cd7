"""What a step's output says on its span: `pearl.*` attributes and evaluation events.

`annotate_step(span, output)` is called by the runner when a step finishes. Traces know
no step's output type; outputs describe themselves through a small protocol
(`SpanDescribed`), which any pydantic model may implement:

- `span_attributes(self, content: bool) -> dict[str, Any]`: attributes for the step span
  (namespace them, e.g. `pearl.risk.*`; values must be OTel scalars or lists of them;
  None values are dropped). `pearl.step.summary` (`semconv.PEARL_STEP_SUMMARY`) is a
  short line of key values the trace viewer shows beside the step;
- `span_events(self, content: bool) -> list[tuple[str, dict]]` (optional): span events,
  usually one `evaluation_event(...)`;
- `span_kind: ClassVar[str]` (optional): the OpenInference kind of a step that outputs
  this type (`semconv.KIND_GUARDRAIL`, `KIND_EVALUATOR`, ...);
- `span_namespace: ClassVar[str]` (optional): see below.

`content` is the content-capture switch (`pearl.traces.content`, decided here): when it
is False, neither method may return free text the model wrote about the conversation
(a rationale, a suggestion), since it may quote the user.

`describe(output)` walks the output (fields, lists, dicts, nested models) and maps

- every value that implements the protocol, wherever it sits (the output itself, a field,
  a Lingo-BP history's rounds), to its attributes (a later value's override an earlier
  one's: each key keeps the last verdict) and its events. A type that names a
  `span_namespace: ClassVar[str]` also gets `<namespace>.path` on each of its events when
  it sits inside the output (`rounds[2].safety`) and `<namespace>.count` on the span;
- any other output's plain scalar fields (numbers, booleans, `Literal`/`Enum` labels) to
  `pearl.output.<field>`; free text never.

The CSA risk assessment and decision (`pearl.csa`) and the judges' `Judgement`
(`pearl.host.judge`) implement the protocol; traces import none of them.

`span_kind_for(output_type)` picks the OpenInference span kind of a step from its
declared output type: one given with `register_span_kind` (for types one cannot edit),
else the type's own `span_kind`, else the `span_kind` of a type it holds however deep
(a history of judgements is an EVALUATOR step), else CHAIN.
"""

from __future__ import annotations

import enum
import types
import typing
from typing import Any, Iterator, Mapping, Protocol, runtime_checkable

from pydantic import BaseModel

from pearl.traces import semconv as sc
from pearl.traces.content import capture_content

Event = tuple[str, dict[str, Any]]


@runtime_checkable
class SpanDescribed(Protocol):
    """A step output that describes itself on its step's span (see the module docstring).

    `span_attributes` makes a value self-describing; `span_events`, `span_kind` and
    `span_namespace` are read when present.
    """

    def span_attributes(self, content: bool) -> dict[str, Any]:
        """Attributes for the step span: OTel scalars (or lists of them); free text only if `content`."""
        ...


_KINDS: dict[type, str] = {}


def register_span_kind(output_type: type, kind: str) -> None:
    """Declare the OpenInference span kind of steps whose output is `output_type`.

    Prefer a `span_kind` class variable on types you own; this is for the others.
    """
    _KINDS[output_type] = kind


def span_kind_for(output_type: type | None) -> str:
    """The OpenInference kind of a step that outputs `output_type`."""
    if isinstance(output_type, type):
        for registered, kind in _KINDS.items():
            if issubclass(output_type, registered):
                return kind
    return _declared_kind(output_type, set()) or sc.KIND_CHAIN


def _declared_kind(annotation: Any, seen: set) -> str | None:
    if isinstance(annotation, type):
        declared = getattr(annotation, "span_kind", None)
        if isinstance(declared, str):
            return declared
        if issubclass(annotation, BaseModel) and annotation not in seen:
            seen.add(annotation)
            return next(filter(None, (_declared_kind(f.annotation, seen)
                                      for f in annotation.model_fields.values())), None)
        return None
    return next(filter(None, (_declared_kind(arg, seen) for arg in typing.get_args(annotation))), None)


def annotate_step(span, output: BaseModel | None) -> None:
    """Set the attributes and add the events `output` calls for on the step's `span`."""
    if output is None or not span.is_recording():
        return
    attributes, events = describe(output)
    span.set_attributes(attributes)
    for name, event_attributes in events:
        span.add_event(name, event_attributes)


def describe(output: BaseModel, content: bool | None = None) -> tuple[dict[str, Any], list[Event]]:
    """The span attributes and events for one step output (see the module docstring).

    `content` defaults to the content-capture switch (`pearl.traces.content`).
    """
    content = capture_content() if content is None else content
    attributes: dict[str, Any] = {sc.PEARL_STEP_OUTPUT_TYPE: type(output).__name__}
    events: list[Event] = []
    counts: dict[str, int] = {}
    described = False
    for path, value in find_described(output):
        described = True
        attributes.update(value.span_attributes(content))
        namespace = getattr(value, "span_namespace", None)
        if namespace:
            counts[namespace] = counts.get(namespace, 0) + 1
        for name, event_attributes in (value.span_events(content) if hasattr(value, "span_events") else []):
            if namespace and path:
                event_attributes = {**event_attributes, f"{namespace}.path": path}
            events.append((name, {k: v for k, v in event_attributes.items() if v is not None}))
    attributes.update({f"{namespace}.count": n for namespace, n in counts.items()})
    if not described:
        attributes.update(_scalars(output))
    return {k: v for k, v in attributes.items() if v is not None}, events


def find_described(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, SpanDescribed]]:
    """Every self-describing value inside `value` (itself included), with its path
    (`rounds[2].safety`; "" for `value` itself), in field order. A self-describing value's
    own fields are not searched: it describes them."""
    if isinstance(value, SpanDescribed):
        yield _path(path), value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from find_described(getattr(value, name, None), path + (f".{name}",))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from find_described(item, path + (f"[{key!r}]" if not isinstance(key, str) else f".{key}",))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from find_described(item, path + (f"[{i}]",))


def _path(parts: tuple[str, ...]) -> str:
    return "".join(parts).lstrip(".")


def evaluation_event(name: str, score: float | None, label: str | None, explanation: str | None = None,
                     **extra: Any) -> Event:
    """One `gen_ai.evaluation.result` event (None values left out)."""
    attributes = {
        sc.GEN_AI_EVALUATION_NAME: name,
        sc.GEN_AI_EVALUATION_SCORE_VALUE: None if score is None else float(score),
        sc.GEN_AI_EVALUATION_SCORE_LABEL: label,
        sc.GEN_AI_EVALUATION_EXPLANATION: explanation or None,
        **extra,
    }
    return sc.GEN_AI_EVALUATION_RESULT, {k: v for k, v in attributes.items() if v is not None}


def _scalars(output: BaseModel) -> dict[str, Any]:
    """Numbers, booleans and closed-vocabulary labels of `output`'s top-level fields."""
    out: dict[str, Any] = {}
    for name, field in type(output).model_fields.items():
        value = getattr(output, name, None)
        key = f"{sc.PEARL_OUTPUT}.{name}"
        if isinstance(value, bool) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            out[key] = value
        elif isinstance(value, enum.Enum):
            out[key] = str(value.value)
        elif isinstance(value, str) and _is_label(field.annotation):
            out[key] = value
    return out


def _is_label(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return True
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return True
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return bool(args) and all(_is_label(a) for a in args)
    return False
