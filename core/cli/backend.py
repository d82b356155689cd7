"""`pearl backend ...`: check which backends are reachable.

Registered on the main app with `app.add_typer(backend_app, name="backend")`. Plugins add
commands to this group through `register_commands` (`pearl backend launch` comes from
the built-in plugin `pearl.plugins.backend_launch`).
"""

from __future__ import annotations

from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from pearl.errors import InputError, PearlError

backend_app = typer.Typer(name="backend", help="Launch model servers; check which backends are reachable.",
                          no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
console = Console()


@backend_app.command()
def check(
    backend: Optional[str] = typer.Option(None, "--backend", "-b", help="Check only this backend (environment: PEARL_BACKEND)."),
    backend_url: Optional[str] = typer.Option(None, "--backend-url", help="Server URL (environment: PEARL_BACKEND_URL)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model path or id (environment: PEARL_MODEL)."),
):
    """Report which backends are reachable and ready (one line each)."""
    from pearl.host.backend import BackendSettings
    from pearl.host.manager import get_host

    host = get_host()
    settings = BackendSettings.from_environment().merged(name=backend, url=backend_url, model=model)
    names = [settings.name] if backend or settings.name != "llamacpp" else host.registries["backends"].names()
    table = Table("backend", "status", "detail")
    failures = []
    for name in names:
        try:
            cls = host.backend(name)
        except PearlError as exc:
            raise InputError(f"{exc} (pearl plugins lists them)") from None
        own = settings.merged(name=name)
        try:
            detail = cls().check(own)
            table.add_row(name, "[green]ready[/]", detail)
        except PearlError as exc:
            failures.append((name, str(exc)))
            table.add_row(name, "[red]unreachable[/]", str(exc))
    console.print(table)
    if backend and failures:
        raise SystemExit(2)
