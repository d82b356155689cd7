"""The CSA panels of `pearl run --explain`: how a CSA run reached its answer.

Contributed by `pearl.strategies.commands` (`cli.explain(render, where="before")`): the
kernel prints them above the response panel and the per-step usage. Works from a `Result`
alone (each step's JSON output), so it also renders results read back from disk. Steps
are found by their output type, not their id: the assessment (`RiskAssessment`), the
utility table and choice (`Decision`), the chain (`Chain`), and what recombination had to
do to the reply (`Draft`, shown only when it rewrote or cut it); a pipeline without some of
them simply shows less, and a non-CSA pipeline nothing.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from pearl.csa import CHAIN_NODES
from pearl.types import Result


def _output(result: Result, type_name: str) -> dict | None:
    for record in result.steps.values():
        if record.type.rsplit(".", 1)[-1] == type_name:  # module.QualName, or bare in old files
            return record.output
    return None


def assessment_panel(a: dict) -> Panel:
    p = a["posterior"]
    form = f" ({a['attack_form']})" if a.get("attack_form") else ""
    lines = [
        f"[bold]category[/] {a['category']}  [dim]group[/] {a.get('group') or '-'}  [dim]taxonomy[/] {a['taxonomy']}",
        f"[bold]level[/] {a['level']}  [bold]interaction[/] {a['interaction']}{form}  [bold]severity[/] {a['severity']:.2f}",
        f"[bold]user types[/] benign {p['benign']:.2f} · sensitive {p['sensitive']:.2f} · malicious {p['malicious']:.2f}",
    ]
    if a.get("readings"):
        read = " · ".join(f"{k} {v:.2f}" for k, v in a["readings"].items())
        lines[-1] += f"  [dim](read from P(yes): {escape(read)})[/]"
    if a.get("repairs"):
        lines.append("[bold]repaired[/]\n" + "\n".join(f"  - {escape(r)}" for r in a["repairs"]))
    if a.get("guideline"):
        lines.append("[bold]guideline[/]\n" + "\n".join(f"  {i}. {r}" for i, r in enumerate(a["guideline"], 1)))
    if a.get("rationale"):
        lines.append(f"[bold]rationale[/] {a['rationale']}")
    return Panel("\n".join(lines), title="risk assessment", title_align="left")


def utility_table(d: dict) -> Table:
    table = Table(title=(f"Pearl Point: α={d['alpha']:g} β={d['beta']:g} γ={d['gamma']:g} "
                         f"τ={d['tau']:g} ε={d['epsilon']:g}"), title_justify="left")
    for col in ("strategy", "E[U]", "E[retention]", "E[risk]", "worst risk", "cost", "admissible"):
        table.add_column(escape(col), justify="left" if col == "strategy" else "right")
    for row in sorted(d["table"], key=lambda r: -r["expected_utility"]):
        chosen = row["strategy"] == d["strategy"]
        table.add_row(
            ("▶ " if chosen else "  ") + row["strategy"],
            f"{row['expected_utility']:.3f}", f"{row['expected_retention']:.2f}", f"{row['expected_risk']:.2f}",
            f"{row['worst_risk']:.2f}", f"{row['cost']:.2f}", "yes" if row["admissible"] else "[red]no[/]",
            style="bold green" if chosen else None,
        )
    return table


def decision_panel(d: dict) -> Panel:
    flag = "" if d["admissible"] else "\n[bold red]no strategy was inside the safety boundary[/]"
    chosen = d.get("chosen") or {}
    what = f"\n[dim]{chosen.get('summary', '')}[/]" if chosen else ""
    return Panel(f"[bold]{d['strategy']}[/]{what}\n{d['reason']}{flag}", title="decision", title_align="left")


def chain_panel(c: dict) -> Panel:
    labels = {"user_needs": "user needs", "risk_intent": "risk intent", "safety_guidelines": "safety guidelines",
              "safety_strategies": "safety strategies", "usefulness_strategies": "usefulness strategies"}
    parts = []
    for node in CHAIN_NODES:
        value = c.get(node)
        if isinstance(value, list):
            body = "\n".join(f"  {i}. {v}" for i, v in enumerate(value, 1)) or "  (none)"
        else:
            body = f"  {value or '(none)'}"
        parts.append(f"[bold]{labels[node]}[/]\n{body}")
    return Panel("\n".join(parts), title="reasoning chain", title_align="left")


#: How `Draft.held_back_by` reads in the panel.
HELD_BACK_BY = {
    "moves": "written again from the chain's moves",
    "decline": "replaced by a short decline the model wrote, after two rewrites from the chain's moves that were "
               "unusable or carried the request out too",
    "fixed": "replaced by the boundary's fixed decline, since neither two rewrites nor a short decline kept the "
             "boundary",
}


def recombination_panel(draft: dict | None, refinement: dict | None = None) -> Panel | None:
    """What recombination had to do to the reply (`Draft.held_back`, `Draft.followed_through`, `Draft.scrubbed`,
    and the Lingo-BP iterations written again to keep the decision's boundary); None when nothing."""
    notes = []
    if draft and draft.get("held_back"):
        how = HELD_BACK_BY.get(draft.get("held_back_by"), HELD_BACK_BY["moves"])  # older records: moves
        notes.append(f"the first reply carried out a request the decision declines; it was {how}")
    if draft and draft.get("followed_through"):
        notes.append("the first reply refused a request the decision answers; it was written again from the chain's "
                     "moves")
    if draft and draft.get("scrubbed"):
        notes.append("sentences were removed: framework vocabulary, the chain's analysis, or repeats")
    held = [str(it["index"]) for it in (refinement or {}).get("iterations", []) if it["index"] and it.get("held_back")]
    if held:
        notes.append(f"Lingo-BP iteration{'s' if len(held) > 1 else ''} {', '.join(held)} carried out the declined "
                     f"request and {'were' if len(held) > 1 else 'was'} written again")
    return Panel("\n".join(notes), title="recombination", title_align="left") if notes else None


def render(result: Result, console: Console) -> None:
    """Print the explanation of `result` (see the module docstring)."""
    if (a := _output(result, "RiskAssessment")) is not None:
        console.print(assessment_panel(a))
    if (d := _output(result, "Decision")) is not None:
        console.print(utility_table(d))
        console.print(decision_panel(d))
    if (c := _output(result, "Chain")) is not None:
        console.print(chain_panel(c))
    if (panel := recombination_panel(_output(result, "Draft"), _output(result, "Refinement"))) is not None:
        console.print(panel)
