"""The `jsonl` dataset: any benchmark as one JSON object per line.

Each line holds `prompt` (a string) or `messages` (a list of {role, content}, the last
the user's), and optionally `id`, `system`, `language` and `labels` (an object). Other
top-level scalar keys are kept as labels too, so `{"prompt": ..., "label": "unsafe"}`
works. Ids default to `line-{n}`. Lines are read by `pearl.io.conversations`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from pearl.errors import DatasetError
from pearl.host.dataset import Dataset, Item
from pearl.host.hookspecs import hookimpl
from pearl.io.conversations import read_conversation_lines


class JsonlDataset(Dataset):
    name = "jsonl"
    description = "generic JSONL: one {prompt | messages, id?, labels?} object per line"

    def load(self, path: Path, options: dict[str, Any]) -> Iterator[Item]:
        for line in read_conversation_lines(path, error=DatasetError):
            labels = dict(line.labels)
            if line.conversation.language and "language" not in labels:
                labels["language"] = line.conversation.language
            yield Item(id=line.id or f"line-{line.number}", conversation=line.conversation, labels=labels)


@hookimpl
def register_datasets(register):
    register(JsonlDataset)
