"""Turning DSPy's `response_format` into a plain JSON schema, for any backend."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

#: The longest string bound sent to llama.cpp's grammar (the embedded backend, and
#: llama-cpp-python's server behind the `openai` backend): its parser rejects a repetition
#: of about 1000 characters or more, and llama-cpp-python then crashes the process.
LLAMA_CPP_MAX_STRING_CHARS = 800


def json_schema_of(response_format: Any) -> dict[str, Any] | None:
    """The JSON schema DSPy asked for, or None for free text / plain JSON mode.

    DSPy's JSONAdapter passes a pydantic model class built from the signature's output
    fields; OpenAI-style dicts (`{"type": "json_schema", "json_schema": {...}}`) are
    accepted too.
    """
    if response_format is None:
        return None
    if isinstance(response_format, type) and issubclass(response_format, BaseModel):
        return response_format.model_json_schema()
    if isinstance(response_format, dict):
        if response_format.get("type") == "json_schema":
            inner = response_format.get("json_schema", {})
            return inner.get("schema", inner)
        if "schema" in response_format:
            return response_format["schema"]
    return None


def wants_json(response_format: Any) -> bool:
    """True when DSPy asked for JSON output, with or without a schema."""
    if response_format is None:
        return False
    if isinstance(response_format, dict):
        return response_format.get("type") in {"json_object", "json_schema"}
    return True


#: Characters a number takes at most when the schema sets no bounds on it.
NUMBER_CHARS = 24


def max_answer_chars(schema: dict[str, Any]) -> int | None:
    """The most characters a JSON answer valid under `schema` can take, or None if unbounded.

    Used to size `max_tokens` for schema-constrained calls so that the grammar always
    reaches the closing brace: a string needs `maxLength` (or `enum`/`const`), an array
    `maxItems`. The separators a grammar admits (a space after `:` and `,`) are counted;
    a string character is counted once, as a token carries at least one.
    """
    defs = {**schema.get("$defs", {}), **schema.get("definitions", {})}

    def size(s: Any, depth: int = 0) -> int | None:
        if depth > 32 or not isinstance(s, dict):
            return None
        if "$ref" in s:
            return size(defs.get(s["$ref"].rsplit("/", 1)[-1]), depth + 1)
        if "const" in s:
            return len(json.dumps(s["const"], ensure_ascii=False))
        if "enum" in s:
            return max((len(json.dumps(v, ensure_ascii=False)) for v in s["enum"]), default=0)
        for key in ("anyOf", "oneOf"):
            if key in s:
                parts = [size(p, depth + 1) for p in s[key]]
                return None if any(p is None for p in parts) else max(parts, default=0)
        kind = s.get("type")
        if isinstance(kind, list):
            parts = [size({**s, "type": k}, depth + 1) for k in kind]
            return None if any(p is None for p in parts) else max(parts, default=0)
        if kind == "string":
            n = s.get("maxLength")
            return None if n is None else 2 + int(n)
        if kind in ("integer", "number"):
            return NUMBER_CHARS
        if kind == "boolean":
            return 5
        if kind == "null":
            return 4
        if kind == "array":
            n, item = s.get("maxItems"), size(s.get("items", {}), depth + 1)
            return None if n is None or item is None else 2 + int(n) * (item + 2)
        if kind == "object":
            props = s.get("properties") or {}
            total = 2
            for name, sub in props.items():
                part = size(sub, depth + 1)
                if part is None:
                    return None
                total += len(json.dumps(name, ensure_ascii=False)) + 2 + part + 2
            return total
        return None

    return size(schema)


#: Characters of free text per token of budget, for sharing a call's budget among free strings.
CHARS_PER_TOKEN = 3
MIN_FREE_CHARS = 32


def bound_free_strings(schema: dict[str, Any], max_tokens: int, max_chars: int | None = None) -> dict[str, Any]:
    """A copy of `schema` whose unbounded strings share `max_tokens` as `maxLength`.

    A reply or a critique declared as a plain `str` has no length bound, so under a
    grammar it can run past `max_tokens` and leave unparseable JSON. Each such string
    (counted `maxItems` times inside an array) gets an equal share of
    `CHARS_PER_TOKEN * max_tokens` characters: typical text then stays near the
    caller's token budget, and `max_answer_chars` of the result is finite wherever
    arrays declare `maxItems`. `max_chars` caps a share (llama.cpp's grammar parser
    rejects repetitions of about 1000 characters or more). Strings with a bound, enums
    and consts are kept as given.
    """
    fitted = json.loads(json.dumps(schema))
    defs = {**fitted.get("$defs", {}), **fitted.get("definitions", {})}
    free: list[dict[str, Any]] = []
    weight = 0
    seen: set[int] = set()

    def walk(s: Any, times: int, depth: int = 0) -> None:
        nonlocal weight
        if depth > 32 or not isinstance(s, dict):
            return
        if "$ref" in s:
            target = defs.get(s["$ref"].rsplit("/", 1)[-1])
            walk(target, times, depth + 1)
            return
        if "const" in s or "enum" in s:
            return
        for key in ("anyOf", "oneOf"):
            for part in s.get(key, []):
                walk(part, times, depth + 1)
        kind = s.get("type")
        kinds = kind if isinstance(kind, list) else [kind]
        if "string" in kinds and "maxLength" not in s:
            if id(s) not in seen:
                seen.add(id(s))
                free.append(s)
            weight += times
        if "array" in kinds:
            walk(s.get("items"), times * int(s.get("maxItems") or 1), depth + 1)
        if "object" in kinds:
            for sub in (s.get("properties") or {}).values():
                walk(sub, times, depth + 1)

    walk(fitted, 1)
    if free:
        share = max(MIN_FREE_CHARS, CHARS_PER_TOKEN * max_tokens // max(1, weight))
        if max_chars is not None:
            share = min(share, max_chars)
        for s in free:
            s["maxLength"] = share
    return fitted
