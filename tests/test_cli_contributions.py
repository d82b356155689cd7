"""`register_commands`: plugins add commands, sub-apps, `pearl run` options and `--explain`
panels, in process (no model: the canned-answer doubles of eval_doubles)."""

from __future__ import annotations

import json
from typing import Optional

import pytest
import typer
from typer.testing import CliRunner

from eval_doubles import EvalDoublesPlugin, write_pipeline
from pearl import hookimpl
from pearl.cli import app, application, plugin_rows
from pearl.cli.contributions import collect
from pearl.errors import InputError, PluginError


def hello(name: str = typer.Argument(..., help="Who to greet.")):
    """Greet someone (a command of the test plugin)."""
    typer.echo(f"hello {name}")


def ping():
    """Answer pong (added to the kernel's `backend` group)."""
    typer.echo("pong")


tools = typer.Typer(help="Tools of the test plugin.")


@tools.command()
def count(n: int = typer.Argument(..., help="How far.")):
    """Count to N."""
    typer.echo(" ".join(str(i) for i in range(1, n + 1)))


@tools.command()
def noop():
    """Do nothing."""


class CliPlugin:
    """A plugin that contributes to every part of the command line."""

    def __init__(self):
        self.applied = []

    def apply(self, session, value):
        if value < 0:
            raise InputError(f"--repeat {value}: give 0 or more")
        self.applied.append((session.pipeline.name, value))

    @hookimpl
    def register_commands(self, cli):
        cli.command(hello)
        cli.command(ping, group="backend")
        cli.add_typer(tools, name="tools")
        cli.run_option("repeat", Optional[int], typer.Option(None, "--repeat", help="How often (test plugin)."),
                       apply=self.apply)
        cli.explain(lambda result, console: console.print(f"BEFORE {result.pipeline}"), where="before")
        cli.explain(lambda result, console: console.print("AFTER"), where="after")


@pytest.fixture
def plugin(host):
    contributor = CliPlugin()
    host.register(EvalDoublesPlugin(), name="tests.eval_doubles")
    host.register(contributor, name="tests.cli")
    return contributor


def test_plugin_commands_and_sub_apps_run(plugin):
    runner, command = CliRunner(), application()
    assert runner.invoke(command, ["hello", "Ada"]).output == "hello Ada\n"
    assert runner.invoke(command, ["backend", "ping"]).output == "pong\n"
    assert runner.invoke(command, ["tools", "count", "3"]).output == "1 2 3\n"
    listing = runner.invoke(command, ["--help"], env={"COLUMNS": "200"}).output
    assert "hello" in listing and "Greet someone" in listing and "tools" in listing


def test_building_never_changes_the_kernel_app(plugin):
    before = ([c.callback for c in app.registered_commands], [g.typer_instance for g in app.registered_groups])
    application()
    application()
    after = ([c.callback for c in app.registered_commands], [g.typer_instance for g in app.registered_groups])
    assert before == after
    assert "hello" not in CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"}).output


def test_a_run_option_is_applied_to_the_session_before_it_runs(plugin, run_cli, tmp_path):
    pipeline = write_pipeline(tmp_path)
    proc = run_cli(["run", "--pipeline", pipeline, "--repeat", "2", "--json", "what is a pearl"])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["response"] == "Here is what you asked about: what is a pearl"
    assert plugin.applied == [("test-canned", 2)]
    assert run_cli(["run", "--pipeline", pipeline, "--json", "again"]).returncode == 0
    assert plugin.applied == [("test-canned", 2)]  # not given: not applied


def test_a_run_option_applies_to_batches_too(plugin, run_cli, tmp_path):
    inputs, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inputs.write_text(json.dumps("first") + "\n" + json.dumps("second") + "\n")
    proc = run_cli(["run", "--pipeline", write_pipeline(tmp_path), "--repeat", "1", "--batch", inputs, "--out", out])
    assert proc.returncode == 0, proc.stderr
    assert plugin.applied == [("test-canned", 1)]
    assert len(out.read_text().splitlines()) == 2


def test_a_bad_run_option_value_is_a_one_line_error(plugin, run_cli, tmp_path):
    proc = run_cli(["run", "--pipeline", write_pipeline(tmp_path), "--repeat", "-1", "hi"])
    assert proc.returncode == 2 and "--repeat -1: give 0 or more" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_explain_panels_surround_the_response(plugin, run_cli, tmp_path):
    proc = run_cli(["run", "--pipeline", write_pipeline(tmp_path), "--explain", "tell me"], env={"COLUMNS": "160"})
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    before, response, usage, after = (text.index(s) for s in
                                      ("BEFORE test-canned", "Here is what you asked about", "per-step usage", "AFTER"))
    assert before < response < usage < after


def test_run_help_lists_kernel_and_plugin_options(plugin):
    text = CliRunner().invoke(application(), ["run", "--help"], env={"COLUMNS": "200"}).output
    for flag in ("--pipeline", "--explain", "--refine", "--repeat"):
        assert flag in text, flag


def test_the_csa_plugin_contributes_refine_explain_and_export_pairs(host):
    contributions = collect(host)
    assert [o.name for o in contributions.run_options if o.plugin == "pearl.strategies.commands"] == ["refine"]
    assert {(e.plugin, e.where) for e in contributions.explainers} == {
        ("pearl.strategies.commands", "before"), ("pearl.strategies.commands", "after")}
    owners = {(c.group, c.name): c.plugin for c in contributions.commands}
    assert owners[(None, "export-pairs")] == "pearl.strategies.commands"
    assert owners[(None, "taxonomy")] == "pearl.plugins.taxonomy_command"
    assert owners[("backend", "launch")] == "pearl.plugins.backend_launch"


@pytest.mark.parametrize("contribute, message", [
    (lambda cli: cli.command(hello, name="run"), r"plugin 'tests.clash' adds the command 'pearl run'.*Pearlpoint"),
    (lambda cli: cli.command(ping, name="launch", group="backend"),
     r"'pearl backend launch'.*plugin 'pearl.plugins.backend_launch'"),
    (lambda cli: cli.command(ping, group="nosuchgroup"), r"command group 'nosuchgroup'.*does not exist"),
    (lambda cli: cli.run_option("pipe", Optional[str], typer.Option(None, "--pipeline"), apply=print),
     r"plugin 'tests.clash' adds '--pipeline' to pearl run.*Pearlpoint already uses"),
    (lambda cli: cli.run_option("refine", Optional[int], typer.Option(None, "--again"), apply=print),
     r"run option 'refine'.*plugin 'pearl.strategies.commands' already has"),
    (lambda cli: cli.explain(print, where="middle"), r"use 'before' or 'after'"),
])
def test_clashes_and_mistakes_name_the_plugin(host, contribute, message):
    class Clash:
        @hookimpl
        def register_commands(self, cli):
            contribute(cli)

    host.register(Clash(), name="tests.clash")
    with pytest.raises(PluginError, match=message):
        application()


def test_plugins_lists_descriptions_lm_use_and_commands(host, plugin, run_cli):
    rows = plugin_rows(host, collect(host))
    by_name = {(r["kind"], r["name"]): r for r in rows}
    assert by_name[("steps", "test-echo")]["lm"] == "no"
    assert by_name[("steps", "screen")]["lm"] == "yes"
    assert by_name[("steps", "screen")]["description"].startswith("coarse risk screen")
    assert by_name[("command", "pearl hello")]["plugin"] == "tests.cli"
    assert by_name[("run option", "pearl run --repeat")]["description"] == "How often (test plugin)."
    assert by_name[("command", "pearl tools ...")]["description"] == "Tools of the test plugin."
    proc = run_cli(["plugins"], env={"COLUMNS": "200"})
    assert proc.returncode == 0 and "pearl export-pairs" in proc.stdout and "coarse risk screen" in proc.stdout


@pytest.mark.parametrize("args, shown", [([], "Usage: pearl"), (["run", "--no-such-flag"], "No such option"),
                                         (["no-such-command"], "No such command")])
def test_usage_errors_are_messages_not_tracebacks(host, run_cli, args, shown):
    proc = run_cli(args)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2 and shown in output and "Traceback" not in output
