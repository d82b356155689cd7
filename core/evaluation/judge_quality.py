"""How well a judge agrees with human labels: `pearl eval-judge JUDGE --labels SET:PATH`.

A labelled set is a dataset plugin whose items carry `response`, `human`, `scale`,
`group` and `source` labels (see `pearl.plugins.labelled_sets`). `measure` runs a judge
on every (prompt, response) and compares its verdict, read on the set's scale by
`read_verdict`, with the human label:

- categorical scales (refusal3, refusal2, achieved, risky): accuracy, per-class
  precision / recall / F1, Cohen's kappa, the confusion matrix, bootstrap 95% intervals
  (`pearl.evaluation.agreement`); refusal3 also on the binary scale (refuse / comply);
- the graded scales (harm, help in [0, 1]): Spearman correlation and mean absolute error;
- cost: LM calls, tokens and seconds per item, and which judge of an ensemble decided
  how many items (a verdict's `decided_by`).

`split_of(group, seed)` is the documented dev / test split: a response is on the dev side
when the first 8 bytes of sha256("{seed}:{prompt}") read as an integer are even, so the
split is by prompt (every model's answer to one prompt lands on the same side), stable
across machines, and half / half in expectation. Tune on dev, report on test.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import dspy

from pearl.errors import InputError, PearlError
from pearl.evaluation.agreement import (CategoricalReport, Cost, GradedReport, categorical_report, graded_report)
from pearl.host.dataset import Item, split_of  # noqa: F401  (split_of: part of this module's API)
from pearl.host.judge import Judge, Judgement
from pearl.lm.usage import meter
from pearl.types import Conversation

SCALE_CLASSES: dict[str, tuple[str, ...]] = {
    "refusal3": ("none", "full", "partial"),
    "refusal2": ("comply", "refuse"),
    "achieved": ("not achieved", "achieved"),
    "risky": ("not risky", "risky"),
}
GRADED = ("harm", "help")
BINARY: dict[str, Callable[[str], str]] = {"refusal3": lambda k: "comply" if k == "none" else "refuse"}
SPLITS = ("all", "dev", "test")
# `--labels` names that stand for a labelled set under another name.
ALIASES = {"xstest": "xstest-completions", "jsonl": "labels-jsonl"}


class ScaleMismatch(InputError):
    """The judge's verdicts say nothing on the labels' scale: the measurement stops at its first row."""


@dataclass(frozen=True)
class LabelledRow:
    id: str
    conversation: Conversation
    response: str
    human: Any
    scale: str
    group: str
    source: str
    labels: dict


def rows_from_items(items: Iterable[Item], name: str) -> list[LabelledRow]:
    """The labelled rows of a dataset's items; an item without a human label is an `InputError`."""
    rows = []
    for item in items:
        lab = item.labels
        missing = [k for k in ("response", "human", "scale") if k not in lab]
        if missing:
            raise InputError(f"dataset '{name}' item {item.id} has no {', '.join(missing)} label: it is not a labelled "
                             f"set; use one of xstest-completions, xstest-help, xstest-harm, pyrit-refusal, "
                             f"pyrit-objective, pyrit-harm, openai-moderation, labels-jsonl")
        rows.append(LabelledRow(item.id, item.conversation, str(lab["response"]), lab["human"], str(lab["scale"]),
                                str(lab.get("group") or item.conversation.transcript()), str(lab.get("source", name)),
                                dict(lab)))
    return rows


def select_split(rows: list[LabelledRow], split: str, seed: int = 0) -> list[LabelledRow]:
    if split not in SPLITS:
        raise InputError(f"--split {split}: use all, dev or test")
    return rows if split == "all" else [r for r in rows if split_of(r.group, seed) == split]


def read_verdict(judgement: Judgement | dict, scale: str) -> Any:
    """The judge's verdict on `scale`; a `PearlError` when this judge says nothing on that scale.

    Refusal judgements (a `refusal` field: full / partial / none) read on the refusal scales,
    and as a pre-filter on `achieved` (a reply that refuses does not achieve the objective).
    Safety judgements (a `verdict`: safe / mostly safe / unsafe) read on `achieved` (unsafe
    means achieved), `harm` (1 - score) and `risky` (unsafe means risky). Risk-flag
    judgements (a boolean `risky`) read on `risky`. Satisfaction judgements (five `items`)
    read on `help` as (score + 1) / 2.
    """
    data = judgement if isinstance(judgement, dict) else judgement.model_dump()
    kind = data.get("refusal")
    if kind in SCALE_CLASSES["refusal3"]:
        readers = {"refusal3": kind, "refusal2": BINARY["refusal3"](kind),
                   "achieved": "achieved" if kind == "none" else "not achieved"}
        if scale in readers:
            return readers[scale]
    if isinstance(data.get("risky"), bool) and scale == "risky":
        return "risky" if data["risky"] else "not risky"
    if isinstance(data.get("items"), dict) and scale == "help":  # a satisfaction judgement: score in [-1, 1]
        return (float(data["score"]) + 1.0) / 2.0
    verdict = data.get("verdict")
    if verdict in ("safe", "mostly safe", "unsafe"):
        readers = {"achieved": "achieved" if verdict == "unsafe" else "not achieved",
                   "harm": 1.0 - float(data["score"]), "risky": "risky" if verdict == "unsafe" else "not risky"}
        if scale in readers:
            return readers[scale]
    raise ScaleMismatch(f"judge '{data.get('judge')}' gives no verdict on the '{scale}' scale: measure a refusal judge on "
                        f"refusal labels, a safety judge on pyrit-objective, xstest-harm, pyrit-harm or "
                        f"openai-moderation, a satisfaction judge on xstest-help")


@dataclass
class Measurement:
    judge: str
    model: str
    labels: str
    split: str
    seed: int
    scale: str
    n: int
    categorical: CategoricalReport | None = None
    graded: GradedReport | None = None
    per_source: dict[str, CategoricalReport | GradedReport] = field(default_factory=dict)
    cost: Cost = field(default_factory=Cost)
    errors: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)  # e.g. category agreement of a risk flag

    def as_dict(self) -> dict:
        out = {"judge": self.judge, "model": self.model, "labels": self.labels, "split": self.split, "seed": self.seed,
               "scale": self.scale, "n": self.n,
               "cost_per_item": self.cost.per_item(), "decided_by": dict(self.cost.by_tier),
               "errors": self.errors[:5], **self.extra}
        if self.categorical is not None:
            out["categorical"] = self.categorical.as_dict()
        if self.graded is not None:
            out["graded"] = self.graded.as_dict()
        out["per_source"] = {s: r.as_dict() for s, r in self.per_source.items()}
        return out


def _report(scale: str, gold: list, pred: list, *, n_boot: int, seed: int):
    if scale in GRADED:
        return graded_report(gold, pred, n_boot=n_boot, seed=seed)
    return categorical_report(gold, pred, SCALE_CLASSES[scale], n_boot=n_boot, seed=seed, binary=BINARY.get(scale))


def codes_of(verdict) -> list[str] | None:
    """The moderation codes a risk verdict maps its category to; None for a verdict that names no category."""
    codes = getattr(verdict, "moderation", None)
    return None if codes is None else sorted(codes)


def judge_row(judge: Judge, row: LabelledRow, scale: str, lm=None) -> dict[str, Any]:
    """Judge one row; the verdict record `measure` keeps (and `--verdicts` files hold, one per line)."""
    t0 = time.perf_counter()
    record: dict[str, Any] = {"id": row.id, "judge": judge.name, "pred": None, "codes": None, "tier": "(no verdict)",
                              "model": "", "error": None}
    with meter() as usage:
        try:
            with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
                verdict = judge.judge(row.conversation, row.response, category=row.labels.get("category") or None)
            record.update(pred=read_verdict(verdict, scale), codes=codes_of(verdict),
                          tier=getattr(verdict, "decided_by", "") or verdict.judge,
                          model=getattr(verdict, "model", "") or "")
        except ScaleMismatch:  # every row would fail alike: say so now, not after judging them all
            raise
        except Exception as exc:  # a judge failing on one row is a wrong answer, not the end of the measurement
            record["error"] = f"{row.id}: {type(exc).__name__}: {exc}"
    record.update(calls=usage.total.calls, tokens=usage.total.prompt_tokens + usage.total.completion_tokens,
                  seconds=time.perf_counter() - t0)
    return record


def read_verdicts(path, judge: str) -> dict[str, dict[str, Any]]:
    """The verdict records of a `--verdicts` file, by row id; refuses a file written by another judge."""
    from pathlib import Path

    from pearl.io.jsonl import parsed

    path = Path(path)
    if not path.exists():
        return {}
    found: dict[str, dict[str, Any]] = {}
    for number, value in parsed(path):
        if not isinstance(value, dict) or "id" not in value or "pred" not in value:
            raise InputError(f"{path}: line {number} is not a verdict record: give --verdicts a new file")
        if value.get("judge") != judge:
            raise InputError(f"{path}: holds verdicts of judge '{value.get('judge')}', not '{judge}': "
                             f"give --verdicts another file")
        found[str(value["id"])] = value
    return found


def measure(judge: Judge, rows: list[LabelledRow], *, lm=None, labels: str = "", split: str = "all", seed: int = 0,
            n_boot: int = 1000, model: str = "", verdicts=None,
            on_verdict: Callable[[dict[str, Any]], None] | None = None) -> Measurement:
    """Run `judge` on every row (with `lm` active when the judge uses one) and compare with the human labels.

    `model` names what the judge ran on; when empty, the `model` fields of its verdicts are used.
    A row the judge cannot judge (it raises) counts as wrong and its error is kept (first five).
    `verdicts`: a JSONL path; each row's verdict record is appended as soon as it is made, and
    rows already there (same judge) are read back instead of judged again, so a long LLM-judge
    measurement that stops resumes where it stopped. `on_verdict` is called after each row.
    """
    from pearl.io.jsonl import JsonlAppender

    scales = {r.scale for r in rows}
    if len(scales) != 1:
        raise InputError(f"the rows mix label scales {sorted(scales)}: measure one labelled set at a time")
    scale = scales.pop() if rows else "refusal3"
    done = read_verdicts(verdicts, judge.name) if verdicts is not None else {}
    writer = JsonlAppender(verdicts) if verdicts is not None else None
    records: list[dict[str, Any]] = []
    try:
        for row in rows:
            record = done.get(row.id)
            if record is None:
                record = judge_row(judge, row, scale, lm)
                if writer is not None:
                    writer.append(record)
            records.append(record)
            if on_verdict is not None:
                on_verdict(record)
    finally:
        if writer is not None:
            writer.close()
    preds = [r["pred"] for r in records]
    codes = [None if r["error"] or r["codes"] is None else set(r["codes"]) for r in records]
    tiers = Counter(r["tier"] for r in records)
    models = Counter(r["model"] for r in records if r["model"])
    errors = [r["error"] for r in records if r["error"]][:5]
    cost = Cost(items=len(rows), calls=sum(r["calls"] for r in records), tokens=sum(r["tokens"] for r in records),
                seconds=sum(r["seconds"] for r in records), by_tier=dict(tiers))
    gold = [r.human for r in rows]
    m = Measurement(judge=judge.name, model=model or ", ".join(sorted(models)), labels=labels, split=split, seed=seed, scale=scale, n=len(rows),
                    cost=cost, errors=errors)
    report = _report(scale, gold, preds, n_boot=n_boot, seed=seed)
    if scale in GRADED:
        m.graded = report
    else:
        m.categorical = report
    if scale == "risky":
        both = [(set(str(r.labels.get("category", "")).split(",")) - {""}, c)
                for r, p, c in zip(rows, preds, codes) if r.human == "risky" and p == "risky" and c is not None]
        if both:
            m.extra["category_agreement"] = {"items": len(both), "share": sum(bool(h & c) for h, c in both) / len(both),
                                             "means": "texts both call risky whose mapped codes include a human one"}
    sources = sorted({r.source for r in rows})
    if len(sources) > 1:
        for s in sources:
            idx = [i for i, r in enumerate(rows) if r.source == s]
            m.per_source[s] = _report(scale, [gold[i] for i in idx], [preds[i] for i in idx], n_boot=min(n_boot, 200),
                                      seed=seed)
    return m
