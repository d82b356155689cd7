"""Schema-constrained calls always have room to finish their JSON (`pearl.lm.schema`).

A constrained answer cut off at `max_tokens` cannot be parsed; these tests pin the
bound computation, the sharing of a call's budget among free strings, and that every
LM program of every shipped pipeline ends up with a finite answer length.
"""

from __future__ import annotations

import json

import dspy
import pytest
from dspy.adapters.json_adapter import _get_structured_outputs_response_format
from pydantic import TypeAdapter

from pearl.runtime.pipeline import load, shipped_pipelines
from pearl.lm.base import PearlLM, fit_to_budget
from pearl.lm.schema import bound_free_strings, max_answer_chars
from pearl.strategies.fields import text, text_list


def longest_instance(schema):
    """A JSON value of the schema with every bound used to the full (test helper)."""
    kind = schema.get("type")
    if "enum" in schema:
        return max(schema["enum"], key=lambda v: len(json.dumps(v)))
    if kind == "string":
        return "x" * schema["maxLength"]
    if kind == "integer":
        return -(10 ** 22)
    if kind == "boolean":
        return False
    if kind == "array":
        return [longest_instance(schema["items"])] * schema["maxItems"]
    if kind == "object":
        return {k: longest_instance(v) for k, v in schema["properties"].items()}
    raise AssertionError(kind)


OBJECT = {
    "type": "object",
    "properties": {
        "reply": {"type": "string"},
        "tag": {"type": "string", "enum": ["yes", "no", "maybe"]},
        "notes": {"type": "array", "maxItems": 3, "items": {"type": "string", "maxLength": 10}},
        "score": {"type": "integer"},
        "ok": {"type": "boolean"},
    },
    "required": ["reply", "tag", "notes", "score", "ok"],
}


def test_bound_covers_the_longest_answer_with_separators():
    schema = {**OBJECT, "properties": {**OBJECT["properties"], "reply": {"type": "string", "maxLength": 40}}}
    bound = max_answer_chars(schema)
    longest = json.dumps(longest_instance(schema), separators=(", ", ": "))
    assert bound is not None and bound >= len(longest)
    assert bound - len(longest) < 40  # not wildly above it


def test_unbounded_strings_and_arrays_have_no_bound():
    assert max_answer_chars(OBJECT) is None  # "reply" has no maxLength
    assert max_answer_chars({"type": "array", "items": {"type": "string", "maxLength": 3}}) is None
    assert max_answer_chars({"type": "string", "enum": ["a", "bcd"]}) == len('"bcd"')


def test_refs_and_any_of_are_followed():
    schema = {"$defs": {"Short": {"type": "string", "maxLength": 5}},
              "type": "object", "properties": {"a": {"$ref": "#/$defs/Short"},
                                               "b": {"anyOf": [{"$ref": "#/$defs/Short"}, {"type": "null"}]}}}
    assert max_answer_chars(schema) == 2 + (3 + 2 + 7 + 2) * 2


def test_free_strings_share_the_budget_and_bounded_fields_are_kept():
    fitted = bound_free_strings(OBJECT, max_tokens=100)
    assert fitted["properties"]["reply"]["maxLength"] == 300  # the only free string: 3 chars per token
    assert fitted["properties"]["notes"]["items"]["maxLength"] == 10
    assert "maxLength" not in OBJECT["properties"]["reply"]  # the caller's schema is not touched
    two = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "array", "maxItems": 2,
                                                                           "items": {"type": "string"}}}}
    shared = bound_free_strings(two, max_tokens=90)
    assert shared["properties"]["a"]["maxLength"] == 90 == shared["properties"]["b"]["items"]["maxLength"]


def test_fit_to_budget_raises_max_tokens_only_for_structured_calls():
    assert fit_to_budget(None, 48) == (None, 48)
    fitted, budget = fit_to_budget(OBJECT, 48)
    assert budget == max_answer_chars(fitted) > 48
    small = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    assert fit_to_budget(small, 48)[1] == 48  # never lowered


def test_pearl_lm_requests_carry_the_fitted_schema():
    class QA(dspy.Signature):
        question: str = dspy.InputField()
        answer: str = dspy.OutputField()

    lm = PearlLM("test/none", max_tokens=48)
    asked = lm.build_request(messages=[{"role": "user", "content": "?"}],
                             response_format=_get_structured_outputs_response_format(QA))
    request = lm.fit(asked)
    assert request.json_schema["properties"]["answer"]["maxLength"] == 144
    assert request.max_tokens == max_answer_chars(request.json_schema) > 48
    lm.max_string_chars = 100  # a grammar engine's limit caps the share
    assert lm.fit(asked).json_schema["properties"]["answer"]["maxLength"] == 100


def test_text_list_bounds_decoding_not_validation():
    phrases = text_list("Phrases", 2, text("Phrase", 8))
    adapter = TypeAdapter(phrases)
    assert adapter.json_schema() == {"type": "array", "maxItems": 2, "items": {"type": "string", "maxLength": 8}}
    assert adapter.validate_python(["a", "b", "c"]) == ["a", "b", "c"]  # the reading step caps it


def test_text_fields_keep_answers_that_look_like_json():
    class Note(dspy.Signature):
        topic: str = dspy.InputField()
        rationale: text("Sentence", 40) = dspy.OutputField()

    from dspy.utils import DummyLM

    for said in ("1", "3555", '{"a": 1}'):
        with dspy.context(lm=DummyLM([{"rationale": said}], adapter=dspy.JSONAdapter()), adapter=dspy.JSONAdapter()):
            assert dspy.Predict(Note)(topic="x").rationale == said
    assert TypeAdapter(text("Sentence", 40)).json_schema() == {"type": "string", "maxLength": 40}


def _predictors(obj, seen=None):
    """Every dspy.Predict reachable from a step's attributes (its program, its judges)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    if isinstance(obj, dspy.Predict):
        return [obj]
    if isinstance(obj, dspy.Module):
        return [p for _, p in obj.named_predictors()]
    found = []
    for value in getattr(obj, "__dict__", {}).values():
        if isinstance(value, (dspy.Module, dspy.Predict)) or hasattr(value, "program") or hasattr(value, "judge"):
            found += _predictors(value, seen)
    return found


@pytest.mark.parametrize("name", sorted(shipped_pipelines()))
def test_every_shipped_program_has_a_finite_answer_length(host, name):
    pipeline = load(name, host)
    predictors = [p for step in pipeline.steps.values() for p in _predictors(step)]
    assert predictors or all(not s.uses_lm for s in pipeline.steps.values())
    for predictor in predictors:
        schema = _get_structured_outputs_response_format(predictor.signature).model_json_schema()
        fitted, budget = fit_to_budget(schema, 256)
        assert max_answer_chars(fitted) is not None, f"{name}: {predictor.signature.__name__} is unbounded"
        assert budget <= 4096, f"{name}: {predictor.signature.__name__} needs {budget} tokens"
