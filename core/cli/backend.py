"""`pearl backend ...`: launch model servers and check which backends are reachable.

Registered on the main app with `app.add_typer(backend_app, name="backend")`.
"""

from __future__ import annotations

from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from pearl.errors import InputError, PearlError

backend_app = typer.Typer(name="backend", help="Launch model servers; check which backends are reachable.",
                          no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
console = Console()
err_console = Console(stderr=True)

LAUNCHABLE = ("sglang", "llamacpp")


@backend_app.command()
def launch(
    engine: str = typer.Argument(..., help="What to launch: sglang (GPU) or llamacpp (llama_cpp.server, CPU)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model path or id (llamacpp: a GGUF; default: the embedded one)."),
    port: Optional[int] = typer.Option(None, "--port", help="Port on 127.0.0.1 (sglang default 30000; llamacpp: a free one)."),
    timeout: float = typer.Option(900.0, "--timeout", help="Seconds to wait until the server is healthy."),
    detach: bool = typer.Option(False, "--detach", help="Leave the server running in the background and return."),
    extra: Optional[List[str]] = typer.Argument(None, help="Further arguments for the server, after `--`."),
):
    """Start a model server on 127.0.0.1, wait until it is healthy and print its URL."""
    if engine not in LAUNCHABLE:
        raise InputError(f"cannot launch '{engine}': choose one of {', '.join(LAUNCHABLE)}")
    if engine == "sglang":
        from rich.markup import escape

        from pearl.plugins.sglang_launcher import DEFAULT_PORT, launch_command, launch_sglang, sglang_installed

        if not model:
            raise InputError("pearl backend launch sglang needs --model PATH_OR_ID")
        if sglang_installed():
            cmd = " ".join(launch_command(model, port or DEFAULT_PORT, extra or []))
            err_console.print(f"[dim]starting: {escape(cmd)}[/]")
        server = launch_sglang(model, port=port or DEFAULT_PORT, extra=extra or [], timeout=timeout)
        backend, url = "sglang", server.url
    else:
        from pearl.plugins.llamacpp import default_model_path
        from pearl.lm.server_process import start_llama_cpp_server

        server = start_llama_cpp_server(model or default_model_path(), port=port, timeout=timeout)
        backend, url = "openai", server.url
    typer.echo(url)
    err_console.print(f"[green]ready[/] · use it with [bold]--backend {backend} --backend-url {url}[/] "
                      f"(or PEARL_BACKEND={backend} PEARL_BACKEND_URL={url}) · log {server.log_path}")
    if detach:
        err_console.print(f"[dim]running in the background as pid {server.pid}; stop it with `kill {server.pid}`[/]")
        return
    err_console.print("[dim]press Ctrl-C to stop it[/]")
    try:
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


@backend_app.command()
def check(
    backend: Optional[str] = typer.Option(None, "--backend", "-b", help="Check only this backend [env: PEARL_BACKEND]."),
    backend_url: Optional[str] = typer.Option(None, "--backend-url", help="Server URL [env: PEARL_BACKEND_URL]."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model path or id [env: PEARL_MODEL]."),
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
