"""JSON Lines files: the one append-and-resume writer, and the one line reader.

Every results file Pearlpoint writes (`pearl eval`, `pearl run --batch`, the optimizer's
scores) is a JSON Lines file written by `JsonlAppender`, with one rule for resuming:

- **Flushed line by line.** `append` writes one complete line with a single `os.write`
  on an `O_APPEND` descriptor and fsyncs it, under a lock, so concurrent writers never
  interleave and an interrupted run leaves every finished record on disk.
- **A torn last line is tolerated.** A line cut short by a hard kill (no trailing
  newline) is dropped when the file is next opened for appending.
- **Resume: the last record of a key wins.** A re-run appends; readers take the latest
  record per key (`latest_by`), so a retried failure is superseded by its success. A
  writer that must never hold superseded records (batch output) passes `keep=`, and the
  records it rejects are removed when the file is opened (one atomic rewrite).

`read_lines` is the reader under every JSONL input (conversations, results, datasets):
non-blank lines with their 1-based numbers; each caller decides what a bad line means.
`write_jsonl` replaces a whole file atomically (exports such as preference pairs).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, Iterator, Mapping, TypeVar

from pydantic import BaseModel

T = TypeVar("T")


@dataclass(frozen=True)
class Line:
    """One non-blank line of a JSONL file."""

    number: int
    text: str
    complete: bool  # ended with a newline; a torn last line does not

    def json(self) -> Any:
        """The parsed value; raises `json.JSONDecodeError` (a `ValueError`)."""
        return json.loads(self.text)


def read_lines(path: Path) -> Iterator[Line]:
    """The non-blank lines of `path` with their 1-based numbers (the file must exist)."""
    with open(path, encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            if raw.strip():
                yield Line(number=number, text=raw.rstrip("\r\n"), complete=raw.endswith("\n"))


def parsed(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, value) of every complete line that parses as JSON; others are skipped."""
    for line in read_lines(path):
        try:
            value = line.json()
        except ValueError:
            continue
        yield line.number, value


def latest_by(records: Iterable[T], key: Callable[[T], Hashable]) -> dict[Hashable, T]:
    """The resume rule: the last record of each key, in order of the key's first appearance."""
    out: dict[Hashable, T] = {}
    for record in records:
        out[key(record)] = record
    return out


def _encode(record: BaseModel | Mapping[str, Any]) -> bytes:
    if isinstance(record, BaseModel):
        text = record.model_dump_json()
    else:
        text = json.dumps(record, ensure_ascii=False)
    return (text + "\n").encode("utf-8")


def write_jsonl(path: Path, records: Iterable[BaseModel | Mapping[str, Any] | bytes]) -> None:
    """Replace `path` with `records` (bytes are written as they are), one per line, atomically (a temporary file, fsynced, then renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            for record in records:
                handle.write(record if isinstance(record, bytes) else _encode(record))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class JsonlAppender:
    """Appends records (pydantic models or JSON objects) to a JSONL file; see the module docstring.

    `keep(value) -> bool`, when given, is asked about every parsable complete line when
    the file is opened; lines it rejects, unparsable lines and a torn tail are removed by
    one atomic rewrite. Without it only a torn tail is cut off. Thread-safe.
    """

    def __init__(self, path: Path, *, keep: Callable[[Any], bool] | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if keep is None:
            self._drop_torn_tail()
        else:
            self._compact(keep)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()

    def _drop_torn_tail(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            with self.path.open("r+b") as handle:
                handle.truncate(data.rfind(b"\n") + 1)

    def _compact(self, keep: Callable[[Any], bool]) -> None:
        if not self.path.exists():
            return
        kept: list[bytes] = []
        dropped = False
        for line in read_lines(self.path):
            try:
                good = line.complete and keep(line.json())
            except ValueError:
                good = False
            if good:
                kept.append((line.text + "\n").encode("utf-8"))
            else:
                dropped = True
        if dropped:
            write_jsonl(self.path, kept)

    def append(self, record: BaseModel | Mapping[str, Any]) -> None:
        """Write `record` as one complete line, synced to disk before returning."""
        line = _encode(record)
        with self._lock:
            written = 0
            while written < len(line):
                written += os.write(self._fd, line[written:])
            os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> "JsonlAppender":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
