"""The dataset contract: benchmark files turned into conversations with labels.

A dataset is a subclass of the abstract base class `Dataset`, registered with
`register_datasets` (`register(MyDataset)`).

What a subclass must provide::

    name         the registry key (`pearl eval NAME:PATH`)
    load(path, options) -> Iterator[Item]
                 read the file or folder at `path` and yield its items in a stable order

What it may provide: `description` (one line, shown by `pearl plugins` and `pearl datasets`).

What it may assume:

- The class is instantiated with no arguments and `load` is called once per evaluation,
  in the main thread, by `load_dataset` — which has already checked that `path` exists.
- `options` holds loader-specific keys; unknown keys are to be ignored.
- Selection (`--limit`, `--sample N --seed S`, label filters) is generic and done here
  (`select`) on what `load` yields: a loader yields everything.

What it must guarantee: every `Item` has an `id` unique within the dataset and stable
across runs (resumed evaluations key on it; duplicates are a `DatasetError`), the
`Conversation` to answer, and flat `labels` (language, level, type, label, ...) that
metrics group by and `select` filters on. A missing, empty or malformed file raises
`pearl.errors.DatasetError` naming the file and, where it applies, the column.
"""

from __future__ import annotations

import hashlib
import random
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Iterable, Iterator

from pydantic import BaseModel, Field

from pearl.errors import DatasetError
from pearl.types import Conversation


class Item(BaseModel):
    """One benchmark item: a conversation to answer and what is known about it."""

    id: str
    conversation: Conversation
    labels: dict[str, Any] = Field(default_factory=dict)


class Dataset(ABC):
    """Base class of dataset loaders (see the module docstring for the contract)."""

    name: ClassVar[str]
    description: ClassVar[str] = ""

    @abstractmethod
    def load(self, path: Path, options: dict[str, Any]) -> Iterator[Item]:
        """Yield the items of the file or folder at `path`, in a stable order."""


def split_of(prompt: str, seed: int = 0) -> str:
    """'dev' or 'test': the documented, seeded split by prompt.

    A prompt is on the dev side when the first 8 bytes of sha256("{seed}:{prompt}"),
    read as an integer, are even. Every answer to one prompt lands on the same side, and
    the split never depends on the other rows. Tune on dev, report on test.
    """
    digest = hashlib.sha256(f"{seed}:{prompt.strip()}".encode("utf-8")).digest()
    return "dev" if int.from_bytes(digest[:8], "big") % 2 == 0 else "test"


def parse_filters(pairs: Iterable[str]) -> dict[str, set[str]]:
    """`["label=safe", "level=1,2"]` -> `{"label": {"safe"}, "level": {"1", "2"}}`."""
    filters: dict[str, set[str]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise DatasetError(f"filter '{pair}' is not KEY=VALUE: write e.g. --where label=safe or --where level=1,2")
        filters.setdefault(key.strip(), set()).update(v.strip().lower() for v in value.split(",") if v.strip())
    return filters


def matches(item: Item, filters: dict[str, set[str]]) -> bool:
    """True when, for every filtered key, the item's label is one of the wanted values."""
    for key, wanted in filters.items():
        value = item.labels.get(key)
        if value is None or str(value).strip().lower() not in wanted:
            return False
    return True


def labels_seen(items: list[Item], most: int = 6) -> str:
    """The label names of `items` with a few of their values, for a filter that matched nothing."""
    values: dict[str, set[str]] = {}
    for item in items:
        for key, value in item.labels.items():
            if isinstance(value, (str, int, float, bool)) and str(value).strip():
                values.setdefault(key, set()).add(str(value).strip().lower())
    if not values:
        return "none (this dataset has no labels to filter on)"
    shown = []
    for key in sorted(values):
        few = sorted(values[key])
        if any(len(v) > 40 for v in few):
            shown.append(f"{key} (free text)")
        else:
            shown.append(f"{key} ({', '.join(few[:most])}{', …' if len(few) > most else ''})")
    return "; ".join(shown)


def select(items: Iterable[Item], *, filters: dict[str, set[str]] | None = None, sample: int | None = None,
           seed: int = 0, limit: int | None = None) -> list[Item]:
    """Filter, then draw `sample` items at random (seeded; kept in file order), then keep the first `limit`."""
    items = list(items)
    chosen = [item for item in items if matches(item, filters or {})]
    if filters and not chosen:
        wanted = ", ".join(f"{k}={'/'.join(sorted(v))}" for k, v in filters.items())
        raise DatasetError(f"no item matches {wanted}: the items' labels are {labels_seen(items)}")
    if sample is not None:
        if sample <= 0:
            raise DatasetError(f"--sample {sample}: give a positive number of items")
        if sample < len(chosen):
            picked = sorted(random.Random(seed).sample(range(len(chosen)), sample))
            chosen = [chosen[i] for i in picked]
    if limit is not None:
        if limit <= 0:
            raise DatasetError(f"--limit {limit}: give a positive number of items")
        chosen = chosen[:limit]
    return chosen


def check_unique(items: list[Item], source: str) -> None:
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise DatasetError(f"{source}: item id '{item.id}' appears twice: give every item a unique id")
        seen.add(item.id)


def parse_ref(ref: str) -> tuple[str, str | None]:
    """`"xstest:path/to.csv"` -> `("xstest", "path/to.csv")`; `"jsonl"` -> `("jsonl", None)`."""
    name, sep, path = ref.partition(":")
    return name.strip(), (path.strip() or None) if sep else None


def load_dataset(ref: str, host, options: dict[str, Any] | None = None) -> tuple[str, list[Item]]:
    """Resolve `NAME[:PATH]` through the host's `datasets` registry and load every item."""
    from pearl.errors import PluginError

    name, path = parse_ref(ref)
    try:
        cls = host.get("datasets", name)
    except PluginError as exc:
        raise DatasetError(f"{exc}: write DATASET:PATH, e.g. xstest:data/xstest_prompts.csv") from None
    if path is None:
        raise DatasetError(f"dataset '{name}' needs a path: write {name}:PATH (a file or folder)")
    p = Path(path).expanduser()
    if not p.exists():
        raise DatasetError(f"{p}: no such file or folder: check the path after '{name}:'")
    items = list(cls().load(p, dict(options or {})))
    if not items:
        raise DatasetError(f"{p}: dataset '{name}' found no items in it: check that it is the right file")
    check_unique(items, str(p))
    return name, items
