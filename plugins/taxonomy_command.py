"""`pearl taxonomy`: show a registered risk taxonomy, list them, or load a risk_rules.xlsx.

A built-in plugin: it contributes the command through `register_commands`, beside the
taxonomy plugins it reads (`pearl.plugins.taxonomy`, `pearl.plugins.taxonomy_xlsx`).
"""

from __future__ import annotations

from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from pearl.errors import InputError
from pearl.host.hookspecs import hookimpl

DEFAULT_TAXONOMY = "oyster"


@hookimpl
def register_commands(cli):
    cli.command(taxonomy_command, name="taxonomy")


def taxonomy_command(
    name: Optional[str] = typer.Argument(None, help=f"A registered taxonomy (default: {DEFAULT_TAXONOMY})."),
    rules: bool = typer.Option(False, "--rules", "-r", help="Show each category's guideline rules."),
    list_: bool = typer.Option(False, "--list", "-l", help="List the registered taxonomies."),
    from_xlsx: Optional[str] = typer.Option(None, "--from-xlsx", metavar="FILE",
                                            help="Load a workbook in the Oyster-I risk_rules.xlsx format."),
    table: bool = typer.Option(False, "--table", help="With --from-xlsx: also print the full sheet-2 table."),
    as_json: bool = typer.Option(False, "--json", help="Print the taxonomy as JSON."),
):
    """Show a risk taxonomy as a table: category id, name, group and number of rules."""
    from pearl.host.manager import get_host
    from pearl.csa.taxonomy import get_taxonomy, taxonomy_names

    console = Console()
    if list_ and (name or from_xlsx):
        raise InputError("--list lists all taxonomies: drop NAME / --from-xlsx, or drop --list")
    if name and from_xlsx:
        raise InputError(f"give either a taxonomy NAME ('{name}') or --from-xlsx FILE, not both")
    if table and not from_xlsx:
        raise InputError("--table shows sheet 2 of a workbook: use it with --from-xlsx FILE")
    host = get_host()
    if list_:
        _print_list(console, host, taxonomy_names(host), as_json)
        return
    parsed = None
    if from_xlsx:
        from pearl.plugins.taxonomy_xlsx import read_xlsx

        parsed = read_xlsx(from_xlsx)
        taxonomy = parsed.taxonomy
    else:
        taxonomy = get_taxonomy(host, name or DEFAULT_TAXONOMY)
    if as_json:
        typer.echo(taxonomy.model_dump_json(indent=2))
        return
    _print_taxonomy(console, taxonomy, rules)
    if parsed is not None:
        counts = {tier: len(parsed.rows(tier)) for tier in ("group", "category", "unknown")}
        published = sum(1 for r in parsed.rows("category") if r.published)
        console.print(f"sheet 2: {counts['group']} groups, {counts['category']} categories "
                      f"({published} published), {counts['unknown']} unknown row(s)")
        if table:
            _print_table(console, parsed)


def _print_list(console: Console, host, names: list[str], as_json: bool) -> None:
    import json

    from pearl.csa.taxonomy import get_taxonomy

    rows = []
    for n in names:
        tax = get_taxonomy(host, n)
        rows.append({"name": n, "plugin": host.registries["taxonomies"].entries[n].plugin,
                     "groups": len(tax.groups), "categories": len(tax.categories), "description": tax.description})
    if as_json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    out = Table(title="registered taxonomies")
    out.add_column("name", overflow="fold")
    out.add_column("plugin", overflow="fold")
    out.add_column("groups", justify="right")
    out.add_column("categories", justify="right")
    out.add_column("description", ratio=1)
    for r in rows:
        out.add_row(r["name"], r["plugin"], str(r["groups"]), str(r["categories"]), r["description"])
    console.print(out)


def _print_taxonomy(console: Console, taxonomy, rules: bool) -> None:
    group_names = {g.id: g.name for g in taxonomy.groups}
    out = Table(title=f"taxonomy '{taxonomy.name}'", caption=taxonomy.description or None, show_lines=rules)
    out.add_column("id", overflow="fold")
    out.add_column("name")
    out.add_column("group")
    out.add_column("rules", justify="right")
    if rules:
        out.add_column("guideline", ratio=3)
    for c in taxonomy.categories:
        name = c.name + (f"\n[dim]{c.names['zh']}[/]" if c.names.get("zh") else "")
        row = [c.id, name, group_names.get(c.group, c.group), str(len(c.guideline))]
        if rules:
            row.append("\n".join(f"{i}. {rule}" for i, rule in enumerate(c.guideline, 1)))
        out.add_row(*row)
    console.print(out)
    levels = ", ".join(f"{k} {v}" for k, v in taxonomy.levels.items())
    console.print(f"{len(taxonomy.categories)} categories in {len(taxonomy.groups)} groups · levels: {levels}",
                  highlight=False)


def _print_table(console: Console, parsed) -> None:
    out = Table("row", "tier", "id", "name", "group", "published", "description", title="sheet 2")
    out.columns[2].overflow = out.columns[4].overflow = "fold"
    for r in parsed.table:
        out.add_row(str(r.row), r.tier, r.id, f"{r.name}\n[dim]{r.name_zh}[/]", r.group or "",
                    "yes" if r.published else "no", r.description)
    console.print(out)
