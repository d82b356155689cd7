"""Metering and tracing for any `dspy.BaseLM` (`pearl.lm.metered.MeteredLM`).

The LM under test is a plain `dspy.LM("openai/double-chat", api_base=<loopback>)`,
served by `OpenAITestDouble` (tests/openai_double.py), and made available through a
backend plugin: usage totals must equal what the server reported, each call must have
its `chat` span, and the refinement's `max_calls` budget must hold.
"""

from __future__ import annotations

import asyncio
import threading

import dspy
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from lingobp_doubles import DoublesPlugin, Script, pipeline_doc
from openai_double import OpenAITestDouble
from otel_support import spans  # noqa: F401  (fixture)
from pearl.host.backend import Backend
from pearl.host.hookspecs import hookimpl
from pearl.lm import usage
from pearl.lm.metered import CACHE_HIT_ATTRIBUTE, MeteredLM, completion_of, instrument
from pearl.runtime.concurrency import map_in_context
from pearl.host.step import RunState
from pearl.runtime.pipeline import compile_spec, load
from pearl.runtime.runner import Runner
from pearl.runtime.session import open_session
from pearl.traces import semconv as sc
from pearl.types import Conversation

SCREEN = {"topic": "tenancy", "user_need": "get the deposit back", "risk": "low", "caution": "not legal advice"}
RESPOND = {"response": "Write to your landlord citing the tenancy agreement."}


def minimal_route(body):
    """The `minimal` pipeline's two programs, told apart by the output fields they ask for."""
    return SCREEN if "`topic`" in body["messages"][0]["content"] else RESPOND


@pytest.fixture(autouse=True)
def offline_model_metadata(monkeypatch):
    # dspy.LM looks up model metadata once per process; the bundled snapshot, not the network.
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "true")


def plain_lm(url: str, model: str = "double-chat", **kwargs) -> dspy.LM:
    """A plain `dspy.LM` on the double (no disk cache: every call reaches the server)."""
    return dspy.LM(f"openai/{model}", api_base=url, api_key="x", cache=False, num_retries=0, **kwargs)


class PlainLMBackend(Backend):
    """Test double backend: a plain `dspy.LM` at `settings.url` (no Pearlpoint LM class)."""

    name = "test-plain-lm"
    description = "a plain dspy.LM on an OpenAI-compatible server (tests)"

    def create(self, settings):
        return plain_lm(settings.url, settings.model or "double-chat", temperature=settings.temperature,
                        max_tokens=settings.max_tokens)


class PlainLMPlugin:
    @hookimpl
    def register_backends(self, register):
        register(PlainLMBackend)


@pytest.fixture
def plain_host(host):
    host.register(PlainLMPlugin(), name="tests.plain_lm")
    return host


def test_a_plain_dspy_lm_backend_is_metered_and_traced_through_a_pipeline(plain_host, spans):
    with OpenAITestDouble(minimal_route, cached_tokens=5) as double:
        session = open_session("minimal", backend="test-plain-lm", url=double.url, host=plain_host)
        assert isinstance(session.runner.lms["task"], MeteredLM)
        result = session.run("My landlord kept my deposit.")
    assert result.response == RESPOND["response"]
    reported = double.total()
    assert reported.calls == 2 and reported.prompt_tokens > 0 and reported.completion_tokens > 0
    assert (result.usage.calls, result.usage.prompt_tokens, result.usage.completion_tokens,
            result.usage.cached_tokens) == (2, reported.prompt_tokens, reported.completion_tokens, 10)
    assert result.usage.seconds > 0
    assert [result.steps[s].usage.calls for s in ("screen", "respond")] == [1, 1]
    assert result.steps["screen"].usage.prompt_tokens == double.reported[0]["prompt_tokens"]

    chats = sorted((s for s in spans.get_finished_spans() if s.name.startswith("chat ")), key=lambda s: s.start_time)
    assert [c.name for c in chats] == ["chat openai/double-chat"] * 2
    steps = {s.attributes[sc.PEARL_STEP_ID]: s for s in spans.get_finished_spans() if s.name.startswith("step ")}
    for chat, step_id, sent, body in zip(chats, ("screen", "respond"), double.reported, double.requests):
        a = chat.attributes
        assert chat.kind == SpanKind.CLIENT and chat.parent.span_id == steps[step_id].context.span_id
        assert a[sc.GEN_AI_PROVIDER_NAME] == "openai" and a[sc.SERVER_ADDRESS] == "127.0.0.1"
        assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == sent["prompt_tokens"]
        assert a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == sent["completion_tokens"]
        assert a[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 5
        assert tuple(a[sc.GEN_AI_RESPONSE_FINISH_REASONS]) == ("stop",)
        assert a[sc.GEN_AI_OUTPUT_TYPE] == ("json" if "response_format" in body else "text")  # as sent


def test_refinement_budget_holds_with_a_plain_dspy_lm(host):
    host.register(DoublesPlugin(), name="tests.lingobp")
    script = Script(sat=[0], safety=["mostly safe"])
    with OpenAITestDouble(lambda body: script(body["messages"][-1]["content"])) as double:
        pipeline = compile_spec(pipeline_doc(max_calls=2 + 8 + 5, backward="node"), host)
        result = Runner(pipeline, {"task": plain_lm(double.url)}, host).run(
            Conversation.from_text("I'm locked out of my own house, how do I open the door?"))
    refined = result.output("refine")
    # judging the draft (2) and one `both` step (5 nodes + 1 recombination + 2 judges) fit; a second does not
    assert len(refined["iterations"]) == 2
    assert refined["stop_reason"] == "budget_calls" and "raise max_calls" in refined["stop_detail"]
    assert refined["usage"]["calls"] == 10 <= 15
    assert refined["usage"]["prompt_tokens"] > 0
    # the recombine step's call plus the refinement's: every request the server saw was counted
    assert result.usage.calls == len(double.requests) == 11
    assert result.usage.prompt_tokens == double.total().prompt_tokens


def test_an_optimizers_candidate_on_a_plain_lm_is_metered(host):
    pipeline = load("minimal", host)
    runner = Runner(pipeline, {"task": object()}, host)  # the candidate brings its own LM
    with OpenAITestDouble(minimal_route) as double:
        with dspy.context(lm=plain_lm(double.url)):
            records = runner.run_steps(RunState(Conversation.from_text("My landlord kept my deposit.")), ["screen"],
                                       programs={"screen": pipeline.steps["screen"].program})
    assert records["screen"].usage.calls == 1
    assert records["screen"].usage.prompt_tokens == double.total().prompt_tokens > 0


def test_meters_are_exact_under_threads():
    with OpenAITestDouble(lambda body: {"answer": "ok"}) as double:
        lm = instrument(plain_lm(double.url))
        start = threading.Barrier(4)

        def worker(n: int):
            with usage.meter() as mine:
                start.wait()
                for i in range(n):
                    lm(messages=[{"role": "user", "content": " ".join(["word"] * (i + 1))}])
            return mine.total

        with usage.meter() as outer:
            totals = map_in_context(worker, [1, 2, 3, 4])
    assert [t.calls for t in totals] == [1, 2, 3, 4]
    assert [t.prompt_tokens for t in totals] == [1, 3, 6, 10]  # each meter saw exactly its own thread's calls
    assert outer.total.calls == 10 == len(double.requests)
    assert outer.total.prompt_tokens == double.total().prompt_tokens == 20


def test_copy_is_metered_and_keeps_the_original():
    with OpenAITestDouble(lambda body: {"answer": "ok"}) as double:
        lm = instrument(plain_lm(double.url, temperature=0.0))
        retry = lm.copy(temperature=0.7, seed=1)
        assert isinstance(retry, MeteredLM) and retry.inner is not lm.inner
        assert (lm.kwargs["temperature"], retry.kwargs["temperature"]) == (0.0, 0.7)
        with usage.meter() as m:
            retry(messages=[{"role": "user", "content": "again please"}])
    assert m.total.calls == 1 and m.total.prompt_tokens == 2
    assert retry.history is retry.inner.history and len(retry.history) == 1 and lm.history == []  # recorded once
    assert double.requests[0]["temperature"] == 0.7 and double.requests[0]["seed"] == 1


def test_async_calls_are_metered_too():
    with OpenAITestDouble(lambda body: {"answer": "ok"}) as double:
        lm = instrument(plain_lm(double.url))

        async def call():
            with usage.meter() as m:
                out = await lm.acall(messages=[{"role": "user", "content": "one two three"}])
            return out, m.total

        out, total = asyncio.run(call())
    assert out == ['{"answer": "ok"}'] and (total.calls, total.prompt_tokens) == (1, 3)


def test_wrapper_proxies_the_inner_lm():
    inner = dspy.utils.DummyLM([{"answer": "a"}])
    inner.n_ctx = 4096
    lm = instrument(inner)
    assert instrument(lm) is lm and MeteredLM(lm).inner is inner  # never nested
    assert lm.model == inner.model and lm.kwargs is inner.kwargs and lm.n_ctx == 4096
    assert lm.supports_response_schema == inner.supports_response_schema
    assert getattr(lm, "count_tokens", None) is None
    with pytest.raises(AttributeError):
        lm._engine_spec  # private names are not proxied: DSPy must see the wrapper as a legacy LM


def test_not_a_dspy_lm_is_refused_with_advice():
    from pearl.errors import BackendError

    with pytest.raises(BackendError, match="must return a dspy.BaseLM"):
        instrument(object())


class _RawLM(dspy.BaseLM):
    """Test double: a `dspy.BaseLM` returning a fixed OpenAI-shaped response, or raising."""

    def __init__(self, response=None, error: Exception | None = None):
        super().__init__(model="raw/test", cache=False)
        self.response, self.error = response, error

    def forward(self, prompt=None, messages=None, **kwargs):
        if self.error is not None:
            raise self.error
        return self.response


def chat_response(**extra):
    return {"model": "raw/test-2", "choices": [{"index": 0, "message": {"content": "hi"}, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1}, **extra}


def test_a_cached_response_gets_a_span_but_no_usage(spans):
    lm = instrument(_RawLM(chat_response(cache_hit=True)))
    with usage.meter() as m:
        assert lm(messages=[{"role": "user", "content": "hi"}]) == ["hi"]
    assert m.total.calls == 0
    (chat,) = [s for s in spans.get_finished_spans() if s.name == "chat raw/test"]
    assert chat.attributes[CACHE_HIT_ATTRIBUTE] is True
    assert chat.attributes[sc.GEN_AI_RESPONSE_MODEL] == "raw/test-2"


def test_a_failing_call_is_counted_nowhere_and_its_span_is_an_error(spans):
    lm = instrument(_RawLM(error=RuntimeError("server gone")))
    with usage.meter() as m, pytest.raises(Exception, match="server gone"):
        lm(messages=[{"role": "user", "content": "hi"}])
    assert m.total.calls == 0
    (chat,) = [s for s in spans.get_finished_spans() if s.name == "chat raw/test"]
    assert chat.status.status_code == StatusCode.ERROR and "server gone" in chat.status.description


def test_completion_of_reads_chat_and_responses_usage():
    chat = completion_of(chat_response(usage={"prompt_tokens": 7, "completion_tokens": 2,
                                              "prompt_tokens_details": {"cached_tokens": 4}}))
    assert (chat.text, chat.prompt_tokens, chat.completion_tokens, chat.cached_tokens, chat.finish_reason) == (
        "hi", 7, 2, 4, "length")
    responses = completion_of({"output": [], "usage": {"input_tokens": 9, "output_tokens": 3,
                                                       "input_tokens_details": {"cached_tokens": 1}}}, "m")
    assert (responses.prompt_tokens, responses.completion_tokens, responses.cached_tokens, responses.model) == (
        9, 3, 1, "m")
    none = completion_of({"choices": [{"message": {"content": None}}]})
    assert (none.text, none.prompt_tokens, none.completion_tokens) == ("", 0, 0)
