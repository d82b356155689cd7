"""Preference pairs from refinement histories, for DPO / ORPO training (TRL's shape).

Every saved result whose pipeline ran a `refine` step holds a `Refinement` (found with
`Result.output_of(Refinement)`). Its Pearl Point is the *chosen* answer; every other
judged iteration that came *before* it, or that was not judged safe, is a *rejected*
one (the Oyster-I recipe: Pearl Point vs earlier or unsafe iterations). Pairs whose two
responses are the same text carry no signal and are skipped, as are results whose Pearl
Point is flagged (not judged safe) unless `include_flagged` is set.

Record shape (TRL's *conversational* preference format, read by `DPOTrainer` and
`ORPOTrainer`, which apply the model's chat template themselves)::

    {"prompt":   [{"role": "system", ...}?, {"role": "user", "content": ...}, ...],
     "chosen":   [{"role": "assistant", "content": <Pearl Point response>}],
     "rejected": [{"role": "assistant", "content": <other response>}]}

With `metadata=True` each record also has `"metadata"` (indices and scores of both
sides); leave it off for trainers that reject unknown columns.

With `text=True` the prompt is the conversation as plain text (one `role: content` line
per turn) and chosen/rejected are plain strings (TRL's *standard* format).

Input lines may be `Result` JSON (`pearl run --json`, one per line) or evaluation
records (`pearl eval`), which carry the result under `"result"`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from pydantic import ValidationError

from pearl.csa.judgements import SAFETY_MAX
from pearl.csa.refinement import Iteration, Refinement
from pearl.errors import InputError
from pearl.io.jsonl import read_lines, write_jsonl
from pearl.io.paths import refuse_overwrite
from pearl.types import Result


def refinement_of(record: dict[str, Any]) -> Refinement | None:
    """The Refinement inside a Result (or an evaluation record holding one), if any.

    Raises pydantic's `ValidationError` when the line holds a result that does not
    validate or a Refinement written by another version.
    """
    result = record.get("result") if isinstance(record.get("result"), dict) else record
    if not isinstance(result, dict) or not isinstance(result.get("steps"), dict):
        return None
    return Result.model_validate(result).output_of(Refinement)


def rejected_iterations(ref: Refinement) -> list[Iteration]:
    """The iterations paired against the Pearl Point (see the module docstring)."""
    point = ref.pearl_point
    out = []
    for it in ref.iterations:
        if it.index == point.index or not it.judged:
            continue
        if it.index < point.index or it.safety.score < SAFETY_MAX:  # type: ignore[union-attr]
            if it.response.strip() != point.response.strip():
                out.append(it)
    return out


def pairs(ref: Refinement, *, text: bool = False, include_flagged: bool = False, metadata: bool = False) -> list[dict[str, Any]]:
    """The preference records of one refinement."""
    if not ref.pearl_point.judged or (ref.flagged and not include_flagged):
        return []
    conv = ref.conversation
    if text:
        prompt: Any = (f"system: {conv.system}\n" if conv.system else "") + conv.transcript()
    else:
        prompt = ([{"role": "system", "content": conv.system}] if conv.system else []) + [
            {"role": m.role, "content": m.content} for m in conv.messages]
    point = ref.pearl_point

    def answer(it: Iteration):
        return it.response if text else [{"role": "assistant", "content": it.response}]

    def scores(it: Iteration) -> dict[str, Any]:
        return {"index": it.index, "safety": it.safety.score, "satisfaction": it.satisfaction.score}  # type: ignore[union-attr]

    records = []
    for it in rejected_iterations(ref):
        record: dict[str, Any] = {"prompt": prompt, "chosen": answer(point), "rejected": answer(it)}
        if metadata:
            record["metadata"] = {"chosen": scores(point), "rejected": scores(it), "flagged": ref.flagged}
        records.append(record)
    return records


def read_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, JSON object) of every result line; a line that is not a JSON object is an error."""
    if not path.exists():
        raise InputError(f"{path}: no such file: save results with `pearl run --json ... >> {path}` or `pearl eval`")
    for line in read_lines(path):
        try:
            data = line.json()
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: line {line.number} is not JSON ({exc.msg}): write one JSON result per line "
                             f"(`pearl run --json` output compacted with `jq -c`)") from None
        if not isinstance(data, dict):
            raise InputError(f"{path}: line {line.number} is not a JSON object: write one result per line")
        yield line.number, data


def export_pairs(results: Path, out: Path, *, text: bool = False, include_flagged: bool = False,
                 metadata: bool = False) -> dict[str, int]:
    """Write the pairs of every result in `results` (JSON Lines) to `out`; returns counts.

    `out` must be neither `results` itself nor a folder (`InputError`, nothing written);
    it is replaced atomically, so a failure leaves no partial or temporary file, and it is not
    written at all when there is no pair.
    """
    refuse_overwrite(out, [results], flag="the pairs file")
    counts = {"results": 0, "refined": 0, "flagged_skipped": 0, "pairs": 0}
    records: list[dict[str, Any]] = []
    for n, data in read_records(results):
        counts["results"] += 1
        try:
            ref = refinement_of(data)
        except ValidationError as exc:
            raise InputError(f"{results}: line {n}: its result or Refinement does not validate "
                             f"({exc.errors()[0]['msg']}): it was written by another version, or edited") from None
        if ref is None:
            continue
        counts["refined"] += 1
        if ref.flagged and not include_flagged:
            counts["flagged_skipped"] += 1
        records.extend(pairs(ref, text=text, include_flagged=include_flagged, metadata=metadata))
    if counts["results"] == 0:
        raise InputError(f"{results}: the file holds no results: write one JSON result per line")
    if counts["refined"] == 0:
        raise InputError(f"{results}: no result has a refinement: run a pipeline with a `refine` step "
                         f"(e.g. `pearl run -p csa --json ...`)")
    counts["pairs"] = len(records)
    if records:  # no pairs: `out` is left as it is rather than emptied
        write_jsonl(out, records)
    return counts
