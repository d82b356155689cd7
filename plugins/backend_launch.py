"""`pearl backend launch ENGINE`: start a model server of a built-in backend and print its URL.

A built-in plugin: it adds `launch` to the kernel's `pearl backend` group through
`register_commands`, because starting a server is the business of the backends it knows
(`sglang`, and llama.cpp's server used through the `openai` backend).
"""

from __future__ import annotations

import math
from typing import List, Optional

import typer
from rich.console import Console

from pearl.errors import InputError
from pearl.host.hookspecs import hookimpl

LAUNCHABLE = ("sglang", "llamacpp")
err_console = Console(stderr=True)


@hookimpl
def register_commands(cli):
    cli.command(launch, name="launch", group="backend")


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
    if port is not None and not 1 <= port <= 65535:
        raise InputError(f"--port {port}: give a port from 1 to 65535, or leave it out")
    if not (math.isfinite(timeout) and timeout > 0):
        raise InputError(f"--timeout {timeout}: give a positive number of seconds")
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
        from pearl.plugins.sglang import prompt_note

        err_console.print(f"[dim]{escape(prompt_note(url))}[/]")
    else:
        from pearl.lm.server_process import start_llama_cpp_server
        from pearl.plugins.llamacpp import default_model_path

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
