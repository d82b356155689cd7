"""Labelled conversations for optimizers: JSONL in, `dspy.Example`s out.

One JSON object per line: any conversation shape `pearl run --file` accepts
(`{"messages": [...]}`, `{"prompt": "..."}`, a bare message list is not allowed here),
plus optional `"id"` and `"labels"`::

    {"id": "mh-01", "messages": [{"role": "user", "content": "..."}],
     "labels": {"category": "mental-health", "level": "R0", "user_type": "sensitive"}}

Each line becomes `dspy.Example(conversation=<Conversation>, id=..., **labels)` with
`conversation` as its only input, so the labels are what metrics compare against.
Shipped sets are named instead of a path: `risk-train`, `risk-val` (see `SHIPPED`).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import dspy

from pearl.io.conversations import to_conversation
from pearl.errors import InputError

SHIPPED = {"risk-train": "risk_train.jsonl", "risk-val": "risk_val.jsonl"}


def resolve_dataset(ref: str) -> Path:
    """A path to a JSONL file, or the name of a shipped set."""
    path = Path(ref)
    if path.is_file():
        return path
    if ref in SHIPPED:
        return Path(str(resources.files("pearl.strategies").joinpath("data", SHIPPED[ref])))
    raise InputError(
        f"dataset '{ref}' is neither a file nor a shipped set ({', '.join(SHIPPED)}): check the path"
    )


def load_examples(ref: str, *, limit: int | None = None) -> list[dspy.Example]:
    """Read a labelled JSONL file (see the module docstring); errors name the file and line."""
    path = resolve_dataset(ref)
    examples: list[dspy.Example] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: not valid JSON ({exc.msg}): one JSON object per line") from None
        if not isinstance(data, dict):
            raise InputError(f"{where}: expected a JSON object with 'messages' or 'prompt'")
        labels = data.pop("labels", None) or {}
        if not isinstance(labels, dict):
            raise InputError(f"{where}: 'labels' must be an object such as {{\"level\": \"R0\"}}")
        example_id = str(data.pop("id", f"{path.stem}-{number}"))
        if example_id in seen:
            raise InputError(f"{where}: id '{example_id}' appears twice: ids must be unique")
        seen.add(example_id)
        bad = [k for k in labels if k in ("conversation", "id")]
        if bad:
            raise InputError(f"{where}: '{bad[0]}' cannot be a label name: rename it")
        conversation = to_conversation(data, source=where)
        examples.append(dspy.Example(conversation=conversation, id=example_id, **labels).with_inputs("conversation"))
        if limit is not None and len(examples) >= limit:
            break
    if not examples:
        raise InputError(f"{path}: no examples: write one JSON conversation per line")
    return examples
