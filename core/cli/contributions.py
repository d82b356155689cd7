"""What plugins add to the `pearl` command line, and how it joins the kernel's app.

A plugin implements `register_commands(cli)` (see `pearl.host.hookspecs`) and calls the
methods of the `CommandLine` it receives. `collect(host)` calls that hook once per plugin
(through pluggy, `Host.call_each`) and returns the `Contributions`; `build(app,
contributions)` returns a new typer app: a copy of the kernel's `app` with the plugins'
commands, sub-apps, `pearl run` options and `--explain` renderers added. The kernel's
`app` itself is never changed, so building twice (tests, several hosts) gives the same
command.
"""

from __future__ import annotations

import copy
import functools
import inspect
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

import typer
from typer.models import CommandInfo, OptionInfo, TyperInfo

from pearl.errors import PluginError

KERNEL = "pearl"  # the contributor name of the kernel's own commands and options
RUN_EXTRAS = "pearl.run.extras"  # key of the `RunExtras` in the click context's `meta`
WHERE = ("before", "after")


@dataclass
class RunOption:
    """An option a plugin adds to `pearl run`; `apply(session, value)` runs when the user gives it."""

    name: str
    annotation: Any
    option: OptionInfo
    apply: Callable[[Any, Any], None]
    plugin: str


@dataclass
class Explainer:
    """A `pearl run --explain` renderer: `render(result, console)`, before or after the response panel."""

    render: Callable[[Any, Any], None]
    where: str
    plugin: str


@dataclass
class Command:
    fn: Callable[..., Any]
    name: str
    group: str | None
    kwargs: dict[str, Any]
    plugin: str


@dataclass
class SubApp:
    app: typer.Typer
    name: str
    kwargs: dict[str, Any]
    plugin: str


@dataclass
class Contributions:
    """Everything the plugins contributed, each item with the plugin that gave it."""

    commands: list[Command] = field(default_factory=list)
    sub_apps: list[SubApp] = field(default_factory=list)
    run_options: list[RunOption] = field(default_factory=list)
    explainers: list[Explainer] = field(default_factory=list)


@dataclass
class RunExtras:
    """What `pearl run` receives from the plugins: the options given, and the renderers."""

    options: list[tuple[RunOption, Any]] = field(default_factory=list)
    explainers: list[Explainer] = field(default_factory=list)

    def apply(self, session) -> None:
        """Apply every given plugin option to the opened session, in plugin order."""
        for option, value in self.options:
            option.apply(session, value)

    def render(self, where: str, result, console) -> None:
        for explainer in self.explainers:
            if explainer.where == where:
                explainer.render(result, console)


class CommandLine:
    """The object a plugin's `register_commands(cli)` receives (bound to that plugin)."""

    def __init__(self, contributions: Contributions, plugin: str):
        self._contributions = contributions
        self.plugin = plugin

    def command(self, fn: Callable[..., Any], *, name: str | None = None, group: str | None = None,
                **typer_kwargs: Any) -> None:
        """Add typer command function `fn` as `pearl NAME`, or `pearl GROUP NAME` for a kernel group.

        `name` defaults to typer's name for `fn` (`export_pairs` → `export-pairs`);
        `typer_kwargs` go to `Typer.command` (help, hidden, ...).
        """
        if not callable(fn):
            raise PluginError(f"plugin '{self.plugin}' passed {fn!r} to cli.command in hook register_commands: "
                              f"pass a typer command function")
        self._contributions.commands.append(
            Command(fn, name or typer.main.get_command_name(fn.__name__), group, typer_kwargs, self.plugin))

    def add_typer(self, sub_app: typer.Typer, *, name: str, **typer_kwargs: Any) -> None:
        """Add typer application `sub_app` as the command group `pearl NAME ...`."""
        if not isinstance(sub_app, typer.Typer):
            raise PluginError(f"plugin '{self.plugin}' passed {sub_app!r} to cli.add_typer in hook register_commands: "
                              f"pass a typer.Typer")
        self._contributions.sub_apps.append(SubApp(sub_app, name, typer_kwargs, self.plugin))

    def run_option(self, name: str, annotation: Any, option: OptionInfo,
                   apply: Callable[[Any, Any], None]) -> None:
        """Add an option to `pearl run`.

        `name` is the Python name of the value (e.g. "repeat"), `annotation` its type (e.g.
        `Optional[int]`), `option` a `typer.Option(default, "--flag", help=...)`. When the
        value given differs from the default, `apply(session, value)` is called on the opened
        `Session` (single and `--batch` runs) before anything runs; it may change the
        session's pipeline steps' parameters, and raises `pearl.errors.InputError` for a bad value.
        """
        if not (isinstance(name, str) and name.isidentifier()):
            raise PluginError(f"plugin '{self.plugin}': run option name {name!r} in hook register_commands "
                              f"is not a Python identifier: use e.g. 'repeat'")
        if not isinstance(option, OptionInfo):
            raise PluginError(f"plugin '{self.plugin}': run option '{name}' in hook register_commands needs "
                              f"typer.Option(...), got {type(option).__name__}")
        if not callable(apply):
            raise PluginError(f"plugin '{self.plugin}': run option '{name}' in hook register_commands needs "
                              f"apply(session, value), a callable")
        self._contributions.run_options.append(RunOption(name, annotation, option, apply, self.plugin))

    def explain(self, render: Callable[[Any, Any], None], *, where: str = "before") -> None:
        """Add `render(result, console)` to `pearl run --explain`, before or after the response panel."""
        if where not in WHERE:
            raise PluginError(f"plugin '{self.plugin}': cli.explain(where={where!r}) in hook register_commands: "
                              f"use 'before' or 'after'")
        self._contributions.explainers.append(Explainer(render, where, self.plugin))


def collect(host) -> Contributions:
    """Call every plugin's `register_commands` (in plugin order) and return what they added."""
    contributions = Contributions()
    host.call_each("register_commands", lambda plugin: {"cli": CommandLine(contributions, plugin)})
    return contributions


# Building the app ----------------------------------------------------------------------
def _command_name(info: CommandInfo) -> str:
    return info.name or typer.main.get_command_name(info.callback.__name__)


def _group_name(info: TyperInfo) -> str | None:
    name = info.name
    if isinstance(name, str):
        return name
    inner = info.typer_instance.info.name if info.typer_instance else None
    return inner if isinstance(inner, str) else None


def _copy_typer(app: typer.Typer) -> typer.Typer:
    new = copy.copy(app)
    new.registered_commands = list(app.registered_commands)
    new.registered_groups = list(app.registered_groups)
    return new


class _Names:
    """Who owns each command name in one group, for clash messages."""

    def __init__(self, app: typer.Typer, where: str):
        self.where = where
        self.owner: dict[str, str] = {_command_name(c): KERNEL for c in app.registered_commands}
        self.owner.update({n: KERNEL for g in app.registered_groups if (n := _group_name(g))})

    def claim(self, name: str, plugin: str) -> None:
        if name in self.owner:
            raise PluginError(f"plugin '{plugin}' adds the command '{self.where}{name}' in hook register_commands, "
                              f"which {_who(self.owner[name])} already provides: give it another name")
        self.owner[name] = plugin


def _who(owner: str) -> str:
    return "Pearlpoint" if owner == KERNEL else f"plugin '{owner}'"


def build(app: typer.Typer, contributions: Contributions) -> typer.Typer:
    """A copy of the kernel's `app` with `contributions` added (see the module docstring)."""
    built = _copy_typer(app)
    names = _Names(built, "pearl ")
    groups: dict[str, tuple[int, typer.Typer, _Names]] = {}
    for index, info in enumerate(built.registered_groups):
        if (gname := _group_name(info)) is not None:
            groups[gname] = (index, info.typer_instance, _Names(info.typer_instance, f"pearl {gname} "))
    for cmd in contributions.commands:
        if cmd.group is None:
            names.claim(cmd.name, cmd.plugin)
            built.command(cmd.name, **cmd.kwargs)(cmd.fn)
            continue
        if cmd.group not in groups:
            raise PluginError(f"plugin '{cmd.plugin}' adds '{cmd.name}' to the command group '{cmd.group}' in hook "
                              f"register_commands, which does not exist: groups are {', '.join(sorted(groups)) or 'none'}")
        index, group_app, group_names = groups[cmd.group]
        group_names.claim(cmd.name, cmd.plugin)
        if group_app is built.registered_groups[index].typer_instance:  # first addition: copy, never change the kernel's
            info = copy.copy(built.registered_groups[index])
            info.typer_instance = group_app = _copy_typer(group_app)
            built.registered_groups[index] = info
            groups[cmd.group] = (index, group_app, group_names)
        group_app.command(cmd.name, **cmd.kwargs)(cmd.fn)
    for sub in contributions.sub_apps:
        names.claim(sub.name, sub.plugin)
        built.add_typer(sub.app, name=sub.name, **sub.kwargs)
    if contributions.run_options or contributions.explainers:
        _extend_run(built, contributions)
    return built


def _extend_run(built: typer.Typer, contributions: Contributions) -> None:
    """Replace `run` by a wrapper whose signature adds the plugins' options (typer reads `__signature__`)."""
    index, info = next((i, c) for i, c in enumerate(built.registered_commands) if _command_name(c) == "run")
    callback = info.callback
    signature = inspect.signature(callback)
    hints = typing.get_type_hints(callback)
    params = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values()]
    owner = {p.name: KERNEL for p in params}
    flags: dict[str, str] = {}
    for p in params:
        if isinstance(p.default, OptionInfo):
            flags.update({decl: KERNEL for decl in p.default.param_decls or ()})
    for option in contributions.run_options:
        if option.name in owner:
            raise PluginError(f"plugin '{option.plugin}' adds the run option '{option.name}' in hook register_commands, "
                              f"which {_who(owner[option.name])} already has: give it another name")
        for decl in option.option.param_decls or ():
            if decl in flags:
                raise PluginError(f"plugin '{option.plugin}' adds '{decl}' to pearl run in hook register_commands, "
                                  f"which {_who(flags[decl])} already uses: choose another flag")
            flags[decl] = option.plugin
        owner[option.name] = option.plugin
        params.append(inspect.Parameter(option.name, inspect.Parameter.KEYWORD_ONLY, default=option.option,
                                        annotation=option.annotation))
    ctx_name = next((p.name for p in params if p.annotation is typer.Context), None)
    if ctx_name is None:
        raise RuntimeError("pearl run must take a typer.Context to receive plugin options")
    # keyword-only parameters must follow positional ones: the kernel's become keyword-only too
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params]
    plugin_options = list(contributions.run_options)
    explainers = list(contributions.explainers)

    @functools.wraps(callback)
    def run_with_plugins(**kwargs: Any) -> Any:
        given = []
        for option in plugin_options:
            value = kwargs.pop(option.name)
            if value != option.option.default:
                given.append((option, value))
        kwargs[ctx_name].meta[RUN_EXTRAS] = RunExtras(given, explainers)
        return callback(**kwargs)

    run_with_plugins.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    run_with_plugins.__annotations__ = {p.name: p.annotation for p in params}
    del run_with_plugins.__wrapped__  # typer must see the new signature, not the kernel's
    new_info = copy.copy(info)
    new_info.callback = run_with_plugins
    built.registered_commands[index] = new_info
