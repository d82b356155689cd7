"""The plugin host: one pluggy `PluginManager("pearl")` and the registries it fills.

Every plugin is an entry point of the `pearl` group, the built-in ones included: the
`pearlpoint` distribution declares its own (`[project.entry-points.pearl]` in
pyproject.toml), so the kernel names no plugin module. `PEARL_PLUGINS` (a comma list of
entry-point names) restricts which *third-party* plugins load (entry points of other
distributions); `PEARL_PLUGINS=` loads the built-ins only, as does `Host(third_party=False)`.
Plugins load in a fixed order (built-ins by name, then third-party ones by name), and the
host calls them in that order, so what a run sees never depends on installation order.

Every hook is called through pluggy, so hook wrappers run and each call is a `hook <name>`
span (`pearl.traces.hooks`). Registration hooks and `register_commands` are called once
per implementing plugin (`Host.call_each`), which attributes each registration to the
plugin that made it; a plugin that fails there is a `PluginError` naming the plugin and
the hook. Observer hooks go through `Host.notify`, which reports a raising observer as a
`PluginWarning` and never lets it change a step's result or error. A plugin raising
`SystemExit` (at import, in a registration hook or an observer) is treated as raising:
it never ends a command quietly.
"""

from __future__ import annotations

import difflib
import os
import threading
import warnings
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Callable, Iterable

import pluggy
from opentelemetry import trace

from pearl.errors import PluginError
from pearl.host import hookspecs
from pearl.traces.hooks import trace_hook_calls

ENTRY_POINT_GROUP = "pearl"
ENV_PLUGINS = "PEARL_PLUGINS"
DISTRIBUTION = "pearlpoint"  # the distribution whose entry points are the built-ins

# kind -> the registration hook that fills it
REGISTRATION_HOOKS: dict[str, str] = {
    "steps": "register_steps",
    "backends": "register_backends",
    "taxonomies": "register_taxonomies",
    "strategies": "register_strategies",
    "judges": "register_judges",
    "datasets": "register_datasets",
}
KINDS = tuple(REGISTRATION_HOOKS)


class PluginWarning(UserWarning):
    """A plugin did something the host survives: an observer raised, a hook name is unknown."""


@dataclass
class Entry:
    """One registered thing: its key, the object, and the plugin that provided it."""

    name: str
    value: Any
    plugin: str


@dataclass
class Registry:
    """Name → registered object, for one kind of thing."""

    kind: str
    entries: dict[str, Entry] = field(default_factory=dict)

    @property
    def hook(self) -> str:
        return REGISTRATION_HOOKS.get(self.kind, f"register_{self.kind}")

    def add(self, name: str, value: Any, plugin: str) -> None:
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin '{plugin}' registered a {self.kind[:-1]} without a name in hook {self.hook}: "
                              f"give it a `name` class attribute, or call register(name, obj)")
        contract = _contracts().get(self.kind)
        if contract is not None and not (isinstance(value, type) and issubclass(value, contract)):
            shown = f"the class {value.__name__}" if isinstance(value, type) else f"an object of type {type(value).__name__}"
            raise PluginError(f"plugin '{plugin}' registered {self.kind[:-1]} '{name}' in hook {self.hook} as "
                              f"{shown}, not a subclass of {contract.__module__}.{contract.__qualname__}: "
                              f"register the subclass itself (register(MyClass))")
        if name in self.entries:
            first = self.entries[name].plugin
            raise PluginError(
                f"{self.kind[:-1]} '{name}' is registered twice, by plugin '{first}' and by plugin '{plugin}': "
                f"rename one of them or uninstall one plugin (PEARL_PLUGINS restricts which load)"
            )
        self.entries[name] = Entry(name, value, plugin)

    def get(self, name: str) -> Any:
        try:
            return self.entries[name].value
        except KeyError:
            known = ", ".join(sorted(self.entries)) or "none"
            raise PluginError(f"unknown {self.kind[:-1]} '{name}': known {self.kind} are {known}") from None

    def names(self) -> list[str]:
        return sorted(self.entries)

    def __contains__(self, name: str) -> bool:
        return name in self.entries


def _contracts() -> dict[str, type]:
    """kind -> the base class what is registered under it must subclass (kinds whose contract
    lives above the host, taxonomies and strategies, are not checked here)."""
    from pearl.host.backend import Backend
    from pearl.host.dataset import Dataset
    from pearl.host.judge import Judge
    from pearl.host.step import Step

    return {"steps": Step, "backends": Backend, "judges": Judge, "datasets": Dataset}


def _registration(registry: Registry, plugin: str) -> Callable[..., None]:
    """The `register` callback one plugin's registration hook receives."""

    def register(*args: Any) -> None:
        if len(args) == 2:
            key, value = args
        elif len(args) == 1:
            key, value = getattr(args[0], "name", None), args[0]
        else:
            raise PluginError(
                f"plugin '{plugin}' called register() with {len(args)} arguments in hook {registry.hook}: "
                f"call register(obj), keyed by obj.name, or register(name, obj)"
            )
        registry.add(key, value, plugin)

    return register


def _is_builtin(ep: EntryPoint) -> bool:
    dist = getattr(ep, "dist", None)
    name = getattr(dist, "name", None) or ""
    return name.lower().replace("_", "-") == DISTRIBUTION


class Host:
    """Loads plugins and answers 'what is registered under this name?'.

    `third_party=False` builds a host with the built-in plugins only (tests, benchmarks);
    `exclude` names built-in or third-party plugins (entry-point names) to leave out.
    """

    def __init__(self, *, third_party: bool = True, exclude: Iterable[str] = ()):
        self.pm = pluggy.PluginManager("pearl")
        self.pm.add_hookspecs(hookspecs)
        trace_hook_calls(self.pm)  # a span per hook call (no-op without a tracer provider)
        self._lock = threading.RLock()
        self._registries: dict[str, Registry] | None = None
        self._warned: set[tuple[str, str]] = set()
        builtins, others = self._entry_points()
        if not builtins:
            raise PluginError(
                f"no built-in plugins found: the '{ENTRY_POINT_GROUP}' entry points of the {DISTRIBUTION} "
                f"distribution are missing; reinstall it (pip install -e . in a checkout)"
            )
        skip = set(exclude)
        chosen = builtins + (self._third_party(others) if third_party else [])
        for ep in chosen:
            if ep.name not in skip:
                self._load(ep)
        self._warn_unknown_hooks()

    # Loading --------------------------------------------------------------
    @staticmethod
    def _entry_points() -> tuple[list[EntryPoint], list[EntryPoint]]:
        """(built-in, third-party) entry points of the `pearl` group, each sorted by name."""
        builtins: list[EntryPoint] = []
        others: list[EntryPoint] = []
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            (builtins if _is_builtin(ep) else others).append(ep)
        return sorted(builtins, key=lambda e: e.name), sorted(others, key=lambda e: e.name)

    @staticmethod
    def _third_party(found: list[EntryPoint]) -> list[EntryPoint]:
        """The third-party entry points `PEARL_PLUGINS` allows (all when it is unset)."""
        allowed = os.environ.get(ENV_PLUGINS)
        if allowed is None:
            return found
        wanted = {n.strip() for n in allowed.split(",") if n.strip()}
        missing = sorted(wanted - {ep.name for ep in found})
        if missing:
            raise PluginError(
                f"{ENV_PLUGINS} names {', '.join(missing)}, which no installed package provides "
                f"(installed: {', '.join(ep.name for ep in found) or 'none'}): fix the list or install the plugin"
            )
        return [ep for ep in found if ep.name in wanted]

    def _load(self, ep: EntryPoint) -> None:
        try:
            plugin = ep.load()
        except (Exception, SystemExit) as exc:  # a plugin that exits at import must not end the program quietly
            fix = ("this is a bug in Pearlpoint or a broken install: reinstall it" if _is_builtin(ep)
                   else f"fix or uninstall it, or leave it out with {ENV_PLUGINS}")
            raise PluginError(f"plugin '{ep.name}' ({ep.value}) failed to load: "
                              f"{exc.__class__.__name__}: {exc}; {fix}") from exc
        self._register(plugin, ep.name)

    def _register(self, plugin: object, name: str | None) -> str:
        try:
            registered = self.pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            detail = " ".join(str(exc).split())
            raise PluginError(f"plugin '{name or plugin}' has a bad hook implementation: {detail}: "
                              f"match the hook's arguments in pearl.host.hookspecs") from exc
        except ValueError as exc:  # name or object already registered
            raise PluginError(f"plugin '{name or plugin}' cannot be registered: {exc}: "
                              f"give it another name or register it once") from exc
        if registered is None:  # blocked name
            raise PluginError(f"plugin '{name or plugin}' is blocked and was not registered")
        return registered

    def _warn_unknown_hooks(self) -> None:
        """Warn once per (plugin, hook) about a `@hookimpl` whose name is no Pearlpoint hook."""
        known = sorted(n for n, c in vars(self.pm.hook).items() if not n.startswith("_") and c.has_spec())
        for name, caller in list(vars(self.pm.hook).items()):
            if name.startswith("_") or caller.has_spec():
                continue
            for impl in caller.get_hookimpls():
                key = (impl.plugin_name, name)
                if impl.optionalhook or key in self._warned:
                    continue
                self._warned.add(key)
                close = difflib.get_close_matches(name, known, n=1)
                hint = f"did you mean '{close[0]}'?" if close else f"the hooks are {', '.join(known)}"
                warnings.warn(f"plugin '{impl.plugin_name}' implements '{name}', which is not a Pearlpoint hook, "
                              f"so it is never called: {hint}", PluginWarning, stacklevel=3)

    def register(self, plugin: object, name: str | None = None) -> str:
        """Register one more plugin (a module or object with hook implementations).

        The registries are collected again on next use only if the plugin registers
        something: adding an observer (the CLI's progress line) leaves them as they are.
        """
        with self._lock:
            registered = self._register(plugin, name)
            if self._registers_things(plugin):
                self._registries = None
            self._warn_unknown_hooks()
            return registered

    def unregister(self, name: str) -> None:
        with self._lock:
            plugin = self.pm.get_plugin(name)
            if plugin is None:
                raise PluginError(f"no plugin named '{name}' is registered: registered are "
                                  f"{', '.join(self.plugin_names()) or 'none'}")
            registers = self._registers_things(plugin)
            self.pm.unregister(name=name)
            if registers:
                self._registries = None

    def _registers_things(self, plugin: object) -> bool:
        return any(impl.plugin is plugin for hook_name in REGISTRATION_HOOKS.values()
                   for impl in getattr(self.pm.hook, hook_name).get_hookimpls())

    # Calling hooks --------------------------------------------------------
    def _implementations(self, hook_name: str) -> list:
        """The non-wrapper implementations of `hook_name`, in plugin registration order."""
        order = {name: i for i, name in enumerate(self.plugin_names())}
        impls = [impl for impl in getattr(self.pm.hook, hook_name).get_hookimpls()
                 if not (impl.wrapper or impl.hookwrapper)]
        return sorted(impls, key=lambda impl: order.get(impl.plugin_name, len(order)))

    def _caller_for(self, hook_name: str, impl, impls: list):
        """A pluggy caller of `hook_name` that runs `impl` and every wrapper, but no other implementation."""
        others = [other.plugin for other in impls if other.plugin is not impl.plugin]
        return self.pm.subset_hook_caller(hook_name, remove_plugins=others)

    def call_each(self, hook_name: str, kwargs_for: Callable[[str], dict[str, Any]]) -> None:
        """Call `hook_name` through pluggy once per implementing plugin, in plugin order.

        `kwargs_for(plugin_name)` gives that plugin's call arguments (e.g. a `register`
        callback that records who registered what). A plugin that raises is a
        `PluginError` naming the plugin and the hook (a `PluginError` it raises passes as is).
        """
        impls = self._implementations(hook_name)
        for impl in impls:
            caller = self._caller_for(hook_name, impl, impls)
            try:
                caller(**kwargs_for(impl.plugin_name))
            except PluginError:
                raise
            except (Exception, SystemExit) as exc:  # a plugin's sys.exit() must not end the command quietly
                raise PluginError(
                    f"plugin '{impl.plugin_name}' failed in hook {hook_name}: {exc.__class__.__name__}: {exc}; "
                    f"fix the plugin, or leave it out with {ENV_PLUGINS}"
                ) from exc

    def notify(self, hook_name: str, **kwargs: Any) -> None:
        """Call an observer hook: each plugin through pluggy, isolated from the others and from the caller.

        An observer that raises `Exception` is reported — a `PluginWarning` naming the plugin
        and the hook, and an event `pearl.observer.error` on the current span — and the call
        goes on with the next observer. Nothing an observer does reaches the caller.
        """
        impls = self._implementations(hook_name)
        for impl in impls:
            caller = self._caller_for(hook_name, impl, impls)
            try:
                caller(**kwargs)
            except (Exception, SystemExit) as exc:  # an observer's sys.exit() is a raise like any other
                message = f"{exc.__class__.__name__}: {exc}"
                trace.get_current_span().add_event("pearl.observer.error", {
                    "pearl.plugin": impl.plugin_name, "pearl.hook.name": hook_name, "exception.message": message})
                warnings.warn(f"observer plugin '{impl.plugin_name}' raised in hook {hook_name} ({message}); "
                              f"ignored: observers must not raise", PluginWarning, stacklevel=2)

    # Registries -----------------------------------------------------------
    @property
    def registries(self) -> dict[str, Registry]:
        with self._lock:
            if self._registries is None:
                self._registries = self._collect()
            return self._registries

    def _collect(self) -> dict[str, Registry]:
        registries = {kind: Registry(kind) for kind in KINDS}
        for kind, hook_name in REGISTRATION_HOOKS.items():
            registry = registries[kind]
            self.call_each(hook_name, lambda plugin, _r=registry: {"register": _registration(_r, plugin)})
        return registries

    # Convenience lookups -------------------------------------------------
    def get(self, kind: str, name: str) -> Any:
        return self.registries[kind].get(name)

    def step(self, name: str):
        return self.get("steps", name)

    def backend(self, name: str):
        return self.get("backends", name)

    def plugin_names(self) -> list[str]:
        """Registered plugin names, in load order."""
        return [name for name, _ in self.pm.list_name_plugin()]

    def describe(self) -> dict[str, dict[str, list[str]]]:
        """Plugin name → kind → names it registered (for `pearl plugins`)."""
        out: dict[str, dict[str, list[str]]] = {name: {} for name in self.plugin_names()}
        for kind, registry in self.registries.items():
            for entry in registry.entries.values():
                out.setdefault(entry.plugin, {}).setdefault(kind, []).append(entry.name)
        return out

    @property
    def hook(self):
        return self.pm.hook


_host: Host | None = None
_host_lock = threading.Lock()


def get_host() -> Host:
    """The process-wide host, created on first use."""
    global _host
    with _host_lock:
        if _host is None:
            _host = Host()
        return _host


def reset_host(host: Host | None = None) -> None:
    """Replace the process-wide host (tests, or after installing a plugin)."""
    global _host
    with _host_lock:
        _host = host
