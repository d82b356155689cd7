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


class ClockedLM:
    """Test double: answers after a simulated time of `prompt/prefill + completion/decode` seconds.

    `free_tokens` is how many tokens it writes as free text (a base model stops at once) and
    `schema_decode` the decode speed of its schema-bound path (llama.cpp's grammar is slower).
    """

    def __init__(self, clock, *, prefill=200.0, decode=20.0, schema_decode=5.0, free_tokens=96):
        self.clock, self.prefill, self.decode, self.schema_decode = clock, prefill, decode, schema_decode
        self.free_tokens = free_tokens

    def __call__(self, messages, max_tokens, temperature, response_format=None):
        from pearl.lm import usage
        prompt = len(messages[0]["content"].split())
        completion = (48 * 2 if response_format else min(self.free_tokens, max_tokens)) if max_tokens > 1 else 1
        speed = self.schema_decode if response_format else self.decode
        self.clock.now += prompt / self.prefill + completion / speed
        usage.record(prompt_tokens=prompt, completion_tokens=completion)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now


def test_speed_probe_takes_the_faster_of_free_text_and_schema_bound_decoding(monkeypatch):
    from pearl.plugins import bench_cost
    clock = FakeClock()
    monkeypatch.setattr(bench_cost, "time", clock)
    speed = bench_cost.measure_speed(ClockedLM(clock))
    assert speed["prefill_tokens_per_s"] == pytest.approx(200.0)
    assert speed["decode_free_tokens_per_s"] == pytest.approx(20.0)
    assert speed["decode_structured_tokens_per_s"] == pytest.approx(5.0)
    assert speed["decode_tokens_per_s"] == pytest.approx(20.0)
    base = bench_cost.measure_speed(ClockedLM(clock, free_tokens=3))  # a base model stops free text at once
    assert base["decode_free_tokens_per_s"] is None and base["decode_tokens_per_s"] == pytest.approx(5.0)
    report = {"backend": "b", "model": "m", "conversations": 1, "sets": [], "refine": None, "speed": base,
              "pipelines": {}}
    assert "(free text -- (stopped early), schema-bound 5.0)" in bench_cost.render(report)
    with pytest.raises(InputError, match="--no-speed"):
        bench_cost.measure_speed(_Stubborn(clock))


class _Stubborn(ClockedLM):
    """Test double: stops after 3 tokens whether or not a schema is asked for."""

    def __call__(self, messages, max_tokens, temperature, response_format=None):
        from pearl.lm import usage
        self.clock.now += 0.1
        usage.record(prompt_tokens=len(messages[0]["content"].split()), completion_tokens=min(3, max_tokens))
