"""`pearl run --explain`: the kernel's part of the explanation, around what plugins render.

The kernel knows only what every `Result` has: the response (with the reasoning, when the
pipeline gives one) and each step's usage. Plugins add their own panels through
`register_commands` (`cli.explain(render, where=...)`): "before" renderers print above the
response panel, "after" renderers below the usage table.
"""

from __future__ import annotations

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from pearl.types import Result


def response_panel(result: Result) -> Panel:
    body = [Text(result.response)]
    if result.reasoning:
        body = [Text(result.reasoning, style="dim"), Text(""), *body]
    return Panel(Group(*body), title=f"response · {result.pipeline}", title_align="left")


def usage_table(result: Result) -> Table:
    table = Table(title="per-step usage", title_justify="left")
    for col in ("step", "calls", "prompt tok", "completion tok", "seconds"):
        table.add_column(col, justify="left" if col == "step" else "right")
    for sid, r in result.steps.items():
        table.add_row(sid, str(r.usage.calls), str(r.usage.prompt_tokens), str(r.usage.completion_tokens),
                      f"{r.seconds:.1f}")
    u = result.usage
    table.add_row("[bold]total[/]", str(u.calls), str(u.prompt_tokens), str(u.completion_tokens),
                  f"{result.seconds:.1f}")
    return table


def render(result: Result, console: Console, extras) -> None:
    """Plugins' "before" panels, the response, per-step usage, plugins' "after" panels."""
    extras.render("before", result, console)
    console.print(response_panel(result))
    console.print(usage_table(result))
    extras.render("after", result, console)
