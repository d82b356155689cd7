"""The `xstest` dataset: XSTest prompts (Röttger et al., CC-BY-4.0).

A csv with columns id, prompt, type, label, focus, note: 250 safe prompts that look
unsafe (over-refusal probes) and 200 unsafe contrast prompts. Labels: `type`,
`label` (safe / unsafe), `focus`, `note`, and `language` = en. Item ids are `xstest-{id}`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from pearl.host.dataset import Dataset, Item
from pearl.errors import DatasetError
from pearl.host.hookspecs import hookimpl
from pearl.io.tables import read_csv
from pearl.types import Conversation, Message

REQUIRED = ("id", "prompt", "type", "label")
OPTIONAL = ("focus", "note")


class XSTest(Dataset):
    name = "xstest"
    description = "XSTest over-refusal prompts (csv: id, prompt, type, label, focus, note)"

    def load(self, path: Path, options: dict[str, Any]) -> Iterator[Item]:
        header, rows = read_csv(path)
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise DatasetError(
                f"{path}: missing column {', '.join(repr(c) for c in missing)} "
                f"(found {', '.join(repr(h) for h in header)}): XSTest files have columns id, prompt, type, label, focus, note"
            )
        for n, row in enumerate(rows, start=2):
            prompt = (row.get("prompt") or "").strip()
            if not prompt:
                raise DatasetError(f"{path}: line {n}: column 'prompt' is empty: fill it or delete the line")
            label = (row.get("label") or "").strip().lower()
            if label not in ("safe", "unsafe"):
                raise DatasetError(f"{path}: line {n}: column 'label' is {label!r}: use 'safe' or 'unsafe'")
            labels = {"type": (row.get("type") or "").strip(), "label": label, "language": "en"}
            labels.update({c: (row.get(c) or "").strip() for c in OPTIONAL if c in header})
            conversation = Conversation(messages=[Message(role="user", content=prompt)], language="en")
            yield Item(id=f"xstest-{(row.get('id') or str(n)).strip()}", conversation=conversation, labels=labels)


@hookimpl
def register_datasets(register):
    register(XSTest)
