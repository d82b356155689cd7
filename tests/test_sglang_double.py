"""The strict SGLang double refuses what SGLang refuses, with SGLang's status and error shape.

Each case names the SGLang rule (tests/sglang_rules.py cites the source file). When SGLang's
own generated contract decoder is loadable (`sglang/api/v1/api_types.py`, which needs only
msgspec; not installed here by default), `test_the_replica_agrees_with_sglangs_own_decoder`
also checks the replica against it.
"""

from __future__ import annotations

import httpx
import pytest

import sglang_rules as rules
from sglang_double import SGLangTestDouble


@pytest.fixture
def server():
    with SGLangTestDouble(context_length=100) as d:
        yield d


def post(d, path, body):
    return httpx.post(d.url + path, json=body, timeout=5)


def test_unknown_sampling_key_is_a_contract_400(server):
    r = post(server, "/generate", {"text": "hi", "sampling_params": {"max_new_tokens": 4, "seed": 1}})
    assert r.status_code == 400
    assert r.json()["error"].startswith("unknown field `seed`, expected one of `max_new_tokens`")


@pytest.mark.parametrize("params, expected", [
    ({"temperature": "0"}, 'invalid type: string "0", expected f64'),
    ({"max_new_tokens": 3.0}, "invalid type: floating point `3.0`, expected i64"),
    ({"json_schema": {"type": "object"}}, "invalid type: map, expected a string"),
    ({"stop": ["a", 1]}, "invalid type: integer `1`, expected a string"),
])
def test_wrong_types_are_contract_400s(server, params, expected):
    r = post(server, "/generate", {"text": "hi", "sampling_params": params})
    assert r.status_code == 400 and r.json() == {"error": expected}


def test_stop_strings_are_limited_to_32(server):
    ok = post(server, "/generate", {"text": "hi", "sampling_params": {"stop": ["x"] * 32, "max_new_tokens": 4}})
    assert ok.status_code == 200
    r = post(server, "/generate", {"text": "hi", "sampling_params": {"stop": ["x"] * 33}})
    assert r.status_code == 400 and r.json() == {"error": {"message": "at most 32 stop strings are allowed, got 33"}}


def test_two_grammars_and_batch_shapes_are_refused(server):
    r = post(server, "/generate", {"text": "hi", "sampling_params": {"regex": "a", "ebnf": "root ::= \"a\""}})
    assert r.status_code == 400 and "Only one of json_schema, regex, ebnf" in r.json()["error"]["message"]
    r = post(server, "/generate", {"text": ["a", "b"], "sampling_params": [{}]})
    assert r.status_code == 500 and r.text == "Internal Server Error"  # SGLang indexes the list unchecked
    r = post(server, "/generate", {"sampling_params": {}})
    assert r.json() == {"error": {"message": "Either text, input_ids or input_embeds should be provided."}}


def test_the_context_length_is_enforced_for_the_whole_batch(server):
    r = post(server, "/generate", {"text": ["short", "x" * 120], "sampling_params": {"max_new_tokens": 4}})
    assert r.status_code == 400
    assert r.json()["error"]["message"] == ("The input (125 tokens) is longer than the model's context length "
                                            "(100 tokens).")
    assert not server.prompts_seen  # nothing of a refused batch was run
    r = post(server, "/generate", {"text": "short", "sampling_params": {"max_new_tokens": 99}})
    assert "You requested a total of 109 tokens" in r.json()["error"]["message"]


def test_chat_errors_have_the_openai_shape(server):
    r = post(server, "/v1/chat/completions", {"messages": []})
    assert r.status_code == 400
    assert r.json() == {"object": "error", "message": "Messages cannot be empty.", "type": "BadRequestError",
                        "param": None, "code": 400}
    both = {"messages": [{"role": "user", "content": "hi"}], "regex": "a",
            "response_format": {"type": "json_schema", "json_schema": {"name": "o", "schema": {"type": "object"}}}}
    r = post(server, "/v1/chat/completions", both)
    assert r.status_code == 400 and "Only one of json_schema, regex" in r.json()["message"]
    r = post(server, "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"})
    assert r.json()["type"] == "Bad Request" and "temperature" in r.json()["message"]


def test_tokenize_renders_messages_with_the_servers_template(server):
    r = post(server, "/v1/tokenize", {"messages": [{"role": "user", "content": "hi"}]})
    text = "".join(map(chr, r.json()["tokens"]))
    assert text == "<bos><start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n"
    assert r.json()["max_model_len"] == 100
    with SGLangTestDouble(tokenize_messages=False) as old:
        r = post(old, "/v1/tokenize", {"messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400 and r.json()["object"] == "error"


def test_bos_is_added_to_text_so_a_templated_bos_is_counted_twice(server):
    post(server, "/generate", {"text": "<bos>hi", "sampling_params": {"max_new_tokens": 4}})
    assert server.double_bos == 1


def test_health_is_503_while_starting():
    with SGLangTestDouble(starting_seconds=30) as d:
        assert httpx.get(d.url + "/health").status_code == 503
    with SGLangTestDouble() as d:
        assert httpx.get(d.url + "/health").status_code == 200


def test_the_router_takes_only_single_prompts():
    with SGLangTestDouble(mode="router") as router:
        r = post(router, "/generate", {"text": ["a", "b"], "sampling_params": [{}, {}]})
        assert r.status_code == 422 and r.headers["content-type"].startswith("text/plain")
        assert "text: invalid type: sequence, expected a string" in r.text
        assert post(router, "/generate", {"text": "a", "sampling_params": {"max_new_tokens": 4}}).status_code == 200
        assert httpx.get(router.url + "/workers").json()["total"] == 1
        assert httpx.get(router.url + "/health").text == "OK"


CONTRACT_CASES = [
    {"text": ["a", "b"], "sampling_params": [{"max_new_tokens": 3}, {"json_schema": "{}", "temperature": 0}]},
    {"input_ids": [[1, 2], [3]], "sampling_params": [{"stop": ["x"]}, {"regex": "a"}]},
    {"text": "a", "sampling_params": {"foo": 1}},
    {"text": "a", "sampling_params": {"temperature": "x"}},
    {"text": "a", "sampling_params": {"max_new_tokens": 3.0}},
    {"text": "a", "sampling_params": {"json_schema": {"type": "object"}}},
    {"text": "a", "sampling_params": {"stop": "x", "top_p": 1}},
    {"text": "a", "sampling_params": {"ignore_eos": 1}},
]


def test_the_replica_agrees_with_sglangs_own_decoder():
    if rules._sglang_contract() is None:
        pytest.skip("SGLang's api_types.py is not loadable here (pip install --no-deps sglang, and msgspec)")
    for body in CONTRACT_CASES:
        outcomes = []
        for use_sglang in (True, False):
            try:
                rules.generate_contract(body, use_sglang=use_sglang)
                outcomes.append(None)
            except rules.Rejected as exc:
                outcomes.append(exc.payload["error"])
        assert outcomes[0] == outcomes[1], body
