"""Reading a conversation from the command line, a JSON file or stdin.

Accepted JSON shapes: `{"messages": [...], "system": ..., "language": ..., "metadata": {...}}`,
a bare list of `{"role", "content"}` messages, or `{"prompt": "..."}`. A message with
role `system` becomes the conversation's system prompt.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pearl.errors import InputError
from pearl.types import Conversation


def _explain(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(x) for x in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "literal_error" and where.endswith("role"):
        return f"{where}: unknown role {err.get('input')!r}: use 'user', 'assistant' or 'system'"
    return f"{where}: {msg}" if where else msg


def to_conversation(value: Any, *, source: str = "input") -> Conversation:
    """Coerce text, a message list, a dict or a Conversation into a Conversation."""
    if isinstance(value, Conversation):
        return value
    if isinstance(value, str):
        if not value.strip():
            raise InputError(f"{source}: the message is empty: write what the user says")
        return Conversation.from_text(value)
    if isinstance(value, list):
        value = {"messages": value}
    if not isinstance(value, dict):
        raise InputError(f"{source}: expected a JSON object or a list of messages, got {type(value).__name__}")
    data = dict(value)
    if "prompt" in data and "messages" not in data:
        prompt = data.pop("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise InputError(f"{source}: 'prompt' is empty: write what the user says")
        data["messages"] = [{"role": "user", "content": prompt}]
    messages = data.get("messages")
    if isinstance(messages, list):
        system_parts = [m.get("content", "") for m in messages if isinstance(m, dict) and m.get("role") == "system"]
        if system_parts:
            data["messages"] = [m for m in messages if not (isinstance(m, dict) and m.get("role") == "system")]
            data["system"] = "\n\n".join(filter(None, [data.get("system"), *system_parts]))
    try:
        return Conversation.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"{source}: {_explain(exc)}") from None


def read_conversation_file(path: str | Path) -> Conversation:
    """A conversation from a JSON file (see the module docstring for the shapes)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"conversation file '{path}' does not exist: check the path")
    return parse_conversation_json(path.read_text(encoding="utf-8"), source=str(path))


def parse_conversation_json(text: str, *, source: str) -> Conversation:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}): fix the file") from None
    return to_conversation(data, source=source)
