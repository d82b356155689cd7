"""Labelled JSONL datasets and the shipped risk train/val sets."""

import json

import pytest

from pearl.csa import RISK_LEVELS, USER_TYPES
from pearl.errors import InputError
from pearl.optimization.labelled import load_examples
from pearl.optimization.metrics import gold_labels


def test_shipped_risk_sets_are_labelled_and_disjoint():
    train, val = load_examples("risk-train"), load_examples("risk-val")
    assert len(train) == 24 and len(val) == 12
    texts = {e.conversation.transcript() for e in train}
    assert not texts & {e.conversation.transcript() for e in val}
    for example in train + val:
        labels = gold_labels(example)
        assert set(labels) == {"category", "level", "user_type"}, example.id
        assert labels["level"] in RISK_LEVELS and labels["user_type"] in USER_TYPES
    assert {gold_labels(e)["level"] for e in val} == set(RISK_LEVELS)
    assert any(len(e.conversation.messages) > 1 for e in train)  # a multi-turn one


def test_shipped_categories_exist_in_the_oyster_taxonomy(host):
    if "oyster" not in host.registries["taxonomies"]:
        pytest.skip("the oyster taxonomy plugin is not installed in this build")
    from pearl.csa.taxonomy import get_taxonomy

    ids = set(get_taxonomy(host, "oyster").category_ids())
    for example in load_examples("risk-train") + load_examples("risk-val"):
        assert gold_labels(example)["category"] in ids, example.id


def test_loader_errors_name_the_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"prompt": "hi", "labels": {"level": "R0"}}\n{"prompt": \n')
    with pytest.raises(InputError, match=r"d.jsonl:2: not valid JSON"):
        load_examples(str(path))
    path.write_text('{"id": "a", "prompt": "hi"}\n{"id": "a", "prompt": "ho"}\n')
    with pytest.raises(InputError, match="id 'a' appears twice"):
        load_examples(str(path))
    path.write_text(json.dumps({"messages": [{"role": "assistant", "content": "hi"}]}) + "\n")
    with pytest.raises(InputError, match="d.jsonl:1"):
        load_examples(str(path))
    with pytest.raises(InputError, match="neither a file nor a shipped set"):
        load_examples("no-such-set")


def test_examples_have_the_conversation_as_only_input(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"prompt": "hi", "labels": {"risk": "low"}}\n')
    [example] = load_examples(str(path))
    assert set(example.inputs().keys()) == {"conversation"}
    assert gold_labels(example) == {"risk": "low"}
