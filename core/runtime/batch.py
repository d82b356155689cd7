"""Batched runs: many conversations at once, results written as they finish, resumable.

`run_batch(session, "in.jsonl", "out.jsonl", concurrency=K)` (and
`pearl run --batch in.jsonl --out out.jsonl --concurrency K`) reads one conversation per
input line (any shape `pearl.io.conversations` accepts: a JSON string, `{"messages": ...}`,
`{"prompt": ...}`, a message list; blank lines are skipped), runs up to K of them
concurrently on the session (a backend server sees K pipelines' calls at once; the
SGLang backend batches them), and appends one JSON line per conversation as soon as it
finishes::

    {"line": 7, "ok": true, "result": {...the Result...}}
    {"line": 9, "ok": false, "error": "step 'respond': ...", "error_type": "StepError"}

`line` is the 1-based line number in the input file. A conversation that fails (bad
input, a step error, a backend error) is recorded with its error; the others go on.

Output integrity: the output is written by `pearl.io.jsonl.JsonlAppender`: one complete
line per record, flushed and synced before the next. Re-running with the same output
file skips the lines already answered (`ok: true`); records of failed lines and a torn
last line left by a killed run are removed first (the appender's `keep` rule, one atomic
rewrite), so the failed lines are tried again and the file never holds a partial or
duplicate record.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pearl.errors import InputError
from pearl.io.conversations import parse_conversation_line
from pearl.io.jsonl import JsonlAppender, Line, read_lines
from pearl.runtime.concurrency import as_completed_in_context


@dataclass
class BatchSummary:
    """What one batched run did."""

    total: int
    skipped: int
    succeeded: int
    failed: int
    seconds: float
    out_path: Path


def read_inputs(path: str | Path) -> list[Line]:
    """Every non-blank input line (`pearl.io.jsonl.Line`: number and text)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"batch input '{path}' does not exist: pass a JSONL file with one conversation per line")
    return list(read_lines(path))


def _answered(done: set[int]) -> Callable[[Any], bool]:
    """The `keep` rule of the output file: one successful record per input line."""

    def keep(record: Any) -> bool:
        ok = isinstance(record, dict) and record.get("ok") is True and isinstance(record.get("line"), int)
        if not ok or record["line"] in done:
            return False
        done.add(record["line"])
        return True

    return keep


def _run_one(session, path: Path, line: Line) -> dict[str, Any]:
    try:
        conversation = parse_conversation_line(line.text, source=f"{path}:{line.number}").conversation
        result = session.run(conversation)
        return {"line": line.number, "ok": True, "result": result.model_dump(mode="json")}
    except Exception as exc:  # a crashed item is recorded, the batch goes on
        return {"line": line.number, "ok": False, "error": str(exc) or exc.__class__.__name__,
                "error_type": exc.__class__.__name__}


def run_batch(session, input_path: str | Path, out_path: str | Path, *, concurrency: int = 4,
              progress: bool = True, on_record: Callable[[dict[str, Any]], None] | None = None) -> BatchSummary:
    """Run every conversation of `input_path` on `session` (see the module docstring)."""
    if concurrency < 1:
        raise InputError(f"--concurrency must be at least 1 (got {concurrency})")
    input_path, out_path = Path(input_path), Path(out_path)
    if out_path.resolve() == input_path.resolve():
        raise InputError("--out must not be the input file: name a separate results file")
    items = read_inputs(input_path)
    done: set[int] = set()
    writer = JsonlAppender(out_path, keep=_answered(done))  # drops failed and torn records first
    todo = [line for line in items if line.number not in done]
    skipped = len(items) - len(todo)
    succeeded = failed = 0
    t0 = time.perf_counter()
    bar = _progress(progress, len(items), skipped)
    try:
        for record in as_completed_in_context(lambda line: _run_one(session, input_path, line), todo,
                                              concurrency, name="pearl-batch"):
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
                        seconds=time.perf_counter() - t0, out_path=out_path)


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
