"""`pearl bench cost` on the OpenAI-compatible test double: the table's figures, --set, the limit."""

import json

import pytest

from openai_double import OpenAITestDouble
from pearl.errors import InputError
from pearl.plugins.bench_cost import limit_seconds, pipeline_doc


def test_set_and_refine_edit_only_pipelines_with_that_step():
    doc, _ = pipeline_doc("csa", ["anticipate.mode=pairs", "refine.backward=node", "refine.max_calls=60"], 1)
    assert doc["steps"]["anticipate"]["mode"] == "pairs" and doc["steps"]["refine"]["backward"] == "node"
    assert doc["steps"]["refine"]["max_calls"] == 60 and doc["steps"]["refine"]["schedule"] == ["both"]
    direct, _ = pipeline_doc("direct", ["anticipate.mode=pairs"], 1)
    assert "anticipate" not in direct["steps"]
    with pytest.raises(InputError, match="STEP.PARAM=VALUE"):
        pipeline_doc("csa", ["mode=pairs"], None)


def test_limit_is_the_tokens_at_the_measured_speeds():
    speed = {"prefill_tokens_per_s": 100.0, "decode_tokens_per_s": 10.0}
    u = {"calls": 2, "prompt_tokens": 1200, "cached_tokens": 200, "completion_tokens": 50, "seconds": 30.0}
    assert limit_seconds(u, speed) == pytest.approx(1000 / 100 + 50 / 10)


def test_bench_cost_prints_calls_and_tokens_per_answer(run_cli):
    with OpenAITestDouble(lambda body: {"response": "hello there"}) as double:
        out = run_cli(["bench", "cost", "--pipelines", "direct", "--limit", "2", "--no-speed", "--json",
                       "--backend", "openai", "--backend-url", double.url, "--option", "schema_format=json_schema"])
        chats = [b for b in double.requests if b.get("messages")]
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    answer = report["pipelines"]["direct"]["answer"]
    assert report["conversations"] == 2 and report["speed"] is None
    assert answer["calls"] == 1.0  # one call per answer
    assert answer["prompt_tokens"] > 0 and answer["completion_tokens"] == 3.0  # the double counts the words of {"response": "hello there"}
    assert report["pipelines"]["direct"]["steps"]["answer"]["calls"] == 1.0
    assert len(chats) >= 2
    text = run_cli(["bench", "cost", "--pipelines", "direct", "--limit", "0"])
    assert text.returncode == 2 and "--limit 0" in text.stderr
