"""The `pearl` command line (typer + rich).

`app` holds the kernel's commands; `application()` returns the command users run: `app`
plus what plugins contribute through `register_commands` (commands such as `pearl
taxonomy` and `pearl export-pairs`, options of `pearl run`, `--explain` panels; see
`pearl.cli.contributions`). `main()` runs `application()`; in-process tests invoke it with
`typer.testing.CliRunner().invoke(application(), [...])`.
"""

from __future__ import annotations

import os
import sys
from typing import Optional

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from pearl.cli.contributions import RUN_EXTRAS, RunExtras
from pearl.errors import InputError, PearlError
from pearl.host.hookspecs import hookimpl
from pearl.pipelines import DEFAULT_PIPELINE, NO_COMPILED

app = typer.Typer(
    name="pearl",
    help="Constructive safety alignment: assess risk, anticipate reactions, answer at the Pearl Point.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
console = Console()
err_console = Console(stderr=True)


def _read_conversation(text: Optional[str], file: Optional[str]):
    from pearl.io.conversations import decode_input, parse_conversation_json, read_conversation_file, to_conversation
    from pearl.io.jsonl import read_bounded

    if file and text:
        raise InputError("give either TEXT or --file, not both")
    if file == "-" or text == "-":  # bytes, decoded here: invalid UTF-8 is refused before any model call
        stdin = getattr(sys.stdin, "buffer", None)
        data = decode_input(read_bounded(stdin, "stdin") if stdin is not None else sys.stdin.read(), source="stdin")
        if file == "-":
            return parse_conversation_json(data, source="stdin")
        return to_conversation(data, source="stdin")
    if file:
        return read_conversation_file(file)
    if text is None:
        raise InputError("nothing to answer: pass the user's message as TEXT, --file conversation.json, or - for stdin")
    return to_conversation(decode_input(text, source="TEXT"), source="TEXT")  # argv: undecodable bytes refused


COMPILED_HELP = ("A folder from `pearl optimize`: load its compiled steps. Default: the programs the pipeline "
                 "ships compiled for the model, if any (`pearl pipelines`); 'none' runs the uncompiled programs.")
TIMEOUT_HELP = ("Seconds an HTTP backend waits for each answer before it gives up (default: the backend "
                "option timeout, else 120).")
API_KEY_ENV_HELP = ("The environment variable holding the API key (default PEARL_API_KEY, then OPENAI_API_KEY); "
                    "a pipeline file may name only those two.")


def connection_options(timeout: Optional[float], api_key_env: Optional[str]) -> dict:
    """`--timeout` and `--api-key-env` as `open_session` backend options (only those given).

    The variable named by `--api-key-env` is allowed for this process
    (`pearl.host.backend.allow_api_key_variable`): the user chose it, not a pipeline file.
    """
    from pearl.host.backend import allow_api_key_variable

    if timeout is not None and not 0 < timeout < float("inf"):
        raise InputError(f"--timeout {timeout}: give a positive number of seconds")
    if api_key_env is not None:
        if not api_key_env.strip():
            raise InputError("--api-key-env: name the environment variable that holds the API key")
        allow_api_key_variable(api_key_env)
    return {k: v for k, v in (("timeout", timeout), ("api_key_env", api_key_env)) if v is not None}


class _StepProgress:
    """An observer plugin that shows the running steps in a rich status line."""

    def __init__(self, status):
        self.status = status
        self.running: list[str] = []

    def _show(self):
        self.status.update(f"[bold]running[/] {', '.join(self.running) or '…'}")

    @hookimpl
    def step_started(self, run_id, step_id, use):
        self.running.append(step_id)
        self._show()

    @hookimpl
    def step_finished(self, run_id, step_id, use, output, seconds, error):
        if step_id in self.running:
            self.running.remove(step_id)
        self._show()


@app.command()
def run(
    text: Optional[str] = typer.Argument(None, help="The user's message; '-' reads it from stdin."),
    file: Optional[str] = typer.Option(None, "--file", "-f", help="A conversation JSON file ('-' for stdin)."),
    pipeline: str = typer.Option(DEFAULT_PIPELINE, "--pipeline", "-p", help="A shipped pipeline name or a .toml path."),
    backend: Optional[str] = typer.Option(None, "--backend", "-b", help="Backend name (environment: PEARL_BACKEND)."),
    backend_url: Optional[str] = typer.Option(None, "--backend-url", help="Server URL for HTTP backends (environment: PEARL_BACKEND_URL)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="A catalogue model (pearl models), a GGUF path, or a server's model id (environment: PEARL_MODEL); default: the catalogue's default."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Sampling seed."),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="Sampling temperature (default 0)."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", help="Tokens per LM call for free text; structured calls get room for their whole JSON answer."),
    n_ctx: Optional[int] = typer.Option(None, "--n-ctx", help="Context length for the embedded model."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for the embedded model (default: the CPUs this process may run on)."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole Result as JSON."),
    compiled: Optional[str] = typer.Option(None, "--compiled", help=COMPILED_HELP),
    explain: bool = typer.Option(False, "--explain", help="Show how the answer was reached: the pipeline's own panels (plugins add them), the response and per-step usage."),
    trace: Optional[list[str]] = typer.Option(None, "--trace", help="Export spans: console | jsonl:PATH | otlp:URL (repeatable; env PEARL_TRACE)."),
    trace_content: bool = typer.Option(False, "--trace-content", help="Put prompts, responses and chains on spans (env OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true)."),
    batch: Optional[str] = typer.Option(None, "--batch", help="A JSONL file of conversations to run (one per line)."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="With --batch: the JSONL results file (resumable)."),
    concurrency: int = typer.Option(4, "--concurrency", "-k", help="With --batch: conversations run at once."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help=TIMEOUT_HELP),
    api_key_env: Optional[str] = typer.Option(None, "--api-key-env", help=API_KEY_ENV_HELP),
    sets: Optional[list[str]] = typer.Option(None, "--set", help="STEP.PARAM=VALUE set on the pipeline's step before it runs (repeatable), e.g. risk.user_types=read."),
    ctx: typer.Context = None,
):
    """Answer one conversation with a pipeline and print the response (or a whole --batch file)."""
    from pearl.runtime.session import open_session
    from pearl.traces.configure import tracing_for_command

    from pearl.host.manager import get_host

    extras: RunExtras = ctx.meta.get(RUN_EXTRAS) or RunExtras()
    get_host().registries  # plugins register once, before exporters start: a trace file holds runs only
    tracing_for_command(ctx, trace, trace_content)
    connection = connection_options(timeout, api_key_env)
    if concurrency < 1:  # sampling and context options are checked by BackendSettings, before a model loads
        raise InputError(f"--concurrency {concurrency}: give at least 1 conversation at a time")
    if compiled and compiled.lower() != NO_COMPILED and pipeline == DEFAULT_PIPELINE:  # the folder's own pipeline
        from pearl.runtime.compiled import manifest_pipeline

        pipeline = manifest_pipeline(compiled)
    overrides = checked_overrides(pipeline, sets or [])
    if batch is not None:
        return _run_batch(batch, out, concurrency, text, file, extras, dict(
            pipeline=pipeline, backend=backend, url=backend_url, model=model, seed=seed, temperature=temperature,
            max_tokens=max_tokens, n_ctx=n_ctx, threads=threads, compiled=compiled, overrides=overrides,
            **connection))
    if out is not None:
        raise InputError("--out is for batched runs: add --batch INPUT.jsonl")
    conversation = _read_conversation(text, file)
    session = open_session(pipeline, backend=backend, url=backend_url, model=model, seed=seed,
                           temperature=temperature, max_tokens=max_tokens, n_ctx=n_ctx, threads=threads,
                           compiled=compiled, overrides=overrides, **connection)
    extras.apply(session)
    if as_json or not console.is_terminal:
        result = session.run(conversation)
    else:
        with console.status("[bold]starting[/]") as status:
            observer = _StepProgress(status)
            session.runner.host.register(observer, name="pearl.cli.progress")
            try:
                result = session.run(conversation)
            finally:
                session.runner.host.unregister("pearl.cli.progress")
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    if explain:
        from pearl.cli.explain import render

        render(result, console, extras)
        return
    console.print(Panel(result.response, title=f"pearl · {result.pipeline}", title_align="left"))
    u = result.usage
    programs = [s for s, record in result.steps.items() if record.program]
    err_console.print(
        f"[dim]{u.calls} LM calls · {u.prompt_tokens} prompt + {u.completion_tokens} completion tokens · "
        f"{result.seconds:.1f}s · {result.model}"
        + (f" · compiled {', '.join(programs)} ({session.compiled})" if programs else "") + "[/]"
    )


from pearl.traces.viewer import trace_app  # noqa: E402

app.add_typer(trace_app, name="trace")


MAX_BOOTSTRAP = 100_000  # the most --bootstrap resamples: resamples x items are held in memory at once


def checked_bootstrap(n_boot: int) -> int:
    """`n_boot` itself; `InputError` when `--bootstrap` asks for more than `MAX_BOOTSTRAP` resamples."""
    if n_boot > MAX_BOOTSTRAP:
        raise InputError(f"--bootstrap {n_boot}: give at most {MAX_BOOTSTRAP} resamples (1000 is plenty)")
    return n_boot


def checked_overrides(pipelines: str | list[str], sets: list[str]) -> list:
    """`pearl.runtime.pipeline.checked_overrides` on the command's host: `--set` items checked against
    `pipelines` before any model loads."""
    from pearl.host.manager import get_host
    from pearl.runtime.pipeline import checked_overrides as check

    return check(pipelines, sets, get_host())


def _run_batch(batch: str, out: Optional[str], concurrency: int, text, file, extras: RunExtras,
               options: dict) -> None:
    from pearl.runtime.session import open_session
    from pearl.runtime.batch import read_inputs, run_batch

    if text is not None or file is not None:
        raise InputError("give either --batch INPUT.jsonl or a single conversation (TEXT / --file), not both")
    if not out:
        raise InputError("--batch needs --out RESULTS.jsonl, where each result is written as it finishes")
    read_inputs(batch)  # a missing input file is reported before the model loads
    pipeline = options.pop("pipeline")
    session = open_session(pipeline, **options)
    extras.apply(session)
    summary = run_batch(session, batch, out, concurrency=concurrency, progress=err_console.is_terminal,
                        on_interrupt=tell_draining)
    err_console.print(
        f"{summary.succeeded} answered, {summary.failed} failed, {summary.skipped} already done · "
        f"{summary.seconds:.1f}s · results in {summary.out_path}"
    )
    if summary.interrupted:  # the first Ctrl-C: what finished is written, the rest resumes
        err_console.print(f"[yellow]interrupted: {summary.not_started} conversation(s) not started; "
                          f"run the same command again to resume[/]")
        raise typer.Exit(130)
    if summary.failed:
        err_console.print(f"[bold red]error:[/] {summary.failed} of {summary.total} conversation(s) failed; "
                          f"their errors are in {summary.out_path} (run the same command again to retry them)",
                          highlight=False)
        raise typer.Exit(BATCH_FAILED_EXIT)


BATCH_FAILED_EXIT = 1  # `pearl run --batch`: the run finished but some lines failed


def tell_draining(running: int) -> None:
    """The first Ctrl-C of a long run: say what is being waited for and how to stop at once."""
    err_console.print(f"[yellow]interrupted: finishing the {running} item(s) already running and writing "
                      f"them; press Ctrl-C again to stop at once[/]")


@app.command()
def pipelines():
    """List the pipelines that ship with Pearlpoint."""
    import tomllib

    from pearl.runtime.pipeline import shipped_pipelines

    table = Table("name", "description", "steps", "compiled for")
    for name, path in sorted(shipped_pipelines().items()):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        table.add_row(name, data.get("description", ""), ", ".join(data.get("steps", {})),
                      ", ".join(data.get("compiled", {})))
    console.print(table)


@app.command()
def plugins():
    """List loaded plugins and what each registers or adds to the command line (PEARL_PLUGINS restricts third-party ones)."""
    from pearl.cli.contributions import collect
    from pearl.host.manager import get_host

    host = get_host()
    table = Table()
    table.add_column("plugin", overflow="fold")
    table.add_column("kind", no_wrap=True)
    table.add_column("name", overflow="fold")
    table.add_column("LM", no_wrap=True)
    table.add_column("description", ratio=1)
    shown = None
    for row in plugin_rows(host, collect(host)):
        table.add_row(row["plugin"] if row["plugin"] != shown else "", row["kind"], row["name"], row["lm"],
                      row["description"])
        shown = row["plugin"]
    console.print(table)


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def _description(value) -> str:
    """A registered thing's one line: its `description` (or `summary`), else its docstring's first line."""
    for attr in ("description", "summary"):
        text = getattr(value, attr, None)
        if isinstance(text, str) and text:
            return _first_line(text)
    return _first_line(value.__dict__.get("__doc__")) if isinstance(value, type) else ""


def plugin_rows(host, contributions) -> list[dict[str, str]]:
    """One row per thing a plugin registers or contributes, plugins in load order (for `pearl plugins`).

    `lm` is "yes" / "no" for steps and judges (their `uses_lm`), empty for other kinds.
    """
    rows: list[dict[str, str]] = []
    for plugin in host.plugin_names():
        mine: list[dict[str, str]] = []
        for kind, registry in host.registries.items():
            for name in registry.names():
                entry = registry.entries[name]
                if entry.plugin != plugin:
                    continue
                uses_lm = getattr(entry.value, "uses_lm", None) if kind in ("steps", "judges") else None
                mine.append({"kind": kind, "name": name, "lm": "" if uses_lm is None else ("yes" if uses_lm else "no"),
                             "description": _description(entry.value)})
        for cmd in contributions.commands:
            if cmd.plugin == plugin:
                where = f"{cmd.group} {cmd.name}" if cmd.group else cmd.name
                mine.append({"kind": "command", "name": f"pearl {where}", "lm": "",
                             "description": _first_line(cmd.kwargs.get("help") or cmd.fn.__doc__)})
        for sub in contributions.sub_apps:
            if sub.plugin == plugin:
                mine.append({"kind": "command", "name": f"pearl {sub.name} ...", "lm": "",
                             "description": _first_line(sub.kwargs.get("help") or sub.app.info.help
                                                        if isinstance(sub.app.info.help, str) else "")})
        for option in contributions.run_options:
            if option.plugin == plugin:
                flag = next(iter(option.option.param_decls or ()), option.name)
                mine.append({"kind": "run option", "name": f"pearl run {flag}", "lm": "",
                             "description": _first_line(option.option.help)})
        explainers = sum(1 for e in contributions.explainers if e.plugin == plugin)
        if explainers:
            mine.append({"kind": "explain", "name": "pearl run --explain", "lm": "",
                         "description": f"{explainers} panel renderer(s)"})
        if not mine:
            mine.append({"kind": "-", "name": "(observer hooks only)", "lm": "", "description": ""})
        rows.extend({"plugin": plugin, **row} for row in mine)
    return rows


from pearl.cli.optimize import optimize_command  # noqa: E402

app.command("optimize")(optimize_command)

from pearl.cli.backend import backend_app  # noqa: E402

app.add_typer(backend_app, name="backend")

from pearl.cli.bench import bench_app, quality_command  # noqa: E402

bench_app.command("quality")(quality_command)
app.add_typer(bench_app, name="bench")

from pearl.cli import evaluate as _eval_cli  # noqa: E402  (evaluation commands)

_eval_cli.register(app)


def application(host=None) -> typer.Typer:
    """The `pearl` command: the kernel's `app` plus every plugin's `register_commands` contributions.

    Built anew on each call from `host` (default: the process-wide `get_host()`), so a test
    that registers a plugin on its host sees that plugin's commands and options.
    """
    from pearl.cli.contributions import build, collect
    from pearl.host.manager import get_host

    return build(app, collect(host or get_host()))


def _leave_interrupted() -> None:
    """Exit code 130 after Ctrl-C, at once: work still running in threads is abandoned, not awaited.

    Every result file is written line by line and synced, so what finished is on disk;
    Python would otherwise join the worker threads (minutes of LM calls) before exiting.
    """
    from pearl.runtime.drain import abandoned_work

    err_console.print("[yellow]interrupted[/]")
    if abandoned_work():
        sys.stdout.flush()  # the command's context is closed: `--trace` exporters have flushed already
        sys.stderr.flush()
        os._exit(130)


def main() -> None:
    """Entry point: run the app, turning `PearlError` into a one-line message and exit code 2."""
    from pearl.redact import install_log_redaction

    install_log_redaction()  # no log line shows a known secret or a URL's credentials
    try:
        code = application()(standalone_mode=False, prog_name="pearl")  # typer returns Exit codes (130 on Ctrl-C) instead of raising
        if isinstance(code, int) and code:
            if code == 130:
                _leave_interrupted()
            raise SystemExit(code)
    except PearlError as exc:
        from rich.markup import escape

        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise SystemExit(exc.exit_code)
    except KeyboardInterrupt:
        _leave_interrupted()
        raise SystemExit(130)
    except SystemExit:
        raise
    except typer.Abort:
        raise SystemExit(130)
    except typer.TyperException as exc:  # usage errors, no arguments (help), bad parameters
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            err_console.print(f"[bold red]error:[/] {exc.format_message()}", highlight=False)
        raise SystemExit(exc.exit_code)


if __name__ == "__main__":
    main()
