"""The `sglang` backend against the strict `SGLangTestDouble` (tests/sglang_double.py), as a
single SGLang server and as SGLang's router: every test that takes `double` runs in both modes."""

from __future__ import annotations

import json
import logging
import threading
import time

import dspy
import pytest
from opentelemetry.sdk.trace import TracerProvider

from pearl.errors import BackendError, InputError
from pearl.host.backend import BackendSettings
from pearl.lm import usage
from pearl.lm.base import ChatRequest
from pearl.lm.metered import instrument
from pearl.lm.schema import max_answer_chars
from pearl.plugins import sglang as sglang_plugin
from pearl.plugins.sglang import PromptTooLongError, SGLangBackend
from pearl.runtime.concurrency import map_in_context
from sglang_double import SGLangTestDouble

GEMMA_LIKE_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<start_of_turn>{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{{ message['content'] | trim }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


@pytest.fixture(autouse=True)
def fresh_notices():
    sglang_plugin._told.clear()


@pytest.fixture
def tokenizer_dir(tmp_path):
    folder = tmp_path / "tok"
    folder.mkdir()
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": "<bos>", "eos_token": {"content": "<eos>"}, "chat_template": GEMMA_LIKE_TEMPLATE}))
    return folder


@pytest.fixture(params=["server", "router"])
def double(request, tokenizer_dir):
    with SGLangTestDouble(tokenizer_path=str(tokenizer_dir), mode=request.param) as d:
        yield d


def make_lm(url, **options):
    """The backend's LM as the runtime uses it: wrapped in `MeteredLM` (usage, spans)."""
    options.setdefault("backoff", 0.01)
    return instrument(SGLangBackend().create(BackendSettings(name="sglang", url=url, max_tokens=200, options=options)))


def user(text):
    return [{"role": "user", "content": text}]


def generate_bodies(double):
    return [p["body"] for p in double.posts("/generate")]


class Verdict(dspy.Signature):
    """Say whether the text is friendly."""

    policy: str = dspy.InputField()
    text: str = dspy.InputField()
    friendly: bool = dspy.OutputField()
    reason: str = dspy.OutputField()


def test_structured_calls_are_decoded_under_their_schema(double):
    lm = make_lm(double.url, batch_window_ms=200)
    assert lm.model == "sglang/double/tiny-chat"
    texts = [f"text number {i}" for i in range(4)]
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()), usage.meter() as m:
        single = dspy.Predict(Verdict)(policy="be kind", text="hello")
        preds = map_in_context(lambda t: dspy.Predict(Verdict)(policy="shared policy " * 20, text=t), texts)
    assert single.friendly is True and single.reason == "double"
    assert [p.friendly for p in preds] == [True] * 4
    params = [b["sampling_params"] for b in generate_bodies(double)]
    flat = [p for ps in params for p in (ps if isinstance(ps, list) else [ps])]
    assert len(flat) == 5
    for p in flat:
        # the budget (200) is raised to the longest answer of the fitted schema
        assert p["max_new_tokens"] == max_answer_chars(json.loads(p["json_schema"])) > 200
        assert p["temperature"] == 0.0
        assert set(json.loads(p["json_schema"])["properties"]) == {"friendly", "reason"}
    assert m.total.calls == 5
    assert m.total.cached_tokens > 0.5 * m.total.prompt_tokens  # siblings share a long prefix
    assert double.double_bos == 0 and not double.posts("/v1/chat/completions")


def test_a_server_batches_prompts_it_rendered_itself(tokenizer_dir):
    with SGLangTestDouble(tokenizer_path="Qwen/Qwen3-8B") as d:  # a hub id: no folder to read here
        lm = make_lm(d.url, batch_window_ms=200)
        assert lm.prompt_route == "server" and lm.template is None and not lm.router
        out = map_in_context(lambda i: lm(messages=user(f"question {i}"))[0], range(4))
        assert out == ["double says: ok"] * 4
        [gen] = generate_bodies(d)
        assert len(gen["input_ids"]) == 4 and "text" not in gen and len(gen["sampling_params"]) == 4
        assert "".join(map(chr, gen["input_ids"][0])).startswith("<bos><start_of_turn>user\nquestion ")
        assert lm.stats["tokenize_requests"] == 4 and d.double_bos == 0


def test_router_gets_single_prompts_concurrently(tokenizer_dir):
    with SGLangTestDouble(tokenizer_path=str(tokenizer_dir), mode="router") as d:
        lm = make_lm(d.url, batch_window_ms=200)
        assert lm.router and lm.prompt_route == "local"  # the router's tokenize renders no messages
        t0 = time.perf_counter()
        out = map_in_context(lambda i: lm(messages=user(f"q{i}"))[0], range(6))
        assert time.perf_counter() - t0 < 0.2  # no batch window waited out: each call goes at once
    assert out == ["double says: ok"] * 6
    bodies = generate_bodies(d)
    assert len(bodies) == 6
    assert all(isinstance(b["text"], str) and isinstance(b["sampling_params"], dict) for b in bodies)
    assert all(b["text"].startswith("<start_of_turn>user\n") for b in bodies)  # bos left to the tokenizer


def test_a_router_that_hides_workers_is_found_by_its_422(tokenizer_dir):
    with SGLangTestDouble(tokenizer_path=str(tokenizer_dir), mode="router", expose_workers=False) as d:
        lm = make_lm(d.url, batch_window_ms=200)
        assert not lm.router
        out = map_in_context(lambda i: lm(messages=user(f"q{i}"))[0], range(3))
        assert out == ["double says: ok"] * 3 and lm.router
        lm(messages=user("later"))
    bodies = generate_bodies(d)
    assert isinstance(bodies[0]["text"], list)  # refused with 422, then one prompt per request
    assert [isinstance(b["text"], str) for b in bodies[1:]] == [True] * 4


def test_an_older_server_gets_the_local_template_without_a_second_bos(tokenizer_dir):
    with SGLangTestDouble(tokenizer_path=str(tokenizer_dir), tokenize_messages=False) as d:
        lm = make_lm(d.url, batch_window_ms=200)
        assert lm.prompt_route == "local" and lm.template is not None
        map_in_context(lambda i: lm(messages=user(f"q{i}")), range(3))
        [gen] = generate_bodies(d)
        assert all(t.startswith("<start_of_turn>user\n") for t in gen["text"])  # the server adds <bos>
        assert d.double_bos == 0


def test_without_any_template_calls_go_as_chat_and_the_user_is_told_once(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="pearl.plugins.sglang")
    with SGLangTestDouble(tokenizer_path=str(tmp_path / "not-here"), tokenize_messages=False) as d:
        lm = make_lm(d.url, batch_window_ms=100)
        make_lm(d.url)  # a second role's LM on the same server: no second notice
        assert lm.prompt_route == "chat" and lm.template is None
        out = map_in_context(lambda i: lm(messages=user(f"q{i}"))[0], range(3))
    assert out == ["double says: ok"] * 3
    assert len(d.posts("/v1/chat/completions")) == 3 and not d.posts("/generate")
    notices = [r for r in caplog.records if r.name == "pearl.plugins.sglang"]
    assert len(notices) == 1 and notices[0].levelno == logging.WARNING
    assert "is not readable here" in notices[0].getMessage() and "chat_template=PATH" in notices[0].getMessage()


def test_an_explicit_template_wins(double, tokenizer_dir):
    lm = make_lm(double.url, chat_template=str(tokenizer_dir), batch_window_ms=100)
    assert lm.prompt_route == "template"
    lm(messages=user("hi"))
    assert generate_bodies(double)[0]["text"] == "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n"
    with pytest.raises(BackendError, match="neither a .jinja file nor a tokenizer folder"):
        make_lm(double.url, chat_template=str(tokenizer_dir / "missing"))


def test_one_overlong_prompt_fails_only_its_caller(tokenizer_dir):
    with SGLangTestDouble(tokenizer_path=str(tokenizer_dir), context_length=400) as d:
        lm = make_lm(d.url, batch_window_ms=1000)  # wide enough that all 8 calls meet on a loaded machine
        lm.kwargs["max_tokens"] = 50
        prompts = [f"short question {i}" for i in range(8)]
        prompts[5] = "far too long " * 40

        def call(text):
            try:
                return lm(messages=user(text))[0]
            except InputError as exc:
                return exc

        out = map_in_context(call, prompts)
        assert isinstance(out[5], PromptTooLongError)
        assert "longer than the model's context length (400 tokens)" in str(out[5])
        assert "shorten the conversation" in str(out[5])
        assert [o for i, o in enumerate(out) if i != 5] == ["double says: ok"] * 7
        assert len(d.posts("/generate")) <= 7  # 1 + 2*log2(8) at most
        served = [p for p in d.prompts_seen if "question" in p]
        assert len(served) == len(set(served)) == 7  # no prompt that succeeded was run twice


def test_prompt_plus_max_tokens_over_the_context_is_an_input_error(double):
    double.context_length = 300
    lm = make_lm(double.url)
    with pytest.raises(PromptTooLongError, match="exceeds the model's maximum context length of 300 tokens"):
        lm(messages=user("hello"), max_tokens=290)


def test_a_full_queue_is_retried_after_a_pause_without_resending_finished_work(tokenizer_dir):
    with SGLangTestDouble(tokenizer_path=str(tokenizer_dir)) as d:
        lm = make_lm(d.url, batch_window_ms=300)
        d.overload()  # the batch of 4 is refused with 503
        out = map_in_context(lambda i: lm(messages=user(f"q{i}"))[0], range(4))
        assert out == ["double says: ok"] * 4
        assert lm.stats["split_batches"] == 1 and len(d.posts("/generate")) == 3  # the batch, then its halves
        assert sorted(p for p in d.prompts_seen if "q" in p) == sorted(set(d.prompts_seen))  # each served once


def test_a_single_prompt_is_retried_on_503(double):
    lm = make_lm(double.url)
    double.overload(times=2)
    assert lm(messages=user("hi")) == ["double says: ok"]
    assert len(double.posts("/generate")) == 3


def test_an_abort_is_an_error_for_its_caller_only(double):
    lm = make_lm(double.url, batch_window_ms=200)
    double.abort()

    def call(i):
        try:
            return lm(messages=user(f"q{i}"))[0]
        except BackendError as exc:
            return str(exc)

    out = map_in_context(call, range(3))
    errors = [o for o in out if "aborted the request (Abort before prefill)" in o]
    assert len(errors) == 1 and out.count("double says: ok") == 2


def test_an_abort_on_the_chat_route_is_an_error(tmp_path):
    with SGLangTestDouble(tokenizer_path=str(tmp_path / "none"), tokenize_messages=False) as d:
        lm = make_lm(d.url)
        d.abort()
        with pytest.raises(BackendError, match="aborted the request"):
            lm(messages=user("hi"))


def test_regex_and_ebnf_travel_as_sglang_extras(double, tmp_path):
    lm = make_lm(double.url, batch_window_ms=100)
    reqs = [ChatRequest(messages=user(f"n{i}"), extra={"ebnf": 'root ::= "0"'}) for i in range(2)]
    assert [c.text for c in map_in_context(lm.complete, reqs)] == ["0", "0"]
    params = [b["sampling_params"] for b in generate_bodies(double)]
    flat = [p for ps in params for p in (ps if isinstance(ps, list) else [ps])]
    assert all(p["ebnf"] == 'root ::= "0"' and "json_schema" not in p for p in flat)
    with SGLangTestDouble(tokenizer_path=str(tmp_path / "none"), tokenize_messages=False) as chat_only:
        chat_lm = make_lm(chat_only.url)
        schema = {"type": "object", "properties": {"a": {"type": "string"}}}
        got = chat_lm.complete(ChatRequest(messages=user("yes?"), json_schema=schema, extra={"regex": "(yes|no)"}))
        assert got.text == "yes"  # the regex wins; a response_format next to it would be a 400
        body = chat_only.posts("/v1/chat/completions")[0]["body"]
        assert body["regex"] == "(yes|no)" and "response_format" not in body


def test_cached_tokens_reach_the_meter(double):
    lm = make_lm(double.url)
    msgs = [{"role": "system", "content": "a long shared system prompt " * 10}, {"role": "user", "content": "one"}]
    with usage.meter() as m:
        lm(messages=msgs)
        lm(messages=msgs[:1] + user("two"))
    assert m.total.calls == 2
    assert m.total.cached_tokens >= len("a long shared system prompt " * 10)


def test_traceparent_is_sent_with_every_request(double):
    provider = TracerProvider()
    tracer = provider.get_tracer("test")
    lm = make_lm(double.url, batch_window_ms=100)
    with tracer.start_as_current_span("caller") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
        lm(messages=user("hi"))
        map_in_context(lambda i: lm(messages=user(f"x{i}")), range(2))
    posted = [r for r in double.requests if r["method"] == "POST" and r["path"] == "/generate"]
    assert len(posted) == (2 if double.mode == "server" else 3)
    for r in posted:
        assert r["headers"]["traceparent"].split("-")[1] == trace_id


def test_unreachable_server_is_a_clear_error():
    with pytest.raises(BackendError) as err:
        make_lm("http://127.0.0.1:9", max_retries=1)
    assert "no SGLang server at http://127.0.0.1:9: start one with `pearl backend launch sglang --model" in str(err.value)


def test_500_then_success_is_retried(double):
    lm = make_lm(double.url)
    double.fail(500, times=2)
    assert lm(messages=user("hi")) == ["double says: ok"]
    assert len(double.posts("/generate")) == 3


def test_persistent_5xx_gives_up_with_the_servers_message(double):
    lm = make_lm(double.url, max_retries=2)
    double.fail(503, times=3)
    with pytest.raises(BackendError, match="kept failing .* after 3 attempts .*HTTP 503: scripted failure 503"):
        lm(messages=user("hi"))


def test_hanging_server_times_out(double):
    lm = make_lm(double.url, timeout=0.5)
    double.hang(3)
    t0 = time.perf_counter()
    with pytest.raises(BackendError, match="did not answer POST generate within 0.5 s"):
        lm(messages=user("hi"))
    assert time.perf_counter() - t0 < 2.5


def test_malformed_body_is_a_clear_error(double):
    lm = make_lm(double.url)
    double.malformed()
    with pytest.raises(BackendError, match="not JSON"):
        lm(messages=user("hi"))


def test_a_400_for_every_prompt_reaches_every_caller(double):
    lm = make_lm(double.url, batch_window_ms=100)
    double.fail(400, times=8)
    errors = []

    def call(i):
        try:
            lm(messages=user(f"x{i}"))
        except BackendError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(3)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(errors) == 3 and all("HTTP 400: scripted failure 400" in e for e in errors)


def test_check_reports_health_and_kind(double):
    status = SGLangBackend().check(BackendSettings(name="sglang", url=double.url))
    assert status.startswith("healthy at " + double.url) and f"; {double.mode};" in status


def test_check_says_when_the_server_is_still_starting(tokenizer_dir):
    with SGLangTestDouble(tokenizer_path=str(tokenizer_dir), starting_seconds=30) as d:
        status = SGLangBackend().check(BackendSettings(name="sglang", url=d.url))
    assert status.startswith("/health answered 503 (starting) at " + d.url)


def test_a_batch_with_one_overlong_conversation_fails_only_that_line(tmp_path, host):
    from pearl.runtime.batch import run_batch
    from pearl.runtime.session import open_session

    with SGLangTestDouble(tokenizer_path="Qwen/Qwen3-8B", context_length=6000) as d:
        session = open_session("minimal", backend="sglang", url=d.url, host=host,
                               options={"backoff": 0.01, "max_retries": 1, "batch_window_ms": 50})
        inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
        lines = [json.dumps(f"question {i}") for i in range(4)]
        lines[2] = json.dumps("an endless question " * 400)
        inp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        summary = run_batch(session, inp, out, concurrency=4, progress=False)
    recs = {r["line"]: r for r in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
    assert (summary.succeeded, summary.failed) == (3, 1)
    assert [recs[n]["ok"] for n in (1, 2, 4)] == [True] * 3
    assert recs[3]["ok"] is False and recs[3]["error_type"] == "StepInputError"
    assert recs[3]["error"].startswith("step 'screen': the prompt does not fit the served model's context")


def test_the_launch_note_says_whether_calls_are_batched(tmp_path):
    with SGLangTestDouble(tokenizer_path="Qwen/Qwen3-8B") as new:
        assert sglang_plugin.prompt_note(new.url).startswith("calls are batched: the server renders")
    with SGLangTestDouble(tokenizer_path="Qwen/Qwen3-8B", tokenize_messages=False) as old:
        note = sglang_plugin.prompt_note(old.url)
    assert note.startswith("calls are NOT batched: ") and "chat_template=PATH" in note


def test_a_grammar_that_does_not_compile_fails_only_its_caller(tokenizer_dir):
    with SGLangTestDouble(tokenizer_path=str(tokenizer_dir)) as d:
        lm = make_lm(d.url, batch_window_ms=300)
        reqs = [ChatRequest(messages=user(f"n{i}"), extra={"regex": "(yes|no)"}) for i in range(4)]
        reqs[1] = ChatRequest(messages=user("broken"), extra={"regex": "(yes|no"})

        def call(req):
            try:
                return lm.complete(req).text
            except BackendError as exc:
                return exc

        out = map_in_context(call, reqs)
    assert isinstance(out[1], BackendError) and "Failed to compile the regex grammar" in str(out[1])
    assert [out[i] for i in (0, 2, 3)] == ["yes"] * 3
    served = [p for p in d.prompts_seen if "user\nn" in p]
    assert len(served) == len(set(served)) == 3  # each good prompt answered once
