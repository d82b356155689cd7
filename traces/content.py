"""Whether spans may carry message content (prompts, responses, chains, rationales).

Off by default: traces often leave the machine, and conversations are the users'.
It is on when the process opted in, with `set_capture_content(True)` (what the CLI's
`--trace-content` does) or with the environment variable
`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`, the name OpenTelemetry's
GenAI instrumentations use. An explicit `set_capture_content(...)` wins over the
environment; `set_capture_content(None)` returns to it.
"""

from __future__ import annotations

import json
import os
from typing import Any

ENV_CAPTURE_CONTENT = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_TRUE = {"1", "true", "yes", "on"}

_override: bool | None = None


def set_capture_content(enabled: bool | None) -> None:
    """Opt this process in (True) or out (False), or defer to the environment (None)."""
    global _override
    _override = enabled


def capture_content() -> bool:
    """True when spans may carry message content."""
    if _override is not None:
        return _override
    return os.environ.get(ENV_CAPTURE_CONTENT, "").strip().lower() in _TRUE


def as_json(value: Any) -> str:
    """`value` (pydantic models, dicts, lists, scalars) as compact JSON for a span attribute."""
    return json.dumps(_plain(value), ensure_ascii=False, separators=(",", ":"), default=str)


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
