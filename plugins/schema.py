"""Turning DSPy's `response_format` into a plain JSON schema, for any backend."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


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
