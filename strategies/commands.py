"""The CSA application's part of the command line, contributed through `register_commands`.

A built-in plugin (entry point `pearl.strategies.commands`). It adds:

- `pearl run --refine N`: `set_refine_iterations` on the opened session;
- the `pearl run --explain` panels: the assessment, utility table, decision and chain
  (`pearl.strategies.explain.render`, before the response) and the scores of every
  refinement iteration (`render_explain`, after the per-step usage);
- `pearl export-pairs`: preference pairs from refinement histories.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from pearl.errors import InputError
from pearl.host.hookspecs import hookimpl
from pearl.types import Result

REFINE_STEP = "refine"
REFINE_PIPELINE = "csa"


@hookimpl
def register_commands(cli):
    from pearl.strategies.explain import render

    cli.run_option("refine", Optional[int],
                   typer.Option(None, "--refine", help="Lingo-BP iterations of the csa pipeline (0 disables refinement)."),
                   apply=set_refine_iterations)
    cli.explain(render, where="before")
    cli.explain(render_explain, where="after")
    cli.command(export_pairs_command, name="export-pairs")


def set_refine_iterations(session, n: int) -> None:
    """Make every `refine` step of the session's pipeline run `n` steps (0 disables refinement).

    The schedule keeps the pipeline's modes, cut to `n` or padded with its last mode.
    """
    if n < 0:
        raise InputError(f"--refine {n}: give the number of refinement iterations, 0 or more")
    steps = [s for s in session.pipeline.steps.values() if getattr(s, "name", None) == REFINE_STEP]
    if not steps:
        raise InputError(f"--refine: pipeline '{session.pipeline.name}' has no '{REFINE_STEP}' step: "
                         f"use a pipeline that refines (--pipeline {REFINE_PIPELINE})")
    for step in steps:
        configured = list(step.params.schedule) or ["both"]
        schedule = (configured + [configured[-1]] * n)[:n]
        step.params = step.params.model_copy(update={"schedule": schedule})


def refinement_records(result: Result):
    return [r for r in result.steps.values() if r.type.rsplit(".", 1)[-1] == "Refinement"]  # module.QualName or bare


def render_explain(result: Result, console: Console) -> None:
    """Scores per iteration, the Pearl Point, and why refinement stopped (nothing without a refinement)."""
    from pearl.csa.refinement import Refinement

    records = refinement_records(result)
    for record in records:
        ref = Refinement.model_validate(record.output)
        table = Table(title=f"Lingo-BP · step '{record.step}' · schedule {', '.join(ref.schedule) or '(off)'}",
                      title_justify="left")
        for col in ("#", "mode", "satisfaction", "safety", "user type", "nodes changed", "LM calls", "response"):
            table.add_column(col, overflow="fold")
        for it in ref.iterations:
            sat = f"{it.satisfaction.score:+.1f} {it.satisfaction.label}" if it.satisfaction else "—"
            safe = f"{it.safety.score:.1f} {it.safety.label}" if it.safety else "—"
            changed = ", ".join(u.node.replace("_", " ") for u in it.updates if u.after != u.before) or "—"
            marker = "★" if it.index == ref.chosen else ""
            preview = it.response if len(it.response) <= 80 else it.response[:79] + "…"
            if it.judge_error:
                safe = f"{safe} (unjudged)"
            table.add_row(f"{it.index}{marker}", it.mode or "draft", sat, safe,
                          it.safety.user_type if it.safety else "—", changed, str(it.usage.calls), preview)
        console.print(table)
        point = f"Pearl Point: iteration {ref.chosen}"
        if ref.flagged:
            point += f" [yellow](flagged: {ref.flag})[/]"
        console.print(point)
        console.print(f"stopped: {ref.stop_reason.replace('_', ' ')} — {ref.stop_detail}")
        u = ref.usage
        console.print(f"[dim]refinement: {u.calls} LM calls · {u.prompt_tokens} prompt + "
                      f"{u.completion_tokens} completion tokens[/]")


def export_pairs_command(
    results: Path = typer.Argument(..., help="Saved results, one JSON per line (`pearl run --json` or `pearl eval`)."),
    out: Path = typer.Argument(..., help="Where to write the preference pairs (JSON Lines)."),
    text: bool = typer.Option(False, "--text", help="Plain-text prompt and answers instead of chat messages."),
    include_flagged: bool = typer.Option(False, "--include-flagged",
                                         help="Also use results whose Pearl Point was not judged safe."),
    metadata: bool = typer.Option(False, "--metadata", help="Add each pair's iteration indices and scores."),
):
    """Write {"prompt", "chosen", "rejected"} pairs (TRL DPO/ORPO format) from refinement histories."""
    from pearl.csa.pairs import export_pairs

    counts = export_pairs(results, out, text=text, include_flagged=include_flagged, metadata=metadata)
    where = f"→ {out}" if counts["pairs"] else f"nothing written ({out} left as it was)"
    Console(stderr=True).print(
        f"{counts['pairs']} pairs from {counts['refined']} refined of {counts['results']} results "
        f"({counts['flagged_skipped']} flagged skipped) {where}")
