"""Risk taxonomies as plugins, and the one lookup every step uses: `get_taxonomy`.

Extension point (hook `register_taxonomies`)::

    from pearl import hookimpl

    @hookimpl
    def register_taxonomies(register):
        register("my-taxonomy", load_my_taxonomy)   # load_my_taxonomy() -> pearl.csa.Taxonomy

The loader is called lazily, at most once per host and name (`get_taxonomy` caches
the result), so a plugin can register many taxonomies cheaply. A loader must return
a `pearl.csa.Taxonomy`; it may raise a `PearlError` whose message names the problem
and the fix, anything else is reported as a fault of the plugin.

This module is itself the built-in plugin: it registers the taxonomies shipped as
JSON files under `pearl/plugins/data/` (`oyster`, `mlcommons`).
"""

from __future__ import annotations

import json
import threading
import weakref
from functools import partial
from importlib import resources
from typing import TYPE_CHECKING

from pydantic import ValidationError

from pearl.csa import UNKNOWN_CATEGORY, Taxonomy
from pearl.errors import PearlError
from pearl.host.hookspecs import hookimpl

if TYPE_CHECKING:
    from pearl.host.manager import Host

#: Taxonomies shipped with the package, each `pearl/plugins/data/<name>.json`.
PACKAGED_TAXONOMIES: tuple[str, ...] = ("oyster", "mlcommons")


class TaxonomyError(PearlError):
    """A taxonomy is unknown, or its file or loader is broken."""


def read_packaged(filename: str) -> dict:
    """Parse one JSON file from `pearl/plugins/data/`."""
    path = resources.files("pearl.plugins").joinpath("data", filename)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TaxonomyError(
            f"packaged data file 'pearl/plugins/data/{filename}' is missing: reinstall pearlpoint"
        ) from None
    except json.JSONDecodeError as exc:
        raise TaxonomyError(
            f"packaged data file 'pearl/plugins/data/{filename}' is not valid JSON (line {exc.lineno}): "
            f"{exc.msg}; fix the file or reinstall pearlpoint"
        ) from None


def load_packaged(name: str) -> Taxonomy:
    """Load the taxonomy shipped as `pearl/plugins/data/<name>.json`.

    Keys the `Taxonomy` model does not know (e.g. `catalogue_groups`, `codes`) are
    ignored here; the modules that need them read the file themselves.
    """
    data = read_packaged(f"{name}.json")
    try:
        return Taxonomy.model_validate(data)
    except ValidationError as exc:
        raise TaxonomyError(
            f"packaged taxonomy 'pearl/plugins/data/{name}.json' is invalid: {_first_error(exc)}; "
            f"fix the file or reinstall pearlpoint"
        ) from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "top level"
    return f"{where}: {err.get('msg', 'invalid')}"


@hookimpl
def register_taxonomies(register):
    for name in PACKAGED_TAXONOMIES:
        register(name, partial(load_packaged, name))


# --- helpers for steps --------------------------------------------------------------------

def category_choices(taxonomy: Taxonomy) -> list[str]:
    """The ids a classifier may answer with: every category id, then `"unknown"`."""
    return [*taxonomy.category_ids(), UNKNOWN_CATEGORY]


def catalogue_text(taxonomy: Taxonomy, *, with_descriptions: bool = True) -> str:
    """A compact listing for prompts: one line per category, under its group.

    Group order and category order follow the taxonomy; ends with the `unknown` line.
    """
    lines: list[str] = []
    for group in taxonomy.groups:
        members = [c for c in taxonomy.categories if c.group == group.id]
        if not members:
            continue
        lines.append(f"{group.name}:")
        for c in members:
            lines.append(f"- {c.id}: {c.name}" + (f" — {c.description}" if with_descriptions and c.description else ""))
    lines.append(f"- {UNKNOWN_CATEGORY}: none of the above, or no risk")
    return "\n".join(lines)


# --- lookup ------------------------------------------------------------------------------

_cache: "weakref.WeakKeyDictionary[Host, tuple[object, dict[str, Taxonomy]]]" = weakref.WeakKeyDictionary()
_cache_lock = threading.RLock()


def taxonomy_names(host: "Host | None" = None) -> list[str]:
    """Names of the registered taxonomies, sorted."""
    host = _host(host)
    return host.registries["taxonomies"].names()


def get_taxonomy(host: "Host | None", name: str) -> Taxonomy:
    """The taxonomy registered as `name` on `host` (the process host if None).

    Loaded once per host and name; registering or unregistering a plugin on the host
    starts a fresh cache. Raises `TaxonomyError` for an unknown name (listing the
    known ones) and for a loader that fails or returns something else.
    """
    host = _host(host)
    registry = host.registries["taxonomies"]
    with _cache_lock:
        cached = _cache.get(host)
        if cached is None or cached[0] is not registry:
            cached = (registry, {})
            _cache[host] = cached
        loaded = cached[1]
        if name in loaded:
            return loaded[name]
        if name not in registry:
            known = ", ".join(registry.names()) or "none"
            raise TaxonomyError(
                f"unknown taxonomy '{name}': registered taxonomies are {known}; "
                f"pick one of them (pearl taxonomy --list) or install the plugin that provides it"
            )
        entry = registry.entries[name]
        taxonomy = _call_loader(name, entry.value, entry.plugin)
        loaded[name] = taxonomy
        return taxonomy


def _call_loader(name: str, loader, plugin: str) -> Taxonomy:
    if not callable(loader):
        raise TaxonomyError(
            f"plugin '{plugin}' registered taxonomy '{name}' with a {type(loader).__name__}, not a loader: "
            f"call register(name, loader) where loader() returns a pearl.csa.Taxonomy"
        )
    try:
        taxonomy = loader()
    except PearlError:
        raise
    except ValidationError as exc:
        raise TaxonomyError(
            f"taxonomy '{name}' from plugin '{plugin}' is invalid: {_first_error(exc)}; fix the plugin's data"
        ) from exc
    except Exception as exc:
        raise TaxonomyError(
            f"taxonomy '{name}' from plugin '{plugin}' failed to load: {exc.__class__.__name__}: {exc}; "
            f"fix or uninstall the plugin"
        ) from exc
    if not isinstance(taxonomy, Taxonomy):
        raise TaxonomyError(
            f"taxonomy loader '{name}' from plugin '{plugin}' returned a {type(taxonomy).__name__}, "
            f"not a pearl.csa.Taxonomy: make the loader return Taxonomy(...)"
        )
    return taxonomy


def _host(host: "Host | None") -> "Host":
    if host is not None:
        return host
    from pearl.host.manager import get_host

    return get_host()
