"""Step-parameter overrides (`--set STEP.PARAM=VALUE`), applied to a pipeline document before it compiles.

`parse_overrides(["refine.schedule=[]"])` gives `[Override("refine", "schedule", [])]`; a
value is read as JSON when it parses (numbers, lists, booleans, quoted strings), else it is
the plain string. `apply_overrides(doc, overrides, host)` sets each on the parsed TOML
document of a pipeline, for the steps the document has (an override naming a step the
pipeline lacks is skipped, so one list fits several pipelines), after checking that the
step's plugin has that parameter; the pipeline's own validation (`compile_spec`) then checks
the value. Overrides go into the document, not onto a compiled step, because a step may
build its programs from its parameters when it is constructed (`anticipate`'s `mode`).
"""

from __future__ import annotations

import json
import math
from typing import Any, NamedTuple, get_args

from pearl.errors import InputError
from pearl.io.jsonl import load_json


class Override(NamedTuple):
    step: str
    param: str
    value: Any

    def __str__(self) -> str:
        return f"{self.step}.{self.param}={json.dumps(self.value)}"


def read_value(text: str) -> Any:
    """`text` read as JSON when it parses, else the string itself."""
    try:
        return load_json(text)
    except json.JSONDecodeError:
        return text


def parse_overrides(items: list[str]) -> list[Override]:
    """`STEP.PARAM=VALUE` strings -> overrides; an `InputError` naming the malformed one."""
    out = []
    for item in items:
        target, eq, value = item.partition("=")
        step, dot, key = target.partition(".")
        if not (eq and dot and step.strip() and key.strip()):
            raise InputError(f"--set {item!r}: write STEP.PARAM=VALUE, e.g. refine.schedule=[]")
        read = read_value(value)
        if not _finite(read):
            raise InputError(f"--set {item!r}: {value.strip()} is not a finite number: give a number such as 0.5")
        out.append(Override(step.strip(), key.strip(), read))
    return out


def _takes_a_number(annotation: Any) -> bool:
    """A parameter typed int or float (optionally None), not bool: true/false would be read as 1/0."""
    kinds = set(get_args(annotation)) or {annotation}
    return bool(kinds & {int, float}) and bool not in kinds


def _finite(value: Any) -> bool:
    """False for NaN and the infinities, read from JSON or written as words (a step would take either as a float)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return value.strip().lower().lstrip("+-") not in ("nan", "inf", "infinity")
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    return True


def apply_overrides(doc: dict, overrides: list[Override], host) -> list[Override]:
    """Set `overrides` on the pipeline document `doc` (in place); return those that applied."""
    steps = doc.get("steps") or {}
    applied = []
    for o in overrides:
        table = steps.get(o.step)
        if not isinstance(table, dict):
            continue
        use = table.get("use")
        if isinstance(use, str) and use in host.registries["steps"]:
            fields = host.get("steps", use).Params.model_fields
            if o.param not in fields:
                raise InputError(f"--set {o.step}.{o.param}: step '{o.step}' has no parameter '{o.param}'; it has "
                                 f"{', '.join(fields) or 'none'}")
            if isinstance(o.value, bool) and _takes_a_number(fields[o.param].annotation):
                raise InputError(f"--set {o}: '{o.param}' takes a number, not true or false")
        table[o.param] = o.value
        applied.append(o)
    return applied
