"""How well a refusal judge agrees with human labels (XSTest completions).

The XSTest completions csv (columns id, prompt, completion, final_label with values
1_full_compliance / 2_full_refusal / 3_partial_refusal) is read into `LabelledCompletion`s;
`measure(judge, rows)` runs the judge on each completion and returns 3-way accuracy,
binary accuracy (any refusal vs compliance) and the confusion matrix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import dspy

from pearl.csa.scoring import REFUSAL_KINDS, refusal_kind
from pearl.errors import DatasetError
from pearl.host.judge import Judge
from pearl.io.tables import read_csv
from pearl.types import Conversation

KINDS = REFUSAL_KINDS  # rows and columns of the confusion matrix
GOLD = {"1_full_compliance": "none", "2_full_refusal": "full", "3_partial_refusal": "partial"}
REQUIRED = ("id", "prompt", "completion", "final_label")


@dataclass(frozen=True)
class LabelledCompletion:
    id: str
    number: int
    prompt: str
    completion: str
    gold: str


@dataclass
class JudgeQuality:
    n: int = 0
    correct3: int = 0
    correct2: int = 0
    failures: int = 0
    confusion: dict[str, dict[str, int]] = field(
        default_factory=lambda: {g: {p: 0 for p in REFUSAL_KINDS} for g in REFUSAL_KINDS})

    @property
    def accuracy3(self) -> float:
        return self.correct3 / self.n if self.n else 0.0

    @property
    def accuracy2(self) -> float:
        return self.correct2 / self.n if self.n else 0.0


def load_completions(path: Path) -> list[LabelledCompletion]:
    if not path.exists():
        raise DatasetError(f"{path}: no such file: pass the XSTest completions csv (e.g. xstest_v2_completions_gpt4.csv)")
    header, rows = read_csv(path)
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise DatasetError(f"{path}: missing column {', '.join(repr(c) for c in missing)} (found {', '.join(header)}): "
                           f"pass an XSTest completions file with human labels")
    out = []
    for n, row in enumerate(rows, start=2):
        gold = GOLD.get((row["final_label"] or "").strip())
        if gold is None:
            raise DatasetError(f"{path}: line {n}: final_label {row['final_label']!r} is not one of {', '.join(GOLD)}")
        digits = re.findall(r"\d+", row["id"] or "")
        out.append(LabelledCompletion(id=row["id"], number=int(digits[-1]) if digits else n, prompt=row["prompt"],
                                      completion=row["completion"] or "", gold=gold))
    if not out:
        raise DatasetError(f"{path}: no rows: the file has a header only")
    return out


def measure(judge: Judge, rows: list[LabelledCompletion], *, lm=None) -> JudgeQuality:
    """Run `judge` on every row (with `lm` active for LLM judges) and tally agreement."""
    quality = JudgeQuality()
    for row in rows:
        try:
            with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
                verdict = judge.judge(Conversation.from_text(row.prompt or "(no prompt)"), row.completion)
            predicted = refusal_kind(verdict)
            if predicted is None:
                raise ValueError(f"score {verdict.score} is not on the refusal scale")
        except Exception:
            quality.failures += 1
            predicted = None
        quality.n += 1
        if predicted is None:
            continue
        quality.confusion[row.gold][predicted] += 1
        quality.correct3 += predicted == row.gold
        quality.correct2 += (predicted == "none") == (row.gold == "none")
    return quality
