"""Spans of a pipeline run, captured with the SDK's in-memory exporter.

The `minimal` pipeline runs on `ScriptedLM` (a `PearlLM` test double), so the real
`PearlLM.forward` path opens the `chat` spans; extra test-double steps cover failures,
fan-out through `pearl.runtime.concurrency` and through `dspy.Parallel`, and hook-call spans.
"""

from __future__ import annotations

import json

import dspy
import pytest
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import BaseModel

from otel_support import ScriptedLM, spans  # noqa: F401  (fixture)
from pearl.runtime.concurrency import map_in_context
from pearl.errors import StepError
from pearl.host.hookspecs import hookimpl
from pearl.host.manager import PluginWarning
from pearl.runtime.pipeline import load
from pearl.lm.base import fit_to_budget
from pearl.runtime.runner import Runner
from pearl.host.step import Step
from pearl.traces import semconv as sc
from pearl.traces.content import ENV_CAPTURE_CONTENT, set_capture_content
from pearl.types import Conversation

SCREEN = {"topic": "tenancy", "user_need": "get the deposit back", "risk": "low", "caution": "not legal advice"}
RESPOND = {"response": "Write to your landlord citing the tenancy agreement."}
QUESTION = "My landlord kept my deposit."


def run_minimal(host, lm=None):
    lm = lm or ScriptedLM([SCREEN, RESPOND])
    return Runner(load("minimal", host), {"task": lm}, host, backend_name="scripted").run(Conversation.from_text(QUESTION))


def run_spans(spans):
    """The finished spans but the registration hooks' (`hook register_*`): those run once per
    host, when a pipeline is first loaded, each its own trace, outside any run."""
    return [s for s in spans.get_finished_spans() if not s.name.startswith("hook register_")]


def by_name(finished):
    out = {}
    for s in finished:
        out.setdefault(s.name, []).append(s)
    return out


def test_minimal_run_is_one_tree(host, spans):
    result = run_minimal(host)
    assert any(s.name == "hook register_steps" for s in spans.get_finished_spans())  # a span, as every hook call
    finished = run_spans(spans)
    named = by_name(finished)
    assert sorted(named) == ["chat scripted/test", "invoke_workflow minimal", "step respond", "step screen"]
    (root,) = named["invoke_workflow minimal"]
    assert root.parent is None
    assert {s.context.trace_id for s in finished} == {root.context.trace_id}
    steps = {s.attributes[sc.PEARL_STEP_ID]: s for s in named["step respond"] + named["step screen"]}
    for step in steps.values():
        assert step.parent.span_id == root.context.span_id
    chats = named["chat scripted/test"]
    assert len(chats) == 2
    assert sorted(c.parent.span_id for c in chats) == sorted(s.context.span_id for s in steps.values())
    # every parent is a span of the same run: no orphans from the step worker threads
    ids = {s.context.span_id for s in finished}
    assert all(s.parent is None or s.parent.span_id in ids for s in finished)

    assert root.attributes[sc.GEN_AI_OPERATION_NAME] == "invoke_workflow"
    assert root.attributes[sc.PEARL_RUN_ID] == result.metadata["run_id"]
    assert root.attributes[sc.OPENINFERENCE_SPAN_KIND] == "CHAIN"
    assert root.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == result.usage.prompt_tokens > 0
    assert root.attributes[sc.PEARL_USAGE_CALLS] == 2
    screen, respond = steps["screen"], steps["respond"]
    assert screen.attributes[sc.PEARL_STEP_USE] == "screen"
    assert screen.attributes[sc.PEARL_STEP_PLUGIN] == "pearl.strategies.minimal"
    assert screen.attributes[sc.OPENINFERENCE_SPAN_KIND] == "GUARDRAIL"
    assert screen.attributes["pearl.output.risk"] == "low"
    assert respond.attributes["pearl.step.param.max_tokens"] == 400
    assert respond.attributes[sc.OPENINFERENCE_SPAN_KIND] == "CHAIN"
    assert respond.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == result.steps["respond"].usage.completion_tokens
    assert all(s.status.status_code == StatusCode.UNSET for s in finished)


def test_chat_spans_carry_genai_attributes(host, spans):
    lm = ScriptedLM([SCREEN, RESPOND], server_address="http://10.1.2.3:30000/v1", cached_tokens=7)
    result = run_minimal(host, lm)
    chats = sorted((s for s in spans.get_finished_spans() if s.name.startswith("chat ")), key=lambda s: s.start_time)
    respond = chats[1]
    assert respond.kind == SpanKind.CLIENT
    a = respond.attributes
    assert a[sc.GEN_AI_OPERATION_NAME] == "chat"
    assert a[sc.GEN_AI_PROVIDER_NAME] == "scripted"
    assert a[sc.GEN_AI_REQUEST_MODEL] == "scripted/test"
    assert a[sc.GEN_AI_REQUEST_TEMPERATURE] == 0.0
    # the respond step's own bound (400) reached the request, raised to fit its JSON answer
    sent = lm.requests[1]
    assert a[sc.GEN_AI_REQUEST_MAX_TOKENS] == sent.max_tokens == fit_to_budget(sent.json_schema, 400)[1] > 400
    assert tuple(a[sc.GEN_AI_RESPONSE_FINISH_REASONS]) == ("stop",)
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == lm_prompt_words(lm, 1)
    assert a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == len(json.dumps(RESPOND).split())
    assert a[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 7
    assert a[sc.SERVER_ADDRESS] == "10.1.2.3" and a[sc.SERVER_PORT] == 30000
    assert a[sc.OPENINFERENCE_SPAN_KIND] == "LLM"
    assert a[sc.GEN_AI_OUTPUT_TYPE] == "json"
    assert sum(c.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] for c in chats) == result.usage.prompt_tokens


def lm_prompt_words(lm, i):
    return sum(len(str(m["content"]).split()) for m in lm.requests[i].messages)


CONTENT_KEYS = {sc.GEN_AI_INPUT_MESSAGES, sc.GEN_AI_OUTPUT_MESSAGES, sc.INPUT_VALUE, sc.OUTPUT_VALUE}


def test_content_is_absent_unless_opted_in(host, spans):
    run_minimal(host)
    finished = spans.get_finished_spans()
    assert finished
    for s in finished:
        assert not CONTENT_KEYS & set(s.attributes), s.name
        assert QUESTION not in json.dumps(dict(s.attributes), default=str)


@pytest.mark.parametrize("opt_in", ["flag", "env"])
def test_content_when_opted_in(host, spans, monkeypatch, opt_in):
    if opt_in == "flag":
        set_capture_content(True)
    else:
        monkeypatch.setenv(ENV_CAPTURE_CONTENT, "true")
    run_minimal(host)
    named = by_name(spans.get_finished_spans())
    chat = sorted(named["chat scripted/test"], key=lambda s: s.start_time)[0]
    messages = json.loads(chat.attributes[sc.GEN_AI_INPUT_MESSAGES])
    assert messages[-1]["role"] == "user" and QUESTION in messages[-1]["parts"][0]["content"]
    output = json.loads(chat.attributes[sc.GEN_AI_OUTPUT_MESSAGES])
    assert json.loads(output[0]["parts"][0]["content"]) == SCREEN
    root = named["invoke_workflow minimal"][0]
    assert QUESTION in root.attributes[sc.INPUT_VALUE]
    assert root.attributes[sc.OUTPUT_VALUE] == RESPOND["response"]
    (respond,) = named["step respond"]
    assert json.loads(respond.attributes[sc.OUTPUT_VALUE])["response"] == RESPOND["response"]
    assert "get the deposit back" in respond.attributes[sc.INPUT_VALUE]


# --- failures, fan-out, hooks -------------------------------------------------------------

class Boom(BaseModel):
    ok: bool


class BoomStep(Step):
    """Test double: always fails."""

    name = "test-boom"
    uses_lm = False
    output = ("boom", Boom)

    def run(self, state):
        raise ValueError("the test step failed on purpose")


class Many(BaseModel):
    answers: list[str]


class FanOutSignature(dspy.Signature):
    """Answer the question."""

    question: str = dspy.InputField()
    answer: str = dspy.OutputField()


class PoolFanOutStep(Step):
    """Test double: three LM calls on `pearl.runtime.concurrency` worker threads."""

    name = "test-pool-fanout"
    output = ("pool", Many)

    def __init__(self, params, context):
        super().__init__(params, context)
        self.program = dspy.Predict(FanOutSignature)

    def run(self, state):
        preds = map_in_context(lambda q: self.program(question=q), ["a", "b", "c"], max_workers=3)
        return Many(answers=[p.answer for p in preds])


class DspyParallelStep(Step):
    """Test double: three LM calls through `dspy.Parallel` (DSPy's own thread pool)."""

    name = "test-dspy-parallel"
    output = ("parallel", Many)

    def __init__(self, params, context):
        super().__init__(params, context)
        self.program = dspy.Predict(FanOutSignature)

    def run(self, state):
        parallel = dspy.Parallel(num_threads=3, disable_progress_bar=True)
        preds = parallel([(self.program, {"question": q}) for q in ("d", "e", "f")])
        return Many(answers=[p.answer for p in preds])


class Observer:
    """Test double: an observer plugin (step hooks)."""

    def __init__(self):
        self.seen = []

    @hookimpl
    def step_started(self, run_id, step_id, use):
        self.seen.append(step_id)

    @hookimpl
    def step_finished(self, run_id, step_id, use, output, seconds, error):
        pass


class ExtraSteps:
    @hookimpl
    def register_steps(self, register):
        register(BoomStep)
        register(PoolFanOutStep)
        register(DspyParallelStep)


def write_pipeline(tmp_path, steps: dict[str, dict], answer: str) -> str:
    lines = ['name = "traced"', f'answer = "{answer}"', ""]
    for step_id, table in steps.items():
        lines.append(f"[steps.{step_id}]")
        for key, value in table.items():
            lines.append(f"{key} = {json.dumps(value)}")
        lines.append("")
    path = tmp_path / "traced.toml"
    path.write_text("\n".join(lines))
    return str(path)


def test_failing_step_marks_its_span_and_the_run(host, spans, tmp_path):
    host.register(ExtraSteps(), name="tests.extra")
    path = write_pipeline(tmp_path, {"echo": {"use": "test-echo"}, "boom": {"use": "test-boom"},
                                     "shout": {"use": "test-shout", "after": ["echo", "boom"]}}, "response")
    runner = Runner(load(path, host), {"task": ScriptedLM([])}, host)
    with pytest.raises(StepError, match="failed on purpose"):
        runner.run(Conversation.from_text("hi"))
    named = by_name(spans.get_finished_spans())
    (boom,) = named["step boom"]
    assert boom.status.status_code == StatusCode.ERROR
    assert "failed on purpose" in boom.status.description
    assert boom.attributes[sc.ERROR_TYPE] == "StepError"
    assert any(e.name == "exception" for e in boom.events)
    (root,) = named["invoke_workflow traced"]
    assert root.status.status_code == StatusCode.ERROR
    # echo runs beside boom unless boom's failure cancelled it before it started
    assert all(s.status.status_code == StatusCode.UNSET for s in named.get("step echo", []))
    assert "step shout" not in named  # never started


def test_fan_out_inside_a_step_keeps_the_parent(host, spans, tmp_path):
    host.register(ExtraSteps(), name="tests.extra")
    observer = Observer()
    host.register(observer, name="tests.observer")
    path = write_pipeline(tmp_path, {"pool": {"use": "test-pool-fanout"}, "parallel": {"use": "test-dspy-parallel"},
                                     "echo": {"use": "test-echo"},
                                     "shout": {"use": "test-shout", "after": ["pool", "parallel", "echo"]}},
                          "response")
    lm = ScriptedLM([{"answer": str(i)} for i in range(6)])
    result = Runner(load(path, host), {"task": lm}, host).run(Conversation.from_text("hi"))
    finished = run_spans(spans)
    named = by_name(finished)
    (root,) = named["invoke_workflow traced"]
    assert {s.context.trace_id for s in finished} == {root.context.trace_id}
    chats = named["chat scripted/test"]
    assert len(chats) == 6
    for step_id in ("pool", "parallel"):
        (step,) = named[f"step {step_id}"]
        children = [c for c in chats if c.parent.span_id == step.context.span_id]
        assert len(children) == 3, step_id
        assert result.steps[step_id].usage.calls == 3  # the usage meter crossed DSPy's threads too
    # one span per hook call, inside its step, naming the observer plugin
    hooks = named["hook step_started"] + named["hook step_finished"]
    assert len(hooks) == 2 * len(result.steps)
    step_ids = {s.context.span_id for n in named if n.startswith("step ") for s in named[n]}
    for h in hooks:
        assert h.parent.span_id in step_ids
        assert "tests.observer" in h.attributes[sc.PEARL_HOOK_PLUGINS]


def test_failing_hook_call_span_is_an_error(host, spans):
    class Broken:
        @hookimpl
        def step_started(self, run_id, step_id, use):
            raise RuntimeError("observer broke")

    host.register(Broken(), name="tests.broken")
    with pytest.warns(PluginWarning, match="observer broke"):
        result = run_minimal(host)
    assert result.response == RESPOND["response"]  # reported, and never masks the run's result
    (hook,) = [s for s in spans.get_finished_spans() if s.name == "hook step_started"][:1]
    assert hook.status.status_code == StatusCode.ERROR and "observer broke" in hook.status.description


def test_no_provider_no_spans_no_cost_to_results(host):
    # the library works the same whether or not anything records (here the session provider does)
    assert run_minimal(host).response == RESPOND["response"]
