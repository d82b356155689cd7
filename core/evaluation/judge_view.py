"""The terminal view of a judge measurement (`pearl eval-judge` without `--json`)."""

from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table

from pearl.evaluation.agreement import CategoricalReport, GradedReport
from pearl.evaluation.judge_quality import Measurement


def _f(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def _categorical(rep: CategoricalReport, console: Console, title: str) -> None:
    console.print(f"[bold]{title}[/]: accuracy {rep.accuracy.fmt(1, 3)} · Cohen's κ {rep.kappa.fmt(1, 3)} · "
                  f"macro F1 {rep.macro_f1.fmt(1, 3)} (95% bootstrap intervals)")
    per = Table("class", "precision", "recall", "F1", "human n", title=f"{title}: per class")
    for c, s in rep.per_class.items():
        per.add_row(str(c), _f(s.precision), _f(s.recall), _f(s.f1), str(s.support))
    console.print(per)
    columns = list(next(iter(rep.confusion.values())).keys()) if rep.confusion else []
    conf = Table("human \\ judge", *map(str, columns), title=f"{title}: confusion matrix (rows: human label)")
    for gold, row in rep.confusion.items():
        conf.add_row(str(gold), *(str(row[c]) for c in columns))
    console.print(conf)


def _graded(rep: GradedReport, console: Console) -> None:
    console.print(f"[bold]graded[/]: Spearman {rep.spearman.fmt(1, 3)} · mean absolute error {rep.mae.fmt(1, 3)} "
                  f"(95% bootstrap intervals, {rep.n - rep.failures} items with a verdict)")


def render_measurement(m: Measurement, console: Console) -> None:
    model = f" · model {m.model}" if m.model else ""
    console.print(f"[bold]{m.judge}[/]{model} on {m.labels} (split {m.split}, {m.n} items, scale {m.scale})")
    if m.categorical is not None:
        _categorical(m.categorical, console, m.scale)
        if m.categorical.binary is not None:
            _categorical(m.categorical.binary, console, "binary (refuse vs comply)")
    if m.graded is not None:
        _graded(m.graded, console)
    if m.per_source:
        table = Table("source", "n", "accuracy", "κ", "binary accuracy", "Spearman", "MAE", title="per source")
        for source, rep in m.per_source.items():
            if isinstance(rep, GradedReport):
                table.add_row(source, str(rep.n), "", "", "", _f(rep.spearman.value), _f(rep.mae.value))
            else:
                binary = _f(rep.binary.accuracy.value) if rep.binary is not None else ""
                table.add_row(source, str(rep.n), _f(rep.accuracy.value), _f(rep.kappa.value), binary, "", "")
        console.print(table)
    agreement = m.extra.get("category_agreement")
    if agreement:
        console.print(f"category: on {agreement['items']} texts both call risky, {agreement['share']:.3f} of the judge's "
                      f"categories map to a moderation code the humans flagged")
    cost = m.cost.per_item()
    console.print(f"cost per item: {cost['calls']:.2f} LM calls · {cost['tokens']:.0f} tokens · "
                  f"{cost['seconds'] * 1000:.1f} ms")
    console.print("decided by: " + ", ".join(f"{k} {v}" for k, v in sorted(m.cost.by_tier.items())))
    failures = (m.categorical or m.graded).failures if (m.categorical or m.graded) else 0
    if failures:
        console.print(f"[yellow]{failures} items got no verdict (counted as wrong)[/]")
        for e in m.errors:
            console.print(f"  {e}", markup=False)
