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
Lines are decoded one by one: a line that is not valid UTF-8 raises `NotUtf8` (an
`InputError` and a `ValueError`, naming the file and line) when its text is read, so one
such line fails alone — a reader that skips unparsable lines skips it, a batch records
it as that line's error — and never decodes into a silently altered text. A folder or
an unreadable file is an `InputError`.
`write_jsonl` replaces a whole file atomically (exports such as preference pairs).
`load_json` is `json.loads` with one error type for every text it cannot read.
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

from pearl.errors import InputError

T = TypeVar("T")


class NotUtf8(InputError, ValueError):
    """A line (or file) that is not valid UTF-8; a `ValueError` too, so line readers skip or record it like any unparsable line."""


def undecodable(source: str, exc: UnicodeDecodeError, fix: str = "save the file as UTF-8") -> NotUtf8:
    """The error for bytes of `source` that are not UTF-8, naming the first bad byte and `fix`."""
    return NotUtf8(f"{source}: not valid UTF-8 (byte 0x{exc.object[exc.start]:02x} at byte {exc.start + 1}): {fix}")


MAX_INPUT_BYTES = 64 << 20  # no text or line Pearlpoint reads is this long; a device or a binary file may be endless


def read_bounded(handle, source: str) -> bytes:
    """All of `handle` (a binary stream: a file, stdin, a pipe), refused with an `InputError` naming
    `source` once it passes `MAX_INPUT_BYTES`, so an endless stream (/dev/zero) is never read to the end."""
    data = handle.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:
        raise InputError(f"{source}: longer than {MAX_INPUT_BYTES >> 20} MiB, far more than a model reads: check that "
                         f"it is the text you meant (not a device, an archive or a model file)")
    return data


def read_text(path: Path, *, what: str = "file") -> str:
    """The whole of a UTF-8 text file (a leading BOM is dropped); `InputError` for a missing
    file, a folder, an unreadable file, one longer than `MAX_INPUT_BYTES` or bytes that are not
    UTF-8, naming the file."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder: point at the {what} itself")
    try:
        with open(path, "rb") as handle:
            data = read_bounded(handle, str(path))
    except FileNotFoundError:
        raise InputError(f"{path}: no such {what}: check the path") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the {what} ({exc.strerror or exc}): check its permissions") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise undecodable(str(path), exc) from None


@dataclass(frozen=True)
class Line:
    """One non-blank line of a JSONL file: its bytes, decoded when `text` is read."""

    number: int
    data: bytes  # without the line ending
    complete: bool  # ended with a newline; a torn last line does not
    source: str = ""  # the file, for messages

    @property
    def text(self) -> str:
        """The line as text; raises `NotUtf8` naming the file and line when it is not UTF-8."""
        try:
            return self.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise undecodable(f"{self.source}:{self.number}", exc) from None

    def json(self) -> Any:
        """The parsed value; raises `json.JSONDecodeError` or `NotUtf8` (both `ValueError`s)."""
        return load_json(self.text)


def load_json(text: str) -> Any:
    """`json.loads`, raising `json.JSONDecodeError` for every text it cannot read: also for nesting
    deeper than Python's recursion limit and for an integer longer than Python converts."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise json.JSONDecodeError("arrays or objects nested too deeply", text, 0) from None
    except ValueError as exc:  # "Exceeds the limit (4300 digits) for integer string conversion..."
        raise json.JSONDecodeError(f"a value Python cannot read: {str(exc).split(';')[0]}", text, 0) from None


def read_lines(path: Path) -> Iterator[Line]:
    """The non-blank lines of `path` with their 1-based numbers (a BOM before the first is dropped).

    A missing file, a folder, an unreadable file or a line longer than `MAX_INPUT_BYTES` is an
    `InputError` naming it.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder: point at the .jsonl file itself")
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file: check the path") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the file ({exc.strerror or exc}): check its permissions") from None
    with handle:
        number = 0
        while raw := handle.readline(MAX_INPUT_BYTES + 1):
            number += 1
            if len(raw) > MAX_INPUT_BYTES:
                raise InputError(f"{path}:{number}: a line longer than {MAX_INPUT_BYTES >> 20} MiB, far more than one "
                                 f"record holds: check that {path} is the JSONL file you meant")
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if raw.strip():
                yield Line(number=number, data=raw.rstrip(b"\r\n"), complete=raw.endswith(b"\n"), source=str(path))


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


def _writable(path: Path) -> None:
    """Refuse an output path that is a folder, or whose folder is a file (`InputError`)."""
    if path.is_dir():
        raise InputError(f"{path}: is a folder: name a file to write, such as {path / 'results.jsonl'}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"{path}: '{parent}' is a file, not a folder: choose another output path")
            break
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{path}: cannot create its folder ({exc.strerror or exc}): choose another output path") from None


def write_jsonl(path: Path, records: Iterable[BaseModel | Mapping[str, Any] | bytes]) -> None:
    """Replace `path` with `records` (bytes are written as they are), one per line, atomically (a temporary file, fsynced, then renamed).

    A folder, or a path under a file, is an `InputError`, raised before anything is written.
    """
    path = Path(path)
    _writable(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    except OSError as exc:
        raise InputError(f"{path}: cannot write in its folder ({exc.strerror or exc}): "
                         f"check its permissions or choose another output path") from None
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
        _writable(self.path)
        if keep is None:
            self._drop_torn_tail()
        else:
            self._compact(keep)
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise InputError(f"{self.path}: cannot write the file ({exc.strerror or exc}): "
                             f"check its permissions or choose another output path") from None
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
            except ValueError:  # not JSON, or not UTF-8 (`NotUtf8`)
                good = False
            if good:
                kept.append(line.data + b"\n")
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
