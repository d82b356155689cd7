"""The `sglang` backend against `SGLangTestDouble` (SGLang's API shapes, see tests/sglang_double.py)."""

from __future__ import annotations

import json
import threading
import time

import dspy
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from pearl.host.backend import BackendSettings
from pearl.runtime.concurrency import map_in_context
from pearl.errors import BackendError
from pearl.lm.schema import max_answer_chars
from pearl.plugins.sglang import SGLangBackend
from pearl.lm import usage
from pearl.lm.metered import instrument
from sglang_double import SGLangTestDouble

GEMMA_LIKE_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<start_of_turn>{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{{ message['content'] | trim }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


@pytest.fixture
def tokenizer_dir(tmp_path):
    folder = tmp_path / "tok"
    folder.mkdir()
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": "<bos>", "eos_token": {"content": "<eos>"}, "chat_template": GEMMA_LIKE_TEMPLATE}))
    return folder


@pytest.fixture
def double(tokenizer_dir):
    with SGLangTestDouble(tokenizer_path=str(tokenizer_dir)) as d:
        yield d


def make_lm(url, **options):
    """The backend's LM as the runtime uses it: wrapped in `MeteredLM` (usage, spans)."""
    options.setdefault("backoff", 0.01)
    return instrument(SGLangBackend().create(BackendSettings(name="sglang", url=url, max_tokens=200, options=options)))


class Verdict(dspy.Signature):
    """Say whether the text is friendly."""

    policy: str = dspy.InputField()
    text: str = dspy.InputField()
    friendly: bool = dspy.OutputField()
    reason: str = dspy.OutputField()


def test_single_call_uses_chat_completions_with_json_schema(double):
    lm = make_lm(double.url)
    assert lm.model == "sglang/double/tiny-chat"
    assert lm.template is not None  # found through /get_model_info's tokenizer_path
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        pred = dspy.Predict(Verdict)(policy="be kind", text="hello")
    assert pred.friendly is True and pred.reason == "double"
    [chat] = double.posts("/v1/chat/completions")
    fmt = chat["body"]["response_format"]
    assert fmt["type"] == "json_schema"
    assert set(fmt["json_schema"]["schema"]["properties"]) == {"friendly", "reason"}
    assert not double.posts("/generate")


def test_concurrent_calls_are_coalesced_into_one_generate_batch(double):
    lm = make_lm(double.url, batch_window_ms=200)
    texts = [f"text number {i}" for i in range(4)]
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()), usage.meter() as m:
        preds = map_in_context(lambda t: dspy.Predict(Verdict)(policy="shared policy " * 20, text=t), texts)
    assert [p.friendly for p in preds] == [True] * 4
    [gen] = double.posts("/generate")
    body = gen["body"]
    assert isinstance(body["text"], list) and len(body["text"]) == 4
    assert isinstance(body["sampling_params"], list) and len(body["sampling_params"]) == 4
    for prompt, params in zip(body["text"], body["sampling_params"]):
        assert prompt.startswith("<start_of_turn>system\n")  # bos stripped: the server adds it
        assert prompt.endswith("<start_of_turn>model\n")
        # the budget (200) is raised to the longest answer of the fitted schema
        assert params["max_new_tokens"] == max_answer_chars(json.loads(params["json_schema"])) > 200
        assert params["temperature"] == 0.0
        assert set(json.loads(params["json_schema"])["properties"]) == {"friendly", "reason"}
    assert lm.stats["generate_prompts"] == 4
    # shared inputs first: siblings share a long prefix, which the (double's) radix cache serves
    assert m.total.calls == 4
    assert m.total.cached_tokens > 0.5 * m.total.prompt_tokens


def test_without_a_template_a_batch_goes_as_concurrent_chat_calls(tmp_path):
    with SGLangTestDouble(tokenizer_path=str(tmp_path / "not-here")) as d:
        lm = make_lm(d.url, batch_window_ms=100)
        assert lm.template is None
        out = map_in_context(lambda i: lm(messages=[{"role": "user", "content": f"q{i}"}])[0], range(3))
    assert out == ["double says: ok"] * 3
    assert len(d.posts("/v1/chat/completions")) == 3 and not d.posts("/generate")


def test_regex_and_ebnf_travel_as_sglang_extras(double):
    lm = make_lm(double.url, batch_window_ms=100)
    from pearl.lm.base import ChatRequest

    single = lm.complete(ChatRequest(messages=[{"role": "user", "content": "yes?"}], extra={"regex": "(yes|no)"}))
    assert single.text == "yes"
    assert double.posts("/v1/chat/completions")[0]["body"]["regex"] == "(yes|no)"
    reqs = [ChatRequest(messages=[{"role": "user", "content": f"n{i}"}], extra={"ebnf": 'root ::= "0"'})
            for i in range(2)]
    map_in_context(lm.complete, reqs)
    params = double.posts("/generate")[0]["body"]["sampling_params"]
    assert all(p["ebnf"] == 'root ::= "0"' and "json_schema" not in p for p in params)


def test_a_step_asks_for_a_regex_through_extra_body(double):
    class YesNo(dspy.Signature):
        question: str = dspy.InputField()
        answer: str = dspy.OutputField()

    lm = make_lm(double.url)
    with dspy.context(lm=lm, adapter=dspy.ChatAdapter()):
        dspy.Predict(YesNo)(question="ok?", config={"extra_body": {"regex": "(yes|no)"}})
    assert double.posts("/v1/chat/completions")[0]["body"]["regex"] == "(yes|no)"


def test_cached_tokens_from_chat_usage_reach_the_meter(double):
    lm = make_lm(double.url)
    msgs = [{"role": "system", "content": "a long shared system prompt " * 10}, {"role": "user", "content": "one"}]
    with usage.meter() as m:
        lm(messages=msgs)
        lm(messages=msgs[:1] + [{"role": "user", "content": "two"}])
    assert m.total.calls == 2
    assert m.total.cached_tokens >= len("a long shared system prompt " * 10)


def test_traceparent_is_sent_with_every_request(double):
    provider = TracerProvider()
    tracer = provider.get_tracer("test")
    lm = make_lm(double.url, batch_window_ms=100)
    with tracer.start_as_current_span("caller") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
        lm(messages=[{"role": "user", "content": "hi"}])
        map_in_context(lambda i: lm(messages=[{"role": "user", "content": f"x{i}"}]), range(2))
    posted = [r for r in double.requests if r["method"] == "POST"]
    assert len(posted) == 2
    for r in posted:
        assert r["headers"]["traceparent"].split("-")[1] == trace_id


def test_unreachable_server_is_a_clear_error():
    with pytest.raises(BackendError) as err:
        make_lm("http://127.0.0.1:9", max_retries=1)
    assert "no SGLang server at http://127.0.0.1:9: start one with `pearl backend launch sglang --model" in str(err.value)


def test_500_then_success_is_retried(double):
    lm = make_lm(double.url)
    double.fail(500, times=2)
    assert lm(messages=[{"role": "user", "content": "hi"}]) == ["double says: ok"]
    assert len(double.posts("/v1/chat/completions")) == 3


def test_persistent_5xx_gives_up_with_the_servers_message(double):
    lm = make_lm(double.url, max_retries=2)
    double.fail(503, times=3)
    with pytest.raises(BackendError, match="kept failing .* after 3 attempts .*HTTP 503: scripted failure 503"):
        lm(messages=[{"role": "user", "content": "hi"}])


def test_hanging_server_times_out(double):
    lm = make_lm(double.url, timeout=0.5)
    double.hang(3)
    t0 = time.perf_counter()
    with pytest.raises(BackendError, match="did not answer POST v1/chat/completions within 0.5 s"):
        lm(messages=[{"role": "user", "content": "hi"}])
    assert time.perf_counter() - t0 < 2.5


def test_malformed_body_is_a_clear_error(double):
    lm = make_lm(double.url)
    double.malformed()
    with pytest.raises(BackendError, match="not JSON"):
        lm(messages=[{"role": "user", "content": "hi"}])


def test_a_400_from_generate_reaches_every_caller_of_the_batch(double):
    lm = make_lm(double.url, batch_window_ms=100)
    double.fail(400)
    errors = []

    def call(i):
        try:
            lm(messages=[{"role": "user", "content": f"x{i}"}])
        except BackendError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(3)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(errors) == 3 and all("HTTP 400: scripted failure 400" in e for e in errors)


def test_check_reports_health(double):
    status = SGLangBackend().check(BackendSettings(name="sglang", url=double.url))
    assert status.startswith("healthy at " + double.url)
