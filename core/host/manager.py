"""The plugin host: one pluggy `PluginManager("pearl")` and the registries it fills.

Built-in plugins are modules listed in `BUILTIN_PLUGINS`; they register through the
same hooks as third-party plugins, which are found through the `pearl` entry-point
group. `PEARL_PLUGINS` (a comma list of entry-point names) restricts which
third-party plugins load; set it empty to load built-ins only.
"""

from __future__ import annotations

import importlib
import os
import threading
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable

import pluggy

from pearl.host import hookspecs
from pearl.errors import PluginError
from pearl.traces.hooks import trace_hook_calls

ENTRY_POINT_GROUP = "pearl"
ENV_PLUGINS = "PEARL_PLUGINS"

BUILTIN_PLUGINS: tuple[str, ...] = (
    "pearl.plugins.llamacpp",
    "pearl.plugins.openai_compat",
    "pearl.plugins.sglang",
    "pearl.strategies.minimal",
    "pearl.strategies.recombine",
    "pearl.plugins.taxonomy",
    "pearl.strategies.library",
    "pearl.strategies.risk",
    "pearl.strategies.anticipate",
    "pearl.strategies.decide",
    "pearl.strategies.draft",
    "pearl.strategies.refusal",
    "pearl.plugins.strata_sword",
    "pearl.plugins.xstest",
    "pearl.plugins.jsonl_dataset",
    "pearl.strategies.direct",
    "pearl.strategies.guard",
    "pearl.strategies.judges",
    "pearl.strategies.refine",
)

KINDS = ("steps", "backends", "taxonomies", "strategies", "judges", "datasets")


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

    def add(self, name: str, value: Any, plugin: str) -> None:
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin '{plugin}' registered a {self.kind[:-1]} without a name: give it a `name`")
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


def _default_key(kind: str, args: tuple) -> tuple[str, Any]:
    """`register(obj)` keys by `obj.name`; `register(name, obj)` keys by `name`."""
    if len(args) == 2:
        return args[0], args[1]
    if len(args) == 1:
        return getattr(args[0], "name", None), args[0]
    raise TypeError(f"register() for {kind} takes (obj) or (name, obj)")


class Host:
    """Loads plugins and answers 'what is registered under this name?'."""

    def __init__(self, *, load_entry_points: bool = True, builtins: tuple[str, ...] = BUILTIN_PLUGINS):
        self.pm = pluggy.PluginManager("pearl")
        self.pm.add_hookspecs(hookspecs)
        trace_hook_calls(self.pm)  # a span per hook call (no-op without a tracer provider)
        self._lock = threading.RLock()
        self._registries: dict[str, Registry] | None = None
        for module_name in builtins:
            self.pm.register(importlib.import_module(module_name), name=module_name)
        if load_entry_points:
            self._load_entry_points()

    def _load_entry_points(self) -> None:
        allowed = os.environ.get(ENV_PLUGINS)
        wanted = None if allowed is None else {n.strip() for n in allowed.split(",") if n.strip()}
        found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
        if wanted:
            missing = sorted(wanted - set(found))
            if missing:
                raise PluginError(
                    f"{ENV_PLUGINS} names {', '.join(missing)}, which no installed package provides "
                    f"(installed: {', '.join(sorted(found)) or 'none'}): fix the list or install the plugin"
                )
        for name, ep in sorted(found.items()):
            if wanted is not None and name not in wanted:
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken third-party plugin must not look like our bug
                raise PluginError(
                    f"plugin '{name}' ({ep.value}) failed to load: {exc.__class__.__name__}: {exc}; "
                    f"fix or uninstall it, or exclude it with {ENV_PLUGINS}"
                ) from exc
            self.pm.register(plugin, name=name)

    def register(self, plugin: object, name: str | None = None) -> str:
        """Register one more plugin (a module or object with hook implementations)."""
        with self._lock:
            registered = self.pm.register(plugin, name=name)
            if registered is None:
                raise PluginError(f"plugin '{name or plugin}' is already registered")
            self._registries = None
            return registered

    def unregister(self, name: str) -> None:
        with self._lock:
            self.pm.unregister(name=name)
            self._registries = None

    @property
    def registries(self) -> dict[str, Registry]:
        with self._lock:
            if self._registries is None:
                self._registries = self._collect()
            return self._registries

    def _collect(self) -> dict[str, Registry]:
        registries = {kind: Registry(kind) for kind in KINDS}
        for kind in KINDS:
            caller = getattr(self.pm.hook, f"register_{kind}")
            for impl in caller.get_hookimpls():
                registry = registries[kind]
                plugin_name = impl.plugin_name

                def register(*args, _registry=registry, _plugin=plugin_name, _kind=kind) -> None:
                    key, value = _default_key(_kind, args)
                    _registry.add(key, value, _plugin)

                impl.function(register=register)
        return registries

    # Convenience lookups -------------------------------------------------
    def get(self, kind: str, name: str) -> Any:
        return self.registries[kind].get(name)

    def step(self, name: str):
        return self.get("steps", name)

    def backend(self, name: str):
        return self.get("backends", name)

    def plugin_names(self) -> list[str]:
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
