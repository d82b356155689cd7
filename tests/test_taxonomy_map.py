"""The `mlcommons` taxonomy and its two-way mapping with `oyster`."""

from __future__ import annotations

import pytest

from pearl.csa import UNKNOWN_CATEGORY
from pearl.csa.taxonomy import TaxonomyError, get_taxonomy
from pearl.plugins.taxonomy_map import (CategoryMapping, find_mapping, llama_guard_codes, map_category,
                                        packaged_mappings)

HAZARDS = ["Violent Crimes", "Non-Violent Crimes", "Sex-Related Crimes", "Child Sexual Exploitation", "Defamation",
           "Specialized Advice", "Privacy", "Intellectual Property", "Indiscriminate Weapons", "Hate",
           "Suicide & Self-Harm", "Sexual Content", "Elections", "Code Interpreter Abuse"]


@pytest.fixture
def oyster(host):
    return get_taxonomy(host, "oyster")


@pytest.fixture
def mlcommons(host):
    return get_taxonomy(host, "mlcommons")


def test_mlcommons_has_the_14_hazards_in_order(mlcommons):
    assert [c.name for c in mlcommons.categories] == HAZARDS
    codes = llama_guard_codes()
    assert list(codes) == [f"S{i}" for i in range(1, 15)]
    assert list(codes.values()) == mlcommons.category_ids()
    for c in mlcommons.categories:
        assert c.description and 3 <= len(c.guideline) <= 6
        assert mlcommons.group(c.group) is not None


def test_every_oyster_category_maps_explicitly(oyster, mlcommons):
    forward = find_mapping("oyster", "mlcommons")
    assert set(forward) == set(oyster.category_ids())
    targets = set(mlcommons.category_ids()) | {UNKNOWN_CATEGORY}
    for cid in oyster.category_ids():
        mapped = map_category("oyster", "mlcommons", cid)
        assert mapped and set(mapped) <= targets, (cid, mapped)


def test_every_mlcommons_category_maps_back_explicitly(oyster, mlcommons):
    backward = find_mapping("mlcommons", "oyster")
    assert set(backward) == set(mlcommons.category_ids())
    targets = set(oyster.category_ids()) | {UNKNOWN_CATEGORY}
    for cid in mlcommons.category_ids():
        mapped = map_category(mlcommons, oyster, cid)
        assert mapped and set(mapped) <= targets, (cid, mapped)


def test_the_two_directions_agree():
    """a -> b lists b exactly when b -> a lists a (the mapping is one relation, written both ways)."""
    forward, backward = find_mapping("oyster", "mlcommons"), find_mapping("mlcommons", "oyster")
    pairs_forward = {(a, b) for a, bs in forward.items() for b in bs if b != UNKNOWN_CATEGORY}
    pairs_backward = {(a, b) for b, as_ in backward.items() for a in as_ if a != UNKNOWN_CATEGORY}
    assert pairs_forward == pairs_backward


def test_round_trip_returns_to_the_start(oyster):
    for cid in oyster.category_ids():
        there = map_category("oyster", "mlcommons", cid)
        if there == [UNKNOWN_CATEGORY]:
            continue
        back = {b for t in there for b in map_category("mlcommons", "oyster", t)}
        assert cid in back


@pytest.mark.parametrize("source, target, cid, expected", [
    ("oyster", "mlcommons", "mental_health", ["suicide_self_harm"]),
    ("oyster", "mlcommons", "healthcare", ["specialized_advice"]),
    ("oyster", "mlcommons", "cult", [UNKNOWN_CATEGORY]),
    ("mlcommons", "oyster", "elections", [UNKNOWN_CATEGORY]),
    ("mlcommons", "oyster", "indiscriminate_weapons", ["hazardous_materials"]),
    ("oyster", "mlcommons", UNKNOWN_CATEGORY, [UNKNOWN_CATEGORY]),
    ("oyster", "oyster", "gambling", ["gambling"]),
])
def test_examples(source, target, cid, expected):
    assert map_category(source, target, cid) == expected


def test_bad_lookups_are_clear():
    with pytest.raises(TaxonomyError, match="taxonomy 'oyster' has no category 'nope'"):
        map_category("oyster", "mlcommons", "nope")
    with pytest.raises(TaxonomyError, match="no category mapping between taxonomies 'oyster' and 'other'"):
        map_category("oyster", "other", "cult")


def test_a_mapping_must_be_explicit():
    with pytest.raises(ValueError, match="maps to nothing"):
        CategoryMapping.model_validate({"from": "a", "to": "b", "forward": {"x": []}, "backward": {}})
    with pytest.raises(ValueError, match="maps to 'unknown' and to other"):
        CategoryMapping.model_validate({"from": "a", "to": "b", "forward": {"x": ["unknown", "y"]}, "backward": {}})


def test_packaged_mappings_name_registered_taxonomies(host):
    from pearl.csa.taxonomy import taxonomy_names

    for m in packaged_mappings():
        assert {m.source, m.target} <= set(taxonomy_names(host))
