"""Category mappings between taxonomies: what makes a taxonomy swappable.

A mapping is a packaged JSON file `pearl/plugins/data/map_<a>_<b>.json` with keys
`from`, `to`, `forward` (every category id of `from` -> ids of `to`) and `backward`
(every category id of `to` -> ids of `from`). `"unknown"` (`pearl.csa.UNKNOWN_CATEGORY`)
marks a category with no counterpart; it is written explicitly, never implied by a
missing key, so an incomplete mapping is an error rather than a silent gap.

    map_category("oyster", "mlcommons", "mental_health")   # -> ["suicide_self_harm"]
    map_category("mlcommons", "oyster", "hate")            # -> ["race_...", ..., "hate_and_abuse"]
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from pydantic import BaseModel, Field, ValidationError, model_validator

from pearl.csa import Taxonomy, UNKNOWN_CATEGORY
from pearl.csa.taxonomy import TaxonomyError
from pearl.plugins.taxonomy import read_packaged


class CategoryMapping(BaseModel):
    """A two-way mapping between the categories of taxonomies `source` and `target`."""

    source: str = Field(alias="from")
    target: str = Field(alias="to")
    description: str = ""
    forward: dict[str, list[str]]
    backward: dict[str, list[str]]

    @model_validator(mode="after")
    def _explicit(self) -> "CategoryMapping":
        for direction in (self.forward, self.backward):
            for key, values in direction.items():
                if not values:
                    raise ValueError(f"'{key}' maps to nothing: write [\"{UNKNOWN_CATEGORY}\"] when it has no counterpart")
                if UNKNOWN_CATEGORY in values and len(values) > 1:
                    raise ValueError(f"'{key}' maps to '{UNKNOWN_CATEGORY}' and to other categories")
        return self

    def direction(self, source: str, target: str) -> dict[str, list[str]] | None:
        if (source, target) == (self.source, self.target):
            return self.forward
        if (source, target) == (self.target, self.source):
            return self.backward
        return None


@lru_cache(maxsize=1)
def packaged_mappings() -> tuple[CategoryMapping, ...]:
    """All `map_*.json` files shipped in `pearl/plugins/data/`."""
    folder = resources.files("pearl.plugins").joinpath("data")
    found = []
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if item.name.startswith("map_") and item.name.endswith(".json"):
            try:
                found.append(CategoryMapping.model_validate(read_packaged(item.name)))
            except ValidationError as exc:
                err = exc.errors()[0]
                raise TaxonomyError(
                    f"packaged mapping 'pearl/plugins/data/{item.name}' is invalid: {err['msg']}; "
                    f"fix the file or reinstall pearlpoint"
                ) from None
    return tuple(found)


def _name(taxonomy: str | Taxonomy) -> str:
    return taxonomy.name if isinstance(taxonomy, Taxonomy) else taxonomy


def find_mapping(source: str | Taxonomy, target: str | Taxonomy) -> dict[str, list[str]]:
    """The category table from `source` to `target`; `TaxonomyError` if none is shipped."""
    source, target = _name(source), _name(target)
    for mapping in packaged_mappings():
        table = mapping.direction(source, target)
        if table is not None:
            return table
    known = ", ".join(f"{m.source} <-> {m.target}" for m in packaged_mappings()) or "none"
    raise TaxonomyError(
        f"no category mapping between taxonomies '{source}' and '{target}' (shipped mappings: {known}); "
        f"use one of those taxonomies or add a map_{source}_{target}.json"
    )


def map_category(source: str | Taxonomy, target: str | Taxonomy, category_id: str) -> list[str]:
    """Ids of `target`'s categories that cover `category_id` of `source`, or `["unknown"]`.

    Mapping a taxonomy to itself returns `[category_id]`; `"unknown"` maps to
    `["unknown"]`. A category id the mapping does not list raises `TaxonomyError`.
    """
    source_name, target_name = _name(source), _name(target)
    if category_id == UNKNOWN_CATEGORY:
        return [UNKNOWN_CATEGORY]
    if source_name == target_name:
        if isinstance(source, Taxonomy) and source.category(category_id) is None:
            raise TaxonomyError(f"taxonomy '{source_name}' has no category '{category_id}'; "
                                f"see pearl taxonomy {source_name}")
        return [category_id]
    table = find_mapping(source_name, target_name)
    if category_id not in table:
        raise TaxonomyError(
            f"taxonomy '{source_name}' has no category '{category_id}' (mapping to '{target_name}'); "
            f"use one of its ids (pearl taxonomy {source_name}) or '{UNKNOWN_CATEGORY}'"
        )
    return list(table[category_id])


def llama_guard_codes() -> dict[str, str]:
    """Llama Guard 3 hazard codes of the `mlcommons` taxonomy: 'S1' -> 'violent_crimes', ..."""
    return dict(read_packaged("mlcommons.json")["codes"])
