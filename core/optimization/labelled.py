"""Labelled conversations for optimizers: JSONL in, `dspy.Example`s out.

One JSON object per line, read by `pearl.io.conversations.read_conversation_lines`:
`{"messages": [...]}` or `{"prompt": "..."}`, plus optional `"id"` and `"labels"` (other
top-level scalar keys are labels too)::

    {"id": "mh-01", "messages": [{"role": "user", "content": "..."}],
     "labels": {"category": "mental-health", "level": "R0", "user_type": "sensitive"}}

Each line becomes `dspy.Example(conversation=<Conversation>, id=..., **labels)` with
`conversation` as its only input, so the labels are what metrics compare against.
Shipped sets are named instead of a path: `risk-train`, `risk-val` (see `SHIPPED`).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import dspy

from pearl.io.conversations import read_conversation_lines
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
    for line in read_conversation_lines(path):
        where = f"{path}:{line.number}"
        example_id = line.id or f"{path.stem}-{line.number}"
        if example_id in seen:
            raise InputError(f"{where}: id '{example_id}' appears twice: ids must be unique")
        seen.add(example_id)
        bad = [k for k in line.labels if k in ("conversation", "id")]
        if bad:
            raise InputError(f"{where}: '{bad[0]}' cannot be a label name: rename it")
        examples.append(dspy.Example(conversation=line.conversation, id=example_id, **line.labels)
                        .with_inputs("conversation"))
        if limit is not None and len(examples) >= limit:
            break
    if not examples:
        raise InputError(f"{path}: no examples: write one JSON conversation per line")
    return examples
