"""The evaluation results file: JSON Lines, one `ResultRecord` per finished item.

Contract: records are appended with `pearl.io.jsonl.JsonlAppender` as soon as their
item is done, so an interrupted run leaves a valid file holding every finished item; a
line cut short by a hard kill is dropped when the file is next opened for appending.
Readers take the *last* record of each item id (a retried error is superseded by its
later success).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import BaseModel, Field, ValidationError

from pearl.errors import InputError
from pearl.io.jsonl import latest_by, read_lines
from pearl.types import Conversation, Result, RunIdentity


class Timings(BaseModel):
    pipeline_s: float = 0.0
    judges_s: dict[str, float] = Field(default_factory=dict)
    total_s: float = 0.0


class ResultRecord(BaseModel):
    """One evaluated item: what was asked, what the pipeline answered, how the judges scored it."""

    id: str
    dataset: str
    pipeline: str
    run: RunIdentity | None = Field(default=None, description="the run that wrote it (None: an older version)")
    status: Literal["ok", "error"]
    labels: dict[str, Any] = Field(default_factory=dict)
    conversation: Conversation
    result: Result | None = None
    error: str | None = None
    judgements: dict[str, dict[str, Any]] = Field(default_factory=dict, description="judge name -> Judgement JSON")
    judge_errors: dict[str, str] = Field(default_factory=dict)
    judge_category: str | None = Field(default=None, description="risk category the safety judge was given")
    judge_category_source: Literal["judge", "pipeline"] | None = Field(
        default=None, description="'judge': classified by evaluation itself; 'pipeline': the pipeline's own assessment")
    timings: Timings = Field(default_factory=Timings)
    total_items: int | None = Field(default=None, description="how many items the run was asked to evaluate")
    finished_at: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))


def read_records(path: Path, *, strict: bool = False) -> tuple[list[ResultRecord], int]:
    """All well-formed records in file order, and the number of unreadable lines skipped.

    With `strict`, an unreadable line other than a cut-off last line is an error. A line
    that is not UTF-8 is unreadable like any other (`pearl.io.jsonl.NotUtf8`).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such results file: run `pearl eval ... --out {path}` first")
    records: list[ResultRecord] = []
    bad = 0
    lines = list(read_lines(path))
    for line in lines:
        try:
            records.append(ResultRecord.model_validate_json(line.text))
        except (ValidationError, ValueError) as exc:
            if strict and (line is not lines[-1] or line.complete):  # only a torn last line is forgiven
                raise InputError(f"{path}: line {line.number} is not a result record ({str(exc).splitlines()[0]}): "
                                 f"this is not a `pearl eval` results file, or it was edited") from None
            bad += 1
    return records, bad


def latest_by_id(records: list[ResultRecord]) -> dict[str, ResultRecord]:
    """The last record of each item id, in order of first appearance (the resume rule of `pearl.io.jsonl`)."""
    return latest_by(records, lambda r: r.id)  # type: ignore[return-value]


def done_ids(path: Path, *, dataset: str, pipeline: str, retry_errors: bool,
             run: RunIdentity | None = None, asked: Mapping[str, Conversation] | None = None) -> set[str]:
    """Ids already finished in `path` (errors too, unless `retry_errors`); checks the file fits the run:
    the same pipeline on the same dataset, for records that store theirs the same `run`, and, given the
    conversations `asked` by item id, the same conversation for every id both hold (items are matched by
    id, so another file of the same dataset kind, or an edited one, would otherwise pass as answered)."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder: name the results file, such as {path / 'results.jsonl'}")
    if not path.exists() or path.stat().st_size == 0:
        return set()
    records, _ = read_records(path, strict=True)
    for record in records:
        if record.pipeline != pipeline or record.dataset != dataset:
            raise InputError(
                f"{path} holds results of pipeline '{record.pipeline}' on dataset '{record.dataset}', not "
                f"'{pipeline}' on '{dataset}': choose another --out file to keep them apart"
            )
        differs = run.mismatch(record.run.model_dump()) if run is not None and record.run is not None else ""
        if differs:
            raise InputError(f"{path} holds results of another run ({differs}): resume it with the same --set, "
                             f"--compiled and --model, or choose another --out to keep them apart")
    latest = latest_by_id(records)
    for item_id, record in latest.items():
        if asked is not None and item_id in asked and asked[item_id] != record.conversation:
            raise InputError(
                f"{path} holds an answer to item '{item_id}' whose conversation is not the one the dataset asks now: "
                f"it was written from another dataset file or an earlier version of it; choose another --out file")
    return {i for i, r in latest.items() if r.status == "ok" or not retry_errors}
