"""What a step's output says on its span: `pearl.*` attributes and evaluation events.

`annotate_step(span, output)` is called by the runner when a step finishes. Traces know
no step's output type; outputs describe themselves through a small protocol
(`SpanDescribed`), which any pydantic model may implement:

- `span_attributes(self, content: bool) -> dict[str, Any]`: attributes for the step span
  (namespace them, e.g. `pearl.risk.*`; values must be OTel scalars or lists of them;
  None values are dropped);
  `pearl.step.summary` (`semconv.PEARL_STEP_SUMMARY`) is a short line of key values the
  trace viewer shows beside the step;
- `span_events(self, content: bool) -> list[tuple[str, dict]]` (optional): span events,
  usually one `evaluation_event(...)`;
- `span_kind: ClassVar[str]` (optional): the OpenInference kind of a step that outputs
  this type (`semconv.KIND_GUARDRAIL`, `KIND_EVALUATOR`, ...).

`content` is the content-capture switch (`pearl.traces.content`, decided here): when it
is False, neither method may return free text the model wrote about the conversation
(a rationale, a suggestion), since it may quote the user.

`describe(output)` then maps

- the output itself and each of its top-level fields that implement the protocol to
  their attributes and events (the CSA risk assessment and decision do, in `pearl.csa`);
- every `Judgement` (the kernel's judge verdict) found anywhere inside the output
  (fields, lists, dicts, nested models: a judge step's verdict, a Lingo-BP history of
  rounds) to one event each (name = the judge, score, label, explanation = the
  suggestion) and `pearl.judgement.<judge>.score` / `.label` attributes holding each
  judge's last verdict;
- any other output's plain scalar fields (numbers, booleans, `Literal`/`Enum` labels) to
  `pearl.output.<field>`; free text never.

`span_kind_for(output_type)` picks the OpenInference span kind of a step from its
declared output type: the type's `span_kind` (or one given with `register_span_kind`,
for types one cannot edit), EVALUATOR for types that hold judgements, CHAIN otherwise.
"""

from __future__ import annotations

import enum
import types
import typing
from typing import Any, Iterator, Mapping, Protocol, runtime_checkable

from pydantic import BaseModel

from pearl.host.judge import Judgement
from pearl.traces import semconv as sc
from pearl.traces.content import capture_content

Event = tuple[str, dict[str, Any]]


@runtime_checkable
class SpanDescribed(Protocol):
    """A step output that describes itself on its step's span (see the module docstring).

    `span_attributes` makes a value self-describing; `span_events` and a `span_kind`
    class variable are read when present.
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
        declared = getattr(output_type, "span_kind", None)
        if isinstance(declared, str):
            return declared
        if _holds_judgements(output_type, set()):
            return sc.KIND_EVALUATOR
    return sc.KIND_CHAIN


def _holds_judgements(annotation: Any, seen: set) -> bool:
    if isinstance(annotation, type):
        if issubclass(annotation, Judgement):
            return True
        if issubclass(annotation, BaseModel):
            if annotation in seen:
                return False
            seen.add(annotation)
            return any(_holds_judgements(f.annotation, seen) for f in annotation.model_fields.values())
        return False
    return any(_holds_judgements(arg, seen) for arg in typing.get_args(annotation))


def annotate_step(span, output: BaseModel | None) -> None:
    """Set the attributes and add the events `output` calls for on the step's `span`."""
    if output is None or not span.is_recording():
        return
    attributes, events = describe(output)
    span.set_attributes(attributes)
    for name, event_attributes in events:
        span.add_event(name, event_attributes)


def describe(output: BaseModel) -> tuple[dict[str, Any], list[Event]]:
    """The span attributes and events for one step output (see the module docstring)."""
    attributes: dict[str, Any] = {sc.PEARL_STEP_OUTPUT_TYPE: type(output).__name__}
    events: list[Event] = []
    content = capture_content()
    specific = False
    for value in _top_level(output):
        if isinstance(value, SpanDescribed):
            _self_described(value, content, attributes, events)
            specific = True
    judgements = list(find_judgements(output))
    for path, judgement in judgements:
        _judgement(path, judgement, content, attributes, events)
    if judgements:
        attributes[f"{sc.PEARL_JUDGEMENT}.count"] = len(judgements)
    if not specific and not judgements:
        attributes.update(_scalars(output))
    return {k: v for k, v in attributes.items() if v is not None}, events


def _self_described(value: SpanDescribed, content: bool, attributes: dict[str, Any], events: list[Event]) -> None:
    attributes.update(value.span_attributes(content))
    if callable(getattr(value, "span_events", None)):
        events.extend((name, {k: v for k, v in a.items() if v is not None})
                      for name, a in value.span_events(content))


def _top_level(output: BaseModel) -> Iterator[Any]:
    yield output
    for name in type(output).model_fields:
        yield getattr(output, name, None)


def find_judgements(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Judgement]]:
    """Every `Judgement` inside `value`, with its path (`rounds[2].safety`), in field order."""
    if isinstance(value, Judgement):
        yield _path(path), value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from find_judgements(getattr(value, name, None), path + (f".{name}",))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from find_judgements(item, path + (f"[{key!r}]" if not isinstance(key, str) else f".{key}",))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from find_judgements(item, path + (f"[{i}]",))


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


def _judgement(path: str, j: Judgement, content: bool, attributes: dict[str, Any], events: list[Event]) -> None:
    prefix = f"{sc.PEARL_JUDGEMENT}.{j.judge}"
    attributes[f"{prefix}.score"] = float(j.score)
    attributes[f"{prefix}.label"] = j.label
    events.append(evaluation_event(j.judge, j.score, j.label, j.suggestion if content else None,
                                   **({f"{sc.PEARL_JUDGEMENT}.path": path} if path else {})))


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
