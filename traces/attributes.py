"""What a step's output says on its span: `pearl.*` attributes and evaluation events.

`annotate_step(span, output)` is called by the runner when a step finishes. It maps

- a `RiskAssessment` (anywhere at the top of the output) to `pearl.risk.*` attributes
  and one `gen_ai.evaluation.result` event (name `risk`, score = severity, label = level);
- a `Decision` to `pearl.decision.*` attributes and one event (name `decision`,
  score = the chosen strategy's expected utility, label = the strategy);
- every `Judgement` found anywhere inside the output (fields, lists, dicts, nested
  models: a judge step's verdict, a Lingo-BP history of rounds) to one event each
  (name = the judge, score, label, explanation = the suggestion) and
  `pearl.judgement.<judge>.score` / `.label` attributes holding each judge's last verdict;
- any other output's plain scalar fields (numbers, booleans, `Literal`/`Enum` labels) to
  `pearl.output.<field>`; free text never, unless content capture is on.

Free text a model wrote about the conversation (a risk rationale, a judge's
suggestion) is recorded only when content capture is on (`pearl.traces.content`).

`span_kind_for(output_type)` picks the OpenInference span kind of a step from its
declared output type: GUARDRAIL for risk assessments (and types registered with
`register_span_kind`), EVALUATOR for types that hold judgements, CHAIN otherwise.
New step types need nothing here unless they want a kind or attributes of their own.
"""

from __future__ import annotations

import enum
import types
import typing
from typing import Any, Iterator, Mapping

from pydantic import BaseModel

from pearl.csa import Decision, RiskAssessment
from pearl.judge import Judgement
from pearl.traces import semconv as sc
from pearl.traces.content import capture_content

Event = tuple[str, dict[str, Any]]

_KINDS: dict[type, str] = {RiskAssessment: sc.KIND_GUARDRAIL}


def register_span_kind(output_type: type, kind: str) -> None:
    """Declare the OpenInference span kind of steps whose output is `output_type`."""
    _KINDS[output_type] = kind


def span_kind_for(output_type: type | None) -> str:
    """The OpenInference kind of a step that outputs `output_type`."""
    if isinstance(output_type, type):
        for registered, kind in _KINDS.items():
            if issubclass(output_type, registered):
                return kind
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
    specific = False
    for value in _top_level(output):
        if isinstance(value, RiskAssessment):
            _risk(value, attributes, events)
            specific = True
        elif isinstance(value, Decision):
            _decision(value, attributes, events)
            specific = True
    judgements = list(find_judgements(output))
    for path, judgement in judgements:
        _judgement(path, judgement, attributes, events)
    if judgements:
        attributes[f"{sc.PEARL_JUDGEMENT}.count"] = len(judgements)
    if not specific and not judgements:
        attributes.update(_scalars(output))
    return {k: v for k, v in attributes.items() if v is not None}, events


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


def _risk(r: RiskAssessment, attributes: dict[str, Any], events: list[Event]) -> None:
    p = sc.PEARL_RISK
    attributes.update({
        f"{p}.taxonomy": r.taxonomy,
        f"{p}.category": r.category,
        f"{p}.group": r.group,
        f"{p}.level": r.level,
        f"{p}.interaction": r.interaction,
        f"{p}.attack_form": r.attack_form,
        f"{p}.severity": float(r.severity),
        f"{p}.is_risky": r.is_risky,
        f"{p}.posterior.benign": float(r.posterior.benign),
        f"{p}.posterior.sensitive": float(r.posterior.sensitive),
        f"{p}.posterior.malicious": float(r.posterior.malicious),
        f"{p}.guideline_count": len(r.guideline),
    })
    content = capture_content()
    if content and r.rationale:
        attributes[f"{p}.rationale"] = r.rationale
    events.append(evaluation_event("risk", r.severity, r.level, r.rationale if content else None,
                                   **{f"{p}.category": r.category}))


def _decision(d: Decision, attributes: dict[str, Any], events: list[Event]) -> None:
    p = sc.PEARL_DECISION
    chosen = next((row for row in d.table if row.strategy == d.strategy), None)
    attributes.update({
        f"{p}.strategy": d.strategy,
        f"{p}.admissible": d.admissible,
        f"{p}.reason": d.reason,
        f"{p}.candidates": len(d.table),
        f"{p}.admissible_candidates": sum(1 for row in d.table if row.admissible),
        f"{p}.alpha": float(d.alpha),
        f"{p}.beta": float(d.beta),
        f"{p}.gamma": float(d.gamma),
        f"{p}.tau": float(d.tau),
        f"{p}.epsilon": float(d.epsilon),
    })
    if chosen is not None:
        attributes.update({
            f"{p}.expected_utility": float(chosen.expected_utility),
            f"{p}.expected_retention": float(chosen.expected_retention),
            f"{p}.expected_risk": float(chosen.expected_risk),
            f"{p}.worst_risk": float(chosen.worst_risk),
        })
    events.append(evaluation_event("decision", chosen.expected_utility if chosen else None, d.strategy, d.reason,
                                   **{f"{p}.admissible": d.admissible}))


def _judgement(path: str, j: Judgement, attributes: dict[str, Any], events: list[Event]) -> None:
    prefix = f"{sc.PEARL_JUDGEMENT}.{j.judge}"
    attributes[f"{prefix}.score"] = float(j.score)
    attributes[f"{prefix}.label"] = j.label
    events.append(evaluation_event(j.judge, j.score, j.label, j.suggestion if capture_content() else None,
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
