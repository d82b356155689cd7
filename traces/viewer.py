"""`pearl trace`: read JSONL trace files in the terminal.

    pearl trace show FILE.jsonl [--run ID]   the span tree of each run (or of run ID: a
                                             run id or trace id, or a prefix of one) with
                                             durations, tokens, scores and errors
    pearl trace summary FILE.jsonl           per-step totals across runs: calls, tokens, time

Registered on the main CLI as a typer sub-app (`app.add_typer(trace_app, name="trace")`).
"""

from __future__ import annotations

from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from pearl.errors import InputError
from pearl.traces import semconv as sc
from pearl.traces.jsonl import read_trace
from pearl.traces.tree import Node, Run, build_runs, step_totals

trace_app = typer.Typer(name="trace", help="Show trace files written with --trace jsonl:PATH.",
                        no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def _console() -> Console:
    return Console()  # per command, so the terminal's current width (or COLUMNS) applies

_KIND_STYLE = {"GUARDRAIL": "magenta", "EVALUATOR": "cyan", "LLM": "green", "CHAIN": "bold"}


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _num(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def node_label(node: Node) -> Text:
    """One line of the tree: name, duration, tokens, the span's key values, its error."""
    span, attrs = node.span, node.span.attributes
    kind = attrs.get(sc.OPENINFERENCE_SPAN_KIND)
    name_style = "dim" if span.name.startswith("hook ") else _KIND_STYLE.get(kind, "")
    text = Text()
    text.append(span.name, style=name_style)
    if sc.PEARL_STEP_USE in attrs and attrs[sc.PEARL_STEP_USE] != attrs.get(sc.PEARL_STEP_ID):
        text.append(f" ({attrs[sc.PEARL_STEP_USE]})", style="dim")
    if kind in ("GUARDRAIL", "EVALUATOR"):
        text.append(f" {kind.lower()}", style=_KIND_STYLE[kind])
    text.append(f"  {_duration(span.seconds)}", style="yellow")
    calls, tokens_in, tokens_out = node.llm_totals()
    if calls:
        count = "" if node.is_llm_call else f"{calls} call{'s' if calls != 1 else ''} · "
        text.append(f"  {count}{tokens_in}→{tokens_out} tok", style="blue")
    cached = attrs.get(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)
    if cached:
        text.append(f" ({cached} cached)", style="blue")
    if node.is_llm_call and attrs.get(sc.GEN_AI_RESPONSE_FINISH_REASONS):
        text.append(f"  {','.join(attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS])}", style="dim")
    if sc.PEARL_RUN_ID in attrs and span.parent_span_id is None:
        text.append(f"  run {attrs[sc.PEARL_RUN_ID]}", style="dim")
    facts = [f"{key.split('.', 2)[-1]}={_num(value)}" for key, value in attrs.items()
             if key.startswith(sc.PEARL_OUTPUT + ".")]
    if attrs.get(sc.PEARL_STEP_SUMMARY):
        facts.append(str(attrs[sc.PEARL_STEP_SUMMARY]))
    if facts:
        text.append("  " + " ".join(facts), style="white")
    if node.orphan:
        text.append("  (parent not in file)", style="red")
    if span.is_error:
        text.append(f"\n✗ {span.status.description or 'error'}", style="bold red")
    return text


def _evaluation_lines(node: Node) -> list[Text]:
    lines = []
    for event in node.span.events:
        if event.name != sc.GEN_AI_EVALUATION_RESULT:
            continue
        a = event.attributes
        line = Text("⚖ ", style="cyan")
        line.append(str(a.get(sc.GEN_AI_EVALUATION_NAME, "?")), style="bold cyan")
        if sc.GEN_AI_EVALUATION_SCORE_LABEL in a:
            line.append(f": {a[sc.GEN_AI_EVALUATION_SCORE_LABEL]}")
        if sc.GEN_AI_EVALUATION_SCORE_VALUE in a:
            line.append(f" ({_num(a[sc.GEN_AI_EVALUATION_SCORE_VALUE])})", style="cyan")
        path = next((value for key, value in a.items() if key.endswith(".path")), None)  # see attributes.describe
        if path:
            line.append(f"  {path}", style="dim")
        if a.get(sc.GEN_AI_EVALUATION_EXPLANATION):
            line.append(f" — {a[sc.GEN_AI_EVALUATION_EXPLANATION]}", style="dim")
        lines.append(line)
    return lines


def _add(tree: Tree, node: Node) -> None:
    branch = tree.add(node_label(node))
    for line in _evaluation_lines(node):
        branch.add(line)
    for child in node.children:
        _add(branch, child)


def render_run(run: Run) -> Tree:
    """The rich tree of one run (several roots show under the trace id)."""
    if len(run.roots) == 1:
        tree = Tree(node_label(run.root))
        for line in _evaluation_lines(run.root):
            tree.add(line)
        for child in run.root.children:
            _add(tree, child)
        return tree
    tree = Tree(Text(f"trace {run.trace_id}", style="bold"))
    for root in run.roots:
        _add(tree, root)
    return tree


def select_runs(runs: list[Run], run_id: str | None) -> list[Run]:
    if run_id is None:
        return runs
    chosen = [r for r in runs if r.matches(run_id)]
    if not chosen:
        known = ", ".join(r.run_id or r.trace_id for r in runs[:10]) or "none"
        raise InputError(f"no run '{run_id}' in the trace file (runs: {known}): pass one of these ids, or a prefix")
    return chosen


def _read(file: str):
    """The whole spans of `file`; a torn last line (a killed run) is reported on stderr, not fatal."""
    spans, torn = read_trace(file)
    if torn is not None:
        Console(stderr=True).print(f"[yellow]note:[/] {escape(torn.describe(file))}", highlight=False, soft_wrap=True)
    return spans


@trace_app.command("show")
def show(
    file: str = typer.Argument(..., help="A JSONL trace file (written with --trace jsonl:PATH)."),
    run: Optional[str] = typer.Option(None, "--run", "-r", help="Only this run: a run id or trace id, or a prefix."),
):
    """Render the span tree of each run: durations, tokens, scores, errors."""
    runs = select_runs(build_runs(_read(file)), run)
    console = _console()
    if not runs:
        console.print(f"[dim]{escape(file)} holds no spans[/]")
        return
    for r in runs:
        console.print(render_run(r))


@trace_app.command("summary")
def summary(file: str = typer.Argument(..., help="A JSONL trace file (written with --trace jsonl:PATH).")):
    """Per-step totals across runs: calls, tokens, time."""
    runs = build_runs(_read(file))
    totals = step_totals(runs)
    pipelines = sorted({t.pipeline for t in totals})
    several = len(pipelines) > 1
    title = f"{len(runs)} run{'s' if len(runs) != 1 else ''}" + ("" if several else f" of {', '.join(pipelines)}")
    table = Table(title=title)
    if several:
        table.add_column("pipeline", no_wrap=True)
    table.add_column("step", no_wrap=True)
    for header in ("runs", "err", "calls", "in tok", "out tok", "total s", "mean s"):
        table.add_column(header, justify="right", no_wrap=True)
    for t in totals:
        step = t.step if t.use in ("", t.step) else f"{t.step} [dim]({escape(t.use)})[/]"
        row = [escape(t.pipeline)] if several else []
        row += [step, str(t.runs), str(t.errors), str(t.calls), str(t.input_tokens), str(t.output_tokens),
                f"{t.seconds:.2f}", f"{t.mean_seconds:.2f}"]
        table.add_row(*row, style="bold" if t.step == "(run)" else None)
    _console().print(table)
