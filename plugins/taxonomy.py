"""The built-in taxonomy plugin: registers the taxonomies shipped as JSON files under
`pearl/plugins/data/` (`oyster`, `mlcommons`).

How taxonomies are registered and looked up (`get_taxonomy`) is `pearl.csa.taxonomy`.
"""

from __future__ import annotations

import json
from functools import partial
from importlib import resources

from pydantic import ValidationError

from pearl.csa import Taxonomy
from pearl.csa.taxonomy import TaxonomyError, first_error
from pearl.host.hookspecs import hookimpl

#: Taxonomies shipped with the package, each `pearl/plugins/data/<name>.json`.
PACKAGED_TAXONOMIES: tuple[str, ...] = ("oyster", "mlcommons")


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
            f"packaged taxonomy 'pearl/plugins/data/{name}.json' is invalid: {first_error(exc)}; "
            f"fix the file or reinstall pearlpoint"
        ) from None


@hookimpl
def register_taxonomies(register):
    for name in PACKAGED_TAXONOMIES:
        register(name, partial(load_packaged, name))
