"""Agreement between a judge and human labels: the numbers `pearl eval-judge` reports.

Pure functions of two aligned lists (`gold[i]` the human label of item i, `pred[i]` the
judge's), numpy only:

- categorical labels: `accuracy`, `per_class` precision / recall / F1, `cohen_kappa`,
  `confusion`; `categorical_report` bundles them with percentile-bootstrap 95% intervals
  over items for accuracy, kappa and macro F1;
- graded labels (numbers in [0, 1]): `spearman` (rank correlation, ties averaged) and
  `mean_absolute_error`, bundled with intervals by `graded_report`.

An item the judge gave no verdict is passed as `None` in `pred`: it counts as wrong
(it matches no class) and is counted in `failures`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Hashable, Sequence

import numpy as np

from pearl.evaluation.metrics import Estimate, bootstrap

NO_VERDICT = "(no verdict)"


def accuracy(gold: Sequence[Hashable], pred: Sequence[Hashable | None]) -> float:
    return float(np.mean([g == p for g, p in zip(gold, pred)])) if gold else float("nan")


def confusion(gold: Sequence[Hashable], pred: Sequence[Hashable | None], classes: Sequence[Hashable]) -> dict:
    """`{gold: {pred: count}}` over `classes` (plus a NO_VERDICT column when a prediction is None)."""
    columns = list(classes) + ([NO_VERDICT] if any(p is None for p in pred) else [])
    table = {g: {p: 0 for p in columns} for g in classes}
    for g, p in zip(gold, pred):
        table[g][NO_VERDICT if p is None else p] += 1
    return table


@dataclass(frozen=True)
class ClassScores:
    precision: float
    recall: float
    f1: float
    support: int  # human-labelled items of the class


def per_class(gold: Sequence[Hashable], pred: Sequence[Hashable | None], classes: Sequence[Hashable]) -> dict:
    """Class -> `ClassScores`; precision is NaN for a class the judge never predicted."""
    out = {}
    for c in classes:
        tp = sum(g == c and p == c for g, p in zip(gold, pred))
        predicted = sum(p == c for p in pred)
        support = sum(g == c for g in gold)
        precision = tp / predicted if predicted else float("nan")
        recall = tp / support if support else float("nan")
        f1 = 2 * tp / (predicted + support) if predicted + support else float("nan")
        out[c] = ClassScores(precision, recall, f1, support)
    return out


def macro_f1(gold, pred, classes) -> float:
    scores = [s.f1 for s in per_class(gold, pred, classes).values() if s.support]
    return float(np.mean(scores)) if scores else float("nan")


def cohen_kappa(gold: Sequence[Hashable], pred: Sequence[Hashable | None], classes: Sequence[Hashable]) -> float:
    """(p_o - p_e) / (1 - p_e); 1 when both raters use one and the same class throughout."""
    n = len(gold)
    if n == 0:
        return float("nan")
    p_o = sum(g == p for g, p in zip(gold, pred)) / n
    p_e = sum((sum(g == c for g in gold) / n) * (sum(p == c for p in pred) / n) for c in classes)
    if p_e >= 1.0:
        return 1.0 if p_o == 1.0 else 0.0
    return float((p_o - p_e) / (1 - p_e))


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=float)
    ranks[order] = np.arange(1, len(x) + 1)
    for value in np.unique(x):  # average the ranks of ties
        tied = x == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation (Pearson on average ranks); NaN when either side is constant."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    rx, ry = _ranks(x), _ranks(y)
    return float(np.corrcoef(rx, ry)[0, 1])


def mean_absolute_error(a: Sequence[float], b: Sequence[float]) -> float:
    return float(np.mean(np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)))) if len(a) else float("nan")


def _paired_bootstrap(n: int, stat: Callable[[np.ndarray], float], *, n_boot: int, seed: int) -> Estimate:
    """`stat` over item indices, with a percentile-bootstrap 95% interval."""
    return bootstrap(range(n), lambda idx: stat(idx.astype(int)), n_boot=n_boot, seed=seed)


@dataclass
class CategoricalReport:
    classes: list
    n: int
    failures: int
    accuracy: Estimate
    kappa: Estimate
    macro_f1: Estimate
    per_class: dict
    confusion: dict
    binary: "CategoricalReport | None" = None  # e.g. any refusal vs none, for a 3-way scale

    def as_dict(self) -> dict:
        out = {"classes": [str(c) for c in self.classes], "n": self.n, "failures": self.failures,
               "accuracy": asdict(self.accuracy), "kappa": asdict(self.kappa), "macro_f1": asdict(self.macro_f1),
               "per_class": {str(c): asdict(s) for c, s in self.per_class.items()},
               "confusion": {str(g): {str(p): v for p, v in row.items()} for g, row in self.confusion.items()}}
        if self.binary is not None:
            out["binary"] = self.binary.as_dict()
        return out


def _coded_stats(g: np.ndarray, p: np.ndarray, k: int) -> tuple[float, float, float]:
    """Accuracy, kappa and macro F1 of integer-coded labels (prediction -1: no verdict)."""
    n = len(g)
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    acc = float(np.mean(g == p))
    gc = np.bincount(g, minlength=k)[:k] / n
    pc = np.bincount(p[p >= 0], minlength=k)[:k] / n
    p_e = float(gc @ pc)
    kappa = (1.0 if acc == 1.0 else 0.0) if p_e >= 1.0 else (acc - p_e) / (1 - p_e)
    tp = np.bincount(g[g == p], minlength=k)[:k]
    denom = gc * n + pc * n
    f1 = [2 * tp[c] / denom[c] for c in range(k) if gc[c] > 0]
    return acc, float(kappa), float(np.mean(f1)) if f1 else float("nan")


def categorical_report(gold: list, pred: list, classes: Sequence[Hashable], *, n_boot: int = 1000, seed: int = 0,
                       binary: Callable[[Hashable], Hashable] | None = None) -> CategoricalReport:
    """Every categorical agreement figure, with bootstrap intervals; `binary` maps labels onto a 2-way scale too."""
    classes = list(classes)
    unknown = {x for x in gold if x not in classes}
    if unknown:
        raise ValueError(f"human labels {sorted(map(str, unknown))} are not among the classes {classes}")
    code = {c: i for i, c in enumerate(classes)}
    g = np.asarray([code[x] for x in gold], dtype=int)
    p = np.asarray([code.get(x, -1) if x is not None else -1 for x in pred], dtype=int)
    rng = np.random.default_rng(seed)
    point = _coded_stats(g, p, len(classes))
    if len(g):
        samples = np.array([_coded_stats(g[i], p[i], len(classes))
                            for i in rng.integers(0, len(g), size=(n_boot, len(g)))])
        low, high = np.nanpercentile(samples, 2.5, axis=0), np.nanpercentile(samples, 97.5, axis=0)
    else:
        low = high = np.full(3, np.nan)
    est = [Estimate(point[j], float(low[j]), float(high[j]), len(g)) for j in range(3)]
    report = CategoricalReport(classes=classes, n=len(gold), failures=sum(x is None for x in pred),
                               accuracy=est[0], kappa=est[1], macro_f1=est[2],
                               per_class=per_class(gold, pred, classes), confusion=confusion(gold, pred, classes))
    if binary is not None:
        two = list(dict.fromkeys(binary(c) for c in classes))
        report.binary = categorical_report([binary(x) for x in gold], [None if x is None else binary(x) for x in pred],
                                           two, n_boot=n_boot, seed=seed)
    return report


@dataclass
class GradedReport:
    n: int
    failures: int
    spearman: Estimate
    mae: Estimate

    def as_dict(self) -> dict:
        return {"n": self.n, "failures": self.failures, "spearman": asdict(self.spearman), "mae": asdict(self.mae)}


def graded_report(gold: list[float], pred: list[float | None], *, n_boot: int = 1000, seed: int = 0) -> GradedReport:
    """Spearman and MAE over the items with a verdict, with bootstrap intervals."""
    pairs = [(a, b) for a, b in zip(gold, pred) if b is not None]
    x = np.asarray([a for a, _ in pairs], dtype=float)
    y = np.asarray([b for _, b in pairs], dtype=float)
    kw = dict(n_boot=n_boot, seed=seed)
    return GradedReport(n=len(gold), failures=len(gold) - len(pairs),
                        spearman=_paired_bootstrap(len(pairs), lambda i: spearman(x[i], y[i]), **kw),
                        mae=_paired_bootstrap(len(pairs), lambda i: mean_absolute_error(x[i], y[i]), **kw))


@dataclass
class Cost:
    """What judging cost, per item: LM calls, tokens (prompt + completion) and wall seconds."""

    items: int = 0
    calls: int = 0
    tokens: int = 0
    seconds: float = 0.0
    by_tier: dict = field(default_factory=dict)  # which judge (tier of an ensemble) decided how many items

    def per_item(self) -> dict:
        n = max(self.items, 1)
        return {"calls": self.calls / n, "tokens": self.tokens / n, "seconds": self.seconds / n}
