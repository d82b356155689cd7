"""`GrammarFastLlama` decodes exactly what llama-cpp-python's own grammar sampler decodes.

Greedy decoding under a grammar must not change when only the top-k candidates are
checked first; speed is measured by `tests/bench/grammar_sampling.py`, not here.
"""

import json

import pytest

pytestmark = pytest.mark.model

SCHEMAS = [
    {"type": "object", "properties": {"story": {"type": "string", "maxLength": 120}}, "required": ["story"]},
    {"type": "object", "properties": {
        "category": {"type": "string", "enum": ["housing", "finance", "unknown"]},
        "level": {"enum": ["R0", "R1", "R2"]}, "score": {"type": "integer"}, "ok": {"type": "boolean"},
        "moves": {"type": "array", "maxItems": 2, "items": {"type": "string", "maxLength": 40}}},
     "required": ["category", "level", "score", "ok", "moves"]},
]


@pytest.fixture(scope="module")
def models():
    from llama_cpp import Llama

    from pearl.plugins.llamacpp import default_model_path
    from pearl.plugins.llamacpp_sampling import GrammarFastLlama

    kw = dict(model_path=str(default_model_path()), n_ctx=1024, seed=0, verbose=False)
    return Llama(**kw), GrammarFastLlama(**kw)


@pytest.mark.parametrize("schema", SCHEMAS, ids=["long-string", "mixed"])
def test_greedy_output_is_identical_to_the_full_vocabulary_check(models, schema):
    outputs = []
    for llama in models:
        out = llama.create_chat_completion(messages=[{"role": "user", "content": "My landlord kept my deposit."}],
                                           response_format={"type": "json_object", "schema": schema},
                                           max_tokens=200, temperature=0)
        outputs.append(out["choices"][0]["message"]["content"])
    assert outputs[0] == outputs[1]
    assert set(json.loads(outputs[1])) == set(schema["properties"])


def test_sampling_with_temperature_stays_inside_the_grammar(models):
    _, fast = models
    schema = SCHEMAS[1]
    for seed in range(3):
        fast.set_seed(seed)
        out = fast.create_chat_completion(messages=[{"role": "user", "content": "Classify: my rent doubled."}],
                                          response_format={"type": "json_object", "schema": schema},
                                          max_tokens=200, temperature=0.9)
        value = json.loads(out["choices"][0]["message"]["content"])
        assert value["category"] in {"housing", "finance", "unknown"} and len(value["moves"]) <= 2
