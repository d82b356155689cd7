"""Taxonomy plugins: the shipped `oyster` data, registration through the hook, lookup and caching."""

from __future__ import annotations

import re

import pytest

from pearl import hookimpl
from pearl.csa import RiskCategory, RiskGroup, Taxonomy, UNKNOWN_CATEGORY
from pearl.csa.taxonomy import TaxonomyError, catalogue_text, category_choices, get_taxonomy, taxonomy_names

OYSTER_GROUPS = [
    "Ideology", "Legal Violations", "Ethical Issues", "Bias and Discrimination", "Physical and Mental Harm",
    "Hate and Abuse", "Information Privacy", "Misinformation", "Professional Field",
]


def test_oyster_is_registered_by_the_builtin_plugin(host):
    assert "oyster" in taxonomy_names(host)
    assert host.registries["taxonomies"].entries["oyster"].plugin == "pearl.plugins.taxonomy"


def test_oyster_structure(host):
    tax = get_taxonomy(host, "oyster")
    assert tax.name == "oyster"
    assert [g.name for g in tax.groups] == OYSTER_GROUPS
    assert len(tax.categories) == 32
    ids = tax.category_ids()
    assert len(set(ids)) == 32
    assert UNKNOWN_CATEGORY not in ids
    assert set(tax.levels) == {"R0", "R1", "R2"}


def test_oyster_ids_are_slugs_and_every_category_is_complete(host):
    tax = get_taxonomy(host, "oyster")
    group_ids = {g.id for g in tax.groups}
    for c in tax.categories:
        assert re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)*", c.id), c.id
        assert c.id == re.sub(r"[^a-z0-9]+", "_", c.name.lower()).strip("_")
        assert c.group in group_ids
        assert c.names.get("zh"), f"{c.id} has no Chinese name"
        assert c.description
        assert 3 <= len(c.guideline) <= 6, f"{c.id} has {len(c.guideline)} rules"
        assert all(rule.strip() and not re.match(r"\s*\d+[.)]", rule) for rule in c.guideline)


def test_every_oyster_group_has_categories(host):
    tax = get_taxonomy(host, "oyster")
    used = {c.group for c in tax.categories}
    assert used == {g.id for g in tax.groups}


def test_examples_from_the_method(host):
    tax = get_taxonomy(host, "oyster")
    assert tax.category("mental_health").group == "physical_and_mental_harm"
    assert tax.category("mental_health").names["zh"] == "心理健康"
    assert tax.category("healthcare").group == "professional_field"
    assert tax.category("personal_data").group == "information_privacy"
    assert tax.category("illegal_drugs").group == "legal_violations"


def test_lookup_is_cached_per_host(host):
    assert get_taxonomy(host, "oyster") is get_taxonomy(host, "oyster")


def test_unknown_name_lists_known(host):
    with pytest.raises(TaxonomyError, match=r"unknown taxonomy 'nope'.*oyster.*pearl taxonomy --list"):
        get_taxonomy(host, "nope")


def _tiny(name: str = "tiny") -> Taxonomy:
    return Taxonomy(
        name=name,
        groups=[RiskGroup(id="g", name="G")],
        categories=[RiskCategory(id="c", name="C", group="g", guideline=["be careful"])],
    )


def test_third_party_taxonomy_registers_and_cache_resets(host):
    calls = []

    class Plugin:
        @hookimpl
        def register_taxonomies(self, register):
            def load():
                calls.append(1)
                return _tiny()

            register("tiny", load)

    host.register(Plugin(), name="tiny-plugin")
    assert get_taxonomy(host, "tiny").category("c").guideline == ["be careful"]
    get_taxonomy(host, "tiny")
    assert calls == [1]
    host.unregister("tiny-plugin")
    with pytest.raises(TaxonomyError, match="unknown taxonomy 'tiny'"):
        get_taxonomy(host, "tiny")


@pytest.mark.parametrize("loader, fragment", [
    (lambda: {"name": "x"}, "returned a dict, not a pearl.csa.Taxonomy"),
    (lambda: 1 / 0, "failed to load: ZeroDivisionError"),
    ("not callable", "not a loader"),
])
def test_broken_loaders_are_reported_with_the_plugin(host, loader, fragment):
    class Plugin:
        @hookimpl
        def register_taxonomies(self, register):
            register("broken", loader)

    host.register(Plugin(), name="broken-plugin")
    with pytest.raises(TaxonomyError) as err:
        get_taxonomy(host, "broken")
    assert fragment in str(err.value) and "broken-plugin" in str(err.value)


def test_duplicate_taxonomy_name_names_both_plugins(host):
    from pearl.errors import PluginError

    class Plugin:
        @hookimpl
        def register_taxonomies(self, register):
            register("oyster", _tiny)

    host.register(Plugin(), name="copycat")
    with pytest.raises(PluginError, match="copycat"):
        get_taxonomy(host, "oyster")


def test_prompt_helpers(host):
    tax = get_taxonomy(host, "oyster")
    choices = category_choices(tax)
    assert choices[-1] == UNKNOWN_CATEGORY and choices[:-1] == tax.category_ids()
    text = catalogue_text(tax)
    lines = text.splitlines()
    assert len(lines) == 32 + 9 + 1
    assert lines[0] == "Ideology:" and lines[-1].startswith("- unknown:")
    assert "- mental_health: Mental Health — " in text
    assert "—" not in catalogue_text(tax, with_descriptions=False)
