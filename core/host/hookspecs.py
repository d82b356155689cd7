"""The hooks a Pearlpoint plugin can implement.

Registration hooks receive a `register` callback and call it once per thing they
provide; the host attributes each registration to the plugin that made it, so a
duplicate name is reported with both plugins' names. Observer hooks are called
around every step of every run and must not raise.

A plugin is any module or object with functions decorated by `pearl.hookimpl`::

    from pearl import hookimpl

    @hookimpl
    def register_steps(register):
        register(MyStep)          # a `pearl.host.step.Step` subclass
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("pearl")
hookimpl = pluggy.HookimplMarker("pearl")


@hookspec
def register_steps(register):
    """Register step plugins: `register(StepSubclass)`; the class's `name` is its key."""


@hookspec
def register_backends(register):
    """Register LM backends: `register(BackendSubclass)`; the class's `name` is its key."""


@hookspec
def register_taxonomies(register):
    """Register risk taxonomies: `register(name, loader)`; `loader()` returns the taxonomy."""


@hookspec
def register_strategies(register):
    """Register response strategies: `register(strategy)`; the strategy's `name` is its key."""


@hookspec
def register_judges(register):
    """Register judges: `register(JudgeSubclass)`; the class's `name` is its key."""


@hookspec
def register_datasets(register):
    """Register datasets: `register(DatasetSubclass)`; the class's `name` is its key."""


@hookspec
def step_started(run_id: str, step_id: str, use: str):
    """Observer: step `step_id` (plugin `use`) of run `run_id` is about to run."""


@hookspec
def step_finished(run_id: str, step_id: str, use: str, output, seconds: float, error):
    """Observer: step `step_id` finished; `output` is its model, or None with `error` set."""
