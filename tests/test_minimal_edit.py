"""The minimal-edit rule: properties over random strategy sets (hypothesis), and examples."""

from hypothesis import given, settings
from hypothesis import strategies as st

from pearl.strategies.minimal_edit import changed, jaccard, key, minimal_edit, normalise, tokens

words = st.sampled_from(["ask", "kindly", "offer", "help", "a", "hotline", "resource", "  calm ", "Calm", "steps",
                         "explain", "risk", "安全", "帮助", "建议"])
strategy = st.lists(words, min_size=0, max_size=4).map(" ".join)
sets = st.lists(strategy, max_size=6)


@settings(max_examples=400, deadline=None)
@given(sets, sets)
def test_properties(old, proposed):
    result = minimal_edit(old, proposed)
    old_keys = [key(x) for x in normalise(old)]
    prop_keys = {key(x) for x in normalise(proposed)}
    res_keys = [key(x) for x in result]
    # no duplicates, no blanks
    assert len(res_keys) == len(set(res_keys)) and all(x.strip() for x in result)
    # the shared strategies are kept, in the old order, with the old wording
    shared = [x for x in normalise(old) if key(x) in prop_keys]
    assert result[: len(shared)] == shared
    # at most one new strategy, and it comes from the proposal
    new = [k for k in res_keys if k not in old_keys]
    assert len(new) <= 1 and all(k in prop_keys for k in new)
    # nothing outside old ∪ proposed; old items the proposal dropped are gone
    assert set(res_keys) <= set(old_keys) | prop_keys
    assert all(k in prop_keys for k in res_keys)
    # never a silent revert: a different proposal gives a different set
    if changed(old, proposed):
        assert changed(old, result)
    else:
        assert result == normalise(old)


@settings(max_examples=200, deadline=None)
@given(sets)
def test_same_proposal_is_identity(old):
    assert minimal_edit(old, old) == normalise(old)
    assert minimal_edit(old, list(reversed(old))) == normalise(old)  # reordering is not a change


def test_adds_the_least_similar_new_strategy():
    old = ["offer a hotline", "express care"]
    proposed = ["offer a hotline", "offer a hotline number", "suggest one small step today"]
    assert minimal_edit(old, proposed) == ["offer a hotline", "suggest one small step today"]


def test_replaces_when_nothing_is_shared():
    assert minimal_edit(["refuse"], ["explain the law", "point to a lawyer"]) == ["explain the law"]


def test_whitespace_and_case_are_not_changes():
    assert minimal_edit(["Ask  about ownership "], ["ask about ownership"]) == ["Ask about ownership"]


def test_tokens_work_without_spaces():
    assert tokens("提供帮助") == frozenset("提供帮助")
    assert jaccard("提供帮助", "提供建议") == 2 / 6
    assert jaccard("Offer help", "offer HELP") == 1.0
