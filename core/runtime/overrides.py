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
from typing import Any, NamedTuple

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
        out.append(Override(step.strip(), key.strip(), read_value(value)))
    return out


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
        table[o.param] = o.value
        applied.append(o)
    return applied
