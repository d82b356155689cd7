"""The hooks a Pearlpoint plugin can implement.

A plugin is any module or object with functions decorated by `pearl.hookimpl`, installed
as an entry point of the `pearl` group (the built-ins are entry points of `pearlpoint`
itself) or registered with `Host.register`::

    from pearl import hookimpl

    @hookimpl
    def register_steps(register):
        register(MyStep)          # a `pearl.host.step.Step` subclass

An implementation may declare any subset of a hook's arguments, by name. A hook name that
is not below gets a `PluginWarning` (it would never be called); a declared argument the
hook does not have is a `PluginError` when the plugin loads.

**Registration hooks** (`register_*`) are called through pluggy, once per implementing
plugin, the first time anything asks the host what is registered — in the thread that
asks, with the host's lock held, never concurrently. Each receives a `register` callback
and calls it once per thing it provides: `register(obj)` keys it by `obj.name`,
`register(name, obj)` by `name`. The host remembers which plugin registered what, so a
duplicate name is a `PluginError` naming both plugins. A registration hook must only
register: no model loading, no network, no file I/O beyond importing its module (do that
lazily, in the registered objects). If it raises, or calls `register` wrongly, the host
raises `PluginError` naming the plugin and the hook.

**Observer hooks** (`step_started`, `step_finished`) are called around every step of every
run, in the thread running the step, and for batched runs from several threads at once.
They must be quick and must not raise: the host reports an observer that raises (a
`PluginWarning` and a span event) and carries on; it never changes the step's result or
error.

**Command-line hooks** (`register_commands`) are called once, when the `pearl` command is
built (`pearl.cli.application()`), in the main thread.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("pearl")
hookimpl = pluggy.HookimplMarker("pearl")


@hookspec
def register_steps(register):
    """Register pipeline steps: call `register(StepClass)` once per step.

    :param register: `register(cls)` where `cls` is a subclass of `pearl.host.step.Step`
        (the class, not an instance); its `name` is the key pipelines `use`.

    The pipeline compiler instantiates the class once per loaded pipeline and calls `run`
    once per request; see `pearl.host.step` for what a step may assume.
    """


@hookspec
def register_backends(register):
    """Register LM backends: call `register(BackendClass)` once per backend.

    :param register: `register(cls)` where `cls` is a subclass of
        `pearl.host.backend.Backend`; its `name` is what `--backend` / `PEARL_BACKEND` select.

    The session instantiates the class and calls `create(settings)` for each LM role
    (task, judge, optimizer); `create` returns a `dspy.BaseLM` (see `pearl.host.backend`).
    """


@hookspec
def register_taxonomies(register):
    """Register risk taxonomies: call `register(name, loader)` once per taxonomy.

    :param register: `register(name, loader)` where `name` is the taxonomy's key (`pearl
        taxonomy NAME`, a step's `taxonomy = "NAME"`) and `loader` is a callable taking no
        arguments that returns a `pearl.csa.Taxonomy` (the CSA domain model's taxonomy type).

    The loader runs at most once per host, on first use, and its result is cached; it may
    read files. The host does not look inside: the CSA domain (`pearl.csa`) does.
    """


@hookspec
def register_strategies(register):
    """Register response strategies: call `register(strategy)` once per strategy.

    :param register: `register(strategy)` where `strategy` is a `pearl.csa.ResponseStrategy` (the
        CSA domain model's response-strategy type, an instance); its `name` is the key.

    Strategies are data, read by the CSA steps (anticipate, decide, draft); they must be
    immutable once registered, as runs read them from several threads.
    """


@hookspec
def register_judges(register):
    """Register judges: call `register(JudgeClass)` once per judge.

    :param register: `register(cls)` where `cls` is a subclass of `pearl.host.judge.Judge`;
        its `name` is the key (`pearl eval --judges`, a step parameter such as `satisfaction_judge = "..."`).

    Evaluation and the steps that judge instantiate the class and call `judge(...)`, possibly from
    several threads at once; see `pearl.host.judge`.
    """


@hookspec
def register_datasets(register):
    """Register datasets: call `register(DatasetClass)` once per dataset.

    :param register: `register(cls)` where `cls` is a subclass of
        `pearl.host.dataset.Dataset`; its `name` is the key (`pearl eval NAME:PATH`).

    `pearl.host.dataset.load_dataset` instantiates the class and calls `load(path,
    options)` once per evaluation, in the main thread; see `pearl.host.dataset`.
    """


@hookspec
def register_commands(cli):
    """Contribute to the `pearl` command line.

    :param cli: a `pearl.cli.contributions.CommandLine`, bound to this plugin. Its methods:

        - `cli.command(fn, name=None, group=None, **typer_kwargs)`: add a typer command
          function as `pearl NAME` (or `pearl GROUP NAME`, e.g. `group="backend"`);
        - `cli.add_typer(sub_app, name)`: add a typer sub-application as `pearl NAME ...`;
        - `cli.run_option(name, annotation, option, apply)`: add an option to `pearl run`
          (`option` is a `typer.Option(...)`); when the user gives it, `apply(session,
          value)` is called on the opened `pearl.runtime.session.Session` before it runs;
        - `cli.explain(render, where="before" | "after")`: add a renderer to `pearl run
          --explain`; `render(result, console)` prints what it knows of the `Result`
          (nothing when the result is not its kind) before or after the response panel.

    Called once per build of the command (`pearl.cli.application()`), in the main thread.
    A name that clashes with a command or option already there is a `PluginError` naming
    both contributors. Import heavy modules inside the command functions, not here.
    """


@hookspec
def step_started(run_id: str, step_id: str, use: str):
    """Observer: step `step_id` (the step plugin `use`) of run `run_id` is about to run.

    Called in the thread that runs the step; must not raise (see the module docstring).
    """


@hookspec
def step_finished(run_id: str, step_id: str, use: str, output, seconds: float, error):
    """Observer: step `step_id` finished after `seconds`.

    :param output: the step's output model, or None when it failed.
    :param error: None, or the `pearl.errors.StepError` the step failed with (raised to
        the runner's caller after every observer has seen it).

    Called in the thread that ran the step, also when the step failed; must not raise.
    """
