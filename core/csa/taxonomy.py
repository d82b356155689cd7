"""Taxonomy lookups: the one place steps, commands and evaluation find a registered taxonomy.

Taxonomies are registered by plugins (hook `register_taxonomies`)::

    from pearl import hookimpl

    @hookimpl
    def register_taxonomies(register):
        register("my-taxonomy", load_my_taxonomy)   # load_my_taxonomy() -> pearl.csa.Taxonomy

The loader is called lazily, at most once per host and name (`get_taxonomy` caches the
result), so a plugin can register many taxonomies cheaply. A loader must return a
`pearl.csa.Taxonomy`; it may raise a `PearlError` whose message names the problem and the
fix, anything else is reported as a fault of the plugin. The built-in plugin
`pearl.plugins.taxonomy` registers the shipped ones (`oyster`, `mlcommons`).
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING

from pydantic import ValidationError

from pearl.csa import UNKNOWN_CATEGORY, Taxonomy
from pearl.errors import PearlError

if TYPE_CHECKING:
    from pearl.host.manager import Host


class TaxonomyError(PearlError):
    """A taxonomy is unknown, or its file or loader is broken."""


def first_error(exc: ValidationError) -> str:
    """`where: message` of a validation error's first problem, for one-line errors."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "top level"
    return f"{where}: {err.get('msg', 'invalid')}"


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
            f"taxonomy '{name}' from plugin '{plugin}' is invalid: {first_error(exc)}; fix the plugin's data"
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
