"""Reading conversations: from the command line, a JSON file, stdin, or a JSONL file.

Accepted JSON shapes: `{"messages": [...], "system": ..., "language": ..., "metadata": {...}}`,
a bare list of `{"role", "content"}` messages, `{"prompt": "..."}`, or a plain string. A
message with role `system` becomes the conversation's system prompt.

JSONL files of conversations (batch inputs, datasets, labelled optimizer sets) are read
by the one reader here, `read_conversation_lines`: one JSON value per line, where an
object may also carry an `"id"` and `"labels"` (an object); its other top-level scalar
keys are labels too (`{"prompt": ..., "label": "unsafe"}`). Errors name the file and line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from pydantic import ValidationError

from pearl.errors import InputError, PearlError
from pearl.io.jsonl import load_json, read_lines, read_text, undecodable
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
        _check_unicode(value, source)
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
        if not isinstance(prompt, str):
            raise InputError(f"{source}: 'prompt' must be text (a JSON string), not {type(prompt).__name__}: "
                             f"write what the user says in quotes")
        if not prompt.strip():
            raise InputError(f"{source}: 'prompt' is empty: write what the user says")
        data["messages"] = [{"role": "user", "content": prompt}]
    messages = data.get("messages")
    if isinstance(messages, list):
        system_parts = [m.get("content", "") for m in messages if isinstance(m, dict) and m.get("role") == "system"]
        for part in (*system_parts, data.get("system") or ""):
            if not isinstance(part, str):
                raise InputError(f"{source}: a system prompt must be a string, not {type(part).__name__}: "
                                 f"write the system message's content as text")
        if system_parts:
            data["messages"] = [m for m in messages if not (isinstance(m, dict) and m.get("role") == "system")]
            data["system"] = "\n\n".join(filter(None, [data.get("system"), *system_parts]))
    try:
        conversation = Conversation.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"{source}: {_explain(exc)}") from None
    for i, message in enumerate(conversation.messages):
        _check_unicode(message.content, f"{source}: messages.{i}.content")
    _check_unicode(conversation.system or "", f"{source}: system")
    return conversation


def read_conversation_file(path: str | Path) -> Conversation:
    """A conversation from a UTF-8 JSON file (see the module docstring for the shapes)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"conversation file '{path}' does not exist: check the path")
    return parse_conversation_json(read_text(path, what="conversation file"), source=str(path))


def decode_input(data: bytes | str, *, source: str) -> str:
    """Text read from stdin or a pipe as bytes, decoded as UTF-8 (a BOM is dropped); `InputError`
    naming `source` when it is not UTF-8, before anything reaches a model.

    Text that a reader already decoded with `surrogateescape` (Python's stdin under a
    C locale) carries lone surrogates for the undecodable bytes: it is refused the same way.
    """
    if isinstance(data, str):
        try:
            data.encode("utf-8")
            return data.removeprefix("\ufeff")
        except UnicodeEncodeError:
            pass
        try:
            data = data.encode("utf-8", "surrogateescape")  # the undecodable bytes back
        except UnicodeEncodeError:
            return _check_unicode(data, source)  # other lone surrogates: raises
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise undecodable(source, exc, "send UTF-8 text (e.g. convert it with iconv -t UTF-8)") from None


def _check_unicode(text: str, source: str) -> str:
    """`text` itself; `InputError` when it holds a lone surrogate (from a `\\udXXX` JSON escape or
    undecodable bytes), which no model provider can receive."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"{source}: the text holds a lone surrogate (U+{ord(text[exc.start]):04X} at character "
                         f"{exc.start + 1}), which is not valid Unicode: repair the text or its \\u escapes") from None
    return text


def parse_conversation_json(text: str, *, source: str) -> Conversation:
    try:
        data = load_json(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}): fix the file") from None
    return to_conversation(data, source=source)


# --- JSONL files of conversations --------------------------------------------------------

CONVERSATION_KEYS = ("messages", "prompt", "system", "language", "metadata")


@dataclass(frozen=True)
class ConversationLine:
    """One conversation read from a JSONL line, with its optional id and labels."""

    number: int
    conversation: Conversation
    id: str | None = None
    labels: dict[str, Any] = field(default_factory=dict)


def conversation_record(value: Any, *, source: str, number: int = 0) -> ConversationLine:
    """A parsed JSONL value as a conversation, id and labels (see the module docstring)."""
    if not isinstance(value, dict):
        return ConversationLine(number, to_conversation(value, source=source))
    if "messages" not in value and "prompt" not in value:
        raise InputError(f"{source}: has neither 'prompt' (a string) nor 'messages': add one of them")
    labels = {k: v for k, v in value.items()
              if k not in CONVERSATION_KEYS and k not in ("id", "labels") and not isinstance(v, (dict, list))}
    extra = value.get("labels") or {}
    if not isinstance(extra, dict):
        raise InputError(f"{source}: 'labels' must be an object of name -> value, such as {{\"level\": \"R0\"}}")
    labels.update(extra)
    conversation = to_conversation({k: value[k] for k in CONVERSATION_KEYS if k in value}, source=source)
    item_id = value.get("id")
    return ConversationLine(number, conversation, None if item_id is None else str(item_id), labels)


def parse_conversation_line(text: str, *, source: str, number: int = 0) -> ConversationLine:
    """One JSONL line (the JSON text) as a `ConversationLine`; raises `InputError` naming `source`."""
    try:
        value = load_json(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}: not valid JSON ({exc.msg}): write one JSON conversation per line") from None
    return conversation_record(value, source=source, number=number)


def read_conversation_lines(path: str | Path, *,
                            error: type[PearlError] = InputError) -> Iterator[ConversationLine]:
    """Every conversation of a JSONL file, in order; blank lines are skipped.

    A missing file or a bad line raises `error` (e.g. `DatasetError` for datasets) with
    a message naming the file and line.
    """
    path = Path(path)
    if path.is_dir():
        raise error(f"{path}: is a folder: point at the .jsonl file itself")
    if not path.is_file():
        raise error(f"{path}: {'not a regular file (a device or a pipe)' if path.exists() else 'no such file'}: "
                    f"point at a .jsonl file")
    for line in read_lines(path):
        try:
            yield parse_line(line)
        except InputError as exc:
            raise error(str(exc)) from None


def parse_line(line) -> ConversationLine:
    """A `pearl.io.jsonl.Line` as a `ConversationLine`; `InputError` (`NotUtf8` for bytes that
    are not UTF-8) naming the file and line."""
    return parse_conversation_line(line.text, source=f"{line.source}:{line.number}", number=line.number)
