"""The `jsonl` dataset: any benchmark as one JSON object per line.

Each line holds `prompt` (a string) or `messages` (a list of {role, content}, the last
the user's), and optionally `id`, `system`, `language` and `labels` (an object). Other
top-level scalar keys are kept as labels too, so `{"prompt": ..., "label": "unsafe"}`
works. Ids default to `line-{n}`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from pydantic import ValidationError

from pearl.host.dataset import Dataset, Item
from pearl.errors import DatasetError
from pearl.host.hookspecs import hookimpl
from pearl.types import Conversation

RESERVED = {"id", "prompt", "messages", "system", "language", "labels"}


class JsonlDataset(Dataset):
    name = "jsonl"
    description = "generic JSONL: one {prompt | messages, id?, labels?} object per line"

    def load(self, path: Path, options: dict[str, Any]) -> Iterator[Item]:
        if path.is_dir():
            raise DatasetError(f"{path}: is a folder: point at the .jsonl file itself")
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"{path}: line {n} is not JSON ({exc.msg}): write one JSON object per line") from None
                if not isinstance(data, dict):
                    raise DatasetError(f"{path}: line {n} is not a JSON object: write {{\"prompt\": \"...\"}}")
                yield self._item(data, path, n)

    def _item(self, data: dict[str, Any], path: Path, n: int) -> Item:
        if "messages" in data:
            conv_data = {"messages": data["messages"]}
        elif isinstance(data.get("prompt"), str):
            conv_data = {"messages": [{"role": "user", "content": data["prompt"]}]}
        else:
            raise DatasetError(f"{path}: line {n} has neither 'prompt' (a string) nor 'messages': add one of them")
        for key in ("system", "language"):
            if data.get(key) is not None:
                conv_data[key] = data[key]
        try:
            conversation = Conversation.model_validate(conv_data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(x) for x in err["loc"])
            raise DatasetError(f"{path}: line {n}: {where}: {err['msg']}") from None
        labels = {k: v for k, v in data.items() if k not in RESERVED and not isinstance(v, (dict, list))}
        extra = data.get("labels") or {}
        if not isinstance(extra, dict):
            raise DatasetError(f"{path}: line {n}: 'labels' must be an object of name -> value")
        labels.update(extra)
        if conversation.language and "language" not in labels:
            labels["language"] = conversation.language
        return Item(id=str(data.get("id", f"line-{n}")), conversation=conversation, labels=labels)


@hookimpl
def register_datasets(register):
    register(JsonlDataset)
