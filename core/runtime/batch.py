"""Batched runs: many conversations at once, results written as they finish, resumable.

`run_batch(session, "in.jsonl", "out.jsonl", concurrency=K)` (and
`pearl run --batch in.jsonl --out out.jsonl --concurrency K`) reads one conversation per
input line (any shape `pearl.io.conversations` accepts: a JSON string, `{"messages": ...}`,
`{"prompt": ...}`, a message list; blank lines are skipped), runs up to K of them
concurrently on the session (a backend server sees K pipelines' calls at once; the
SGLang backend batches them), and appends one JSON line per conversation as soon as it
finishes::

    {"line": 7, "key": "sha256:…", "ok": true, "run": {...}, "result": {...the Result...}}
    {"line": 9, "key": "sha256:…", "ok": false, "error": "step 'respond': ...", "error_type": "StepError"}

`line` is the 1-based line number in the input file when the record was written; `key`
is the content hash of the line's conversation (`conversation_key`); `run` is what else the
result depends on (`pearl.types.RunIdentity`: the pipeline, the `--set`s applied to it, the
compiled folder loaded and the task model). A conversation that
fails (bad input, a step error, a backend error) is recorded with its error; the others
go on. `BatchSummary.failed` counts them (`pearl run --batch` then exits with code 1).

Resume is keyed by content, not by line number. Re-running with the same output file
skips the input lines whose conversation already has a successful record (`ok: true`
with the same `key`; an input holding one conversation twice needs two records). Records
of failed lines and a torn last line left by a killed run are removed first (the
appender's `keep` rule, one atomic rewrite), so the failed lines are tried again. An
output file holding a successful record of a conversation that is *not* in the input
(written from another, or an edited, input; or without keys, by an older version) is
refused with an `InputError` and left as it is: choose another `--out`. So is a file that is not
a batch results file (a line that is not a batch record), and one holding a
successful record made by another run (another `run`; a record from before `run` was written is
checked on its result's pipeline): resuming it would put two settings' answers in one file.

Output integrity: the output is written by `pearl.io.jsonl.JsonlAppender`: one complete
line per record, flushed and synced before the next, so the file is valid whenever the
run stops. Ctrl-C (`pearl.runtime.drain.DrainingMap`): the first press starts no new
conversation and writes every one already running as it finishes (`BatchSummary.interrupted`,
`not_started`); a second press stops at once, keeping what was written.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pearl.errors import InputError, PearlError
from pearl.io.conversations import parse_conversation_line
from pearl.io.paths import same_file
from pearl.io.jsonl import JsonlAppender, Line, read_lines
from pearl.runtime.drain import DrainingMap
from pearl.types import RunIdentity


@dataclass
class BatchSummary:
    """What one batched run did."""

    total: int
    skipped: int
    succeeded: int
    failed: int
    seconds: float
    out_path: Path
    interrupted: bool = False  # a first Ctrl-C stopped it before every line had started
    not_started: int = 0


def read_inputs(path: str | Path) -> list[Line]:
    """Every non-blank input line (`pearl.io.jsonl.Line`: number and text)."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"batch input '{path}' is a folder: pass a JSONL file with one conversation per line")
    if not path.is_file():
        why = "is not a regular file (a device or a pipe)" if path.exists() else "does not exist"
        raise InputError(f"batch input '{path}' {why}: pass a JSONL file with one conversation per line")
    lines = list(read_lines(path))
    if not lines:
        raise InputError(f"batch input '{path}' holds no conversation (it is empty or blank): write one JSON "
                         f"conversation per line")
    return lines


def conversation_key(text: str | bytes) -> str:
    """The content hash of one input line: its conversation's canonical JSON, else the line's own text.

    Two lines holding the same conversation in another layout (spacing, key order, a
    string vs `{"prompt": ...}`) get the same key; a line that is not a valid
    conversation is keyed by its stripped text (its stripped bytes when they are not UTF-8).
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            return "sha256:" + hashlib.sha256(b"raw:" + text.strip()).hexdigest()
    try:
        canonical = parse_conversation_line(text, source="key").conversation.model_dump_json()
    except (PearlError, ValueError):
        canonical = "raw:" + text.strip()
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _succeeded(record: Any) -> bool:
    return isinstance(record, dict) and record.get("ok") is True


def check_resumable(out_path: Path, input_path: Path, wanted: Counter, identity: RunIdentity) -> None:
    """Refuse an output file this run may not resume, before anything in it changes (the module docstring):
    one that is not a batch results file, or that holds a successful record of a conversation not in the
    input or made by another run. A line damaged past reading (not JSON, not UTF-8) in a file of records,
    like a torn last line, is dropped on resume instead."""
    if not out_path.is_file():
        return
    records, unreadable, stale, other_run = 0, None, [], None
    refuse = "choose another --out file (the existing one is left as it is)"
    for line in read_lines(out_path):
        if not line.complete:
            continue
        try:
            value = line.json()
        except ValueError:
            unreadable = unreadable or line.number
            continue
        if not (isinstance(value, dict) and "line" in value and "ok" in value):
            raise InputError(f"--out {out_path} is not a `pearl run --batch` results file (line {line.number} is not "
                             f"a batch record): {refuse}")
        records += 1
        if not _succeeded(value):
            continue
        if value.get("key") not in wanted:
            stale.append(value.get("line", "?"))
        elif not other_run and (differs := identity.mismatch(_recorded_run(value))):
            other_run = (differs, value.get("line", "?"))
    if unreadable and not records:
        raise InputError(f"--out {out_path} is not a `pearl run --batch` results file (line {unreadable} is not JSON): "
                         f"{refuse}")
    if stale:
        shown = ", ".join(str(n) for n in stale[:5]) + (", …" if len(stale) > 5 else "")
        raise InputError(f"--out {out_path} holds {len(stale)} result(s) of conversations that are not in {input_path} "
                         f"(written for its line(s) {shown}): it was written from another input, an edited one, or by "
                         f"an older version; {refuse}")
    if other_run:
        raise InputError(f"--out {out_path} holds results of another run ({other_run[0]}), written for its line "
                         f"{other_run[1]}: resume it with the same --pipeline, --set, --compiled and --model, or "
                         f"{refuse}")


def _recorded_run(record: dict) -> dict[str, Any]:
    """A successful record's `run`; for a record written before `run` existed, its result's pipeline."""
    if isinstance(record.get("run"), dict):
        return record["run"]
    result = record.get("result")
    pipeline = result.get("pipeline") if isinstance(result, dict) else None
    return {"pipeline": pipeline} if pipeline else {}


def _answered(wanted: Counter) -> Callable[[Any], bool]:
    """The `keep` rule of the output file: successful records, as many per key as the input needs."""
    left = Counter(wanted)

    def keep(record: Any) -> bool:
        if not _succeeded(record) or left[record.get("key")] <= 0:
            return False
        left[record["key"]] -= 1
        return True

    keep.left = left  # type: ignore[attr-defined]
    return keep


def _run_one(session, path: Path, line: Line, key: str, run: RunIdentity) -> dict[str, Any]:
    try:
        conversation = parse_conversation_line(line.text, source=f"{path}:{line.number}").conversation
        result = session.run(conversation)
        return {"line": line.number, "key": key, "ok": True, "run": run.model_dump(mode="json"),
                "result": result.model_dump(mode="json")}
    except Exception as exc:  # a crashed item is recorded, the batch goes on
        return {"line": line.number, "key": key, "ok": False, "error": str(exc) or exc.__class__.__name__,
                "error_type": exc.__class__.__name__}


def run_batch(session, input_path: str | Path, out_path: str | Path, *, concurrency: int = 4,
              progress: bool = True, on_record: Callable[[dict[str, Any]], None] | None = None,
              on_interrupt: Callable[[int], None] | None = None) -> BatchSummary:
    """Run every conversation of `input_path` on `session` (see the module docstring).

    `on_interrupt(running)` is called on the first Ctrl-C with the number of
    conversations still running (they are finished and written).
    """
    if concurrency < 1:
        raise InputError(f"--concurrency must be at least 1 (got {concurrency})")
    input_path, out_path = Path(input_path), Path(out_path)
    if same_file(out_path, input_path):  # the same path, a symlink or a hard link
        raise InputError("--out must not be the input file: name a separate results file")
    items = read_inputs(input_path)
    keys = {line.number: conversation_key(line.data) for line in items}
    wanted = Counter(keys.values())
    identity = session.identity()
    check_resumable(out_path, input_path, wanted, identity)
    keep = _answered(wanted)
    writer = JsonlAppender(out_path, keep=keep)  # drops failed and torn records first
    done = Counter(wanted) - keep.left  # type: ignore[attr-defined]
    todo = []
    for line in items:
        if done[keys[line.number]] > 0:
            done[keys[line.number]] -= 1
        else:
            todo.append(line)
    skipped = len(items) - len(todo)
    succeeded = failed = 0
    t0 = time.perf_counter()
    bar = _progress(progress, len(items), skipped)
    runs = DrainingMap(lambda line: _run_one(session, input_path, line, keys[line.number], identity), todo,
                       concurrency, name="pearl-batch", on_interrupt=on_interrupt)
    try:
        for record in runs:
            writer.append(record)
            if record["ok"]:
                succeeded += 1
            else:
                failed += 1
            if on_record:
                on_record(record)
            if bar:
                bar[0].update(bar[1], advance=1, description=f"{succeeded} ok · {failed} failed")
    finally:
        writer.close()
        if bar:
            bar[0].stop()
    return BatchSummary(total=len(items), skipped=skipped, succeeded=succeeded, failed=failed,
                        seconds=time.perf_counter() - t0, out_path=out_path, interrupted=runs.interrupted,
                        not_started=runs.not_started)


def _progress(enabled: bool, total: int, completed: int):
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True), transient=False)
    task = progress.add_task("starting", total=total, completed=completed)
    progress.start()
    return progress, task
