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

Output integrity: every record is written with a single `write` of one complete line,
flushed and synced before the next, under a lock. Re-running with the same output file
skips the lines already answered (`ok: true`); records of failed lines and a torn last
line left by a killed run are removed first (the file is rewritten atomically), so the
failed lines are tried again and the file never holds a partial or duplicate record.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pearl.runtime.concurrency import submit_in_context
from pearl.io.conversations import to_conversation
from pearl.errors import InputError


@dataclass
class BatchSummary:
    """What one batched run did."""

    total: int
    skipped: int
    succeeded: int
    failed: int
    seconds: float
    out_path: Path


def read_inputs(path: str | Path) -> list[tuple[int, str]]:
    """(line number, text) of every non-blank input line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"batch input '{path}' does not exist: pass a JSONL file with one conversation per line")
    with open(path, encoding="utf-8") as f:
        return [(n, text) for n, text in enumerate(f, start=1) if text.strip()]


def load_done(out_path: Path) -> set[int]:
    """Lines already answered in `out_path`; drops failed and torn records (atomic rewrite)."""
    if not out_path.exists():
        return set()
    keep: list[str] = []
    done: set[int] = set()
    dropped = False
    with open(out_path, encoding="utf-8") as f:
        for raw in f:
            try:
                rec = json.loads(raw)
                ok = raw.endswith("\n") and isinstance(rec, dict) and rec.get("ok") is True and isinstance(rec.get("line"), int)
            except ValueError:
                ok = False
            if ok and rec["line"] not in done:
                done.add(rec["line"])
                keep.append(raw)
            else:
                dropped = True
    if dropped:
        fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=out_path.name, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.writelines(keep)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out_path)
    return done


class JsonlWriter:
    """Appends whole JSON lines, one `write` each, flushed and synced, thread-safe."""

    def __init__(self, path: Path):
        self._f = open(path, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            self._f.write(line)
            self._f.flush()
            os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()


def _run_one(session, path: Path, line: int, text: str) -> dict[str, Any]:
    try:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{line}: not valid JSON ({exc.msg}): write one JSON conversation per line") from None
        result = session.run(to_conversation(data, source=f"{path}:{line}"))
        return {"line": line, "ok": True, "result": result.model_dump(mode="json")}
    except Exception as exc:  # a crashed item is recorded, the batch goes on
        return {"line": line, "ok": False, "error": str(exc) or exc.__class__.__name__,
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
    out_path.parent.mkdir(parents=True, exist_ok=True)
    done = load_done(out_path)
    todo = [(n, text) for n, text in items if n not in done]
    skipped = len(items) - len(todo)
    writer = JsonlWriter(out_path)
    succeeded = failed = 0
    t0 = time.perf_counter()
    bar = _progress(progress, len(items), skipped)
    try:
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="pearl-batch") as pool:
            pending = set()
            queue = iter(todo)

            def top_up() -> None:
                while len(pending) < concurrency:
                    nxt = next(queue, None)
                    if nxt is None:
                        return
                    pending.add(submit_in_context(pool, _run_one, session, input_path, *nxt))

            top_up()
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    pending.discard(future)
                    record = future.result()
                    writer.write(record)
                    if record["ok"]:
                        succeeded += 1
                    else:
                        failed += 1
                    if on_record:
                        on_record(record)
                    if bar:
                        bar[0].update(bar[1], advance=1, description=f"{succeeded} ok · {failed} failed")
                top_up()
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
