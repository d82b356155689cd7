import threading

import pytest
from pydantic import BaseModel, ConfigDict

from pearl import hookimpl
from pearl.errors import PipelineError, StepError
from pearl.runtime.pipeline import compile_spec, load, shipped_pipelines
from pearl.runtime.runner import Runner
from pearl.host.step import Step
from pearl.types import Conversation


def spec(**steps):
    return {"name": "t", "steps": steps}


def test_shipped_pipelines_compile(host):
    assert "minimal" in shipped_pipelines()
    pipeline = load("minimal", host)
    assert pipeline.order() == ["screen", "respond"]
    assert list(pipeline.graph.edges) == [("screen", "respond")]


def test_unknown_step_plugin(host):
    with pytest.raises(PipelineError, match=r"<pipeline>: step 'x'.*unknown step 'nope'"):
        compile_spec(spec(x={"use": "nope"}), host)


def test_missing_dependency(host):
    with pytest.raises(PipelineError, match="step 'b' runs after 'ghost'"):
        compile_spec(spec(b={"use": "test-echo", "after": ["ghost"]}), host)


def test_cycle(host):
    with pytest.raises(PipelineError, match="cycle"):
        compile_spec(spec(a={"use": "test-echo", "after": ["b"]}, b={"use": "test-shout", "after": ["a"]}), host)


def test_bad_parameter_names_step(host):
    with pytest.raises(PipelineError, match=r"step 'respond' \(respond\): bad parameter: max_tokens"):
        compile_spec({"name": "t", "steps": {"screen": {"use": "screen"},
                                             "respond": {"use": "respond", "after": ["screen"], "max_tokens": -3}}}, host)


def test_unknown_parameter(host):
    with pytest.raises(PipelineError, match="bad parameter: colour"):
        compile_spec(spec(response={"use": "test-echo", "colour": "red"}), host)


def test_input_not_written_by_any_step(host):
    with pytest.raises(PipelineError, match="reads 'echo', which no step"):
        compile_spec(spec(shout={"use": "test-shout"}), host)


def test_input_written_by_a_step_that_is_not_before(host):
    with pytest.raises(PipelineError, match=r"add after = \[\"e\"\]"):
        compile_spec(spec(e={"use": "test-echo"}, s={"use": "test-shout"}), host)


def test_answer_slot_must_exist(host):
    with pytest.raises(PipelineError, match="answer = 'response'"):
        compile_spec(spec(e={"use": "test-echo"}), host)


def test_file_errors_name_the_file(host, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("name = 'x'\n[steps.a\nuse='test-echo'")
    with pytest.raises(PipelineError, match="bad.toml: not valid TOML"):
        load(str(bad), host)
    with pytest.raises(PipelineError, match="unknown pipeline 'nonesuch'"):
        load("nonesuch", host)
    with pytest.raises(PipelineError, match="does not exist"):
        load(str(tmp_path / "missing.toml"), host)


def test_runs_in_dependency_order(host):
    pipeline = compile_spec(spec(e={"use": "test-echo"}, response={"use": "test-shout", "after": ["e"]}), host)
    result = Runner(pipeline, {"task": object()}, host).run(Conversation.from_text("hello"))
    assert result.response == "HELLO"
    assert list(result.steps) == ["e", "response"]
    assert result.steps["e"].output == {"text": "hello"}


# --- concurrency: two independent steps must be in flight at the same time -------------

class Part(BaseModel):
    value: str


class Joined(BaseModel):
    response: str


class Rendezvous(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str


BARRIER = threading.Barrier(2, timeout=10)


def _part_step(slot):
    class PartStep(Step):
        name = f"test-part-{slot}"
        uses_lm = False
        Params = Rendezvous
        output = (slot, Part)

        def run(self, state):
            BARRIER.wait()  # deadlocks (and times out) unless both parts run concurrently
            return Part(value=self.params.label)

    return PartStep


class JoinStep(Step):
    name = "test-join"
    uses_lm = False
    inputs = {"left": Part, "right": Part}
    output = ("response", Joined)

    def run(self, state):
        return Joined(response=state.get("left").value + state.get("right").value)


class ParallelPlugin:
    @hookimpl
    def register_steps(self, register):
        register(_part_step("left"))
        register(_part_step("right"))
        register(JoinStep)


def test_independent_steps_run_concurrently(host):
    host.register(ParallelPlugin(), name="tests.parallel")
    pipeline = compile_spec(spec(
        l={"use": "test-part-left", "label": "L"},
        r={"use": "test-part-right", "label": "R"},
        j={"use": "test-join", "after": ["r", "l"]},
    ), host)
    for _ in range(3):
        BARRIER.reset()
        result = Runner(pipeline, {"task": object()}, host).run(Conversation.from_text("x"))
        assert result.response == "LR"
        assert list(result.steps) == ["l", "r", "j"]


class Boom(Step):
    name = "test-boom"
    uses_lm = False
    output = ("response", Joined)

    def run(self, state):
        raise RuntimeError("kaput")


class Observer:
    def __init__(self):
        self.events = []

    @hookimpl
    def step_started(self, run_id, step_id, use):
        self.events.append(("start", step_id))

    @hookimpl
    def step_finished(self, run_id, step_id, use, output, seconds, error):
        self.events.append(("finish", step_id, error is not None))


def test_failing_step_raises_step_error_and_observers_see_it(host):
    class BoomPlugin:
        @hookimpl
        def register_steps(self, register):
            register(Boom)

    observer = Observer()
    host.register(BoomPlugin(), name="tests.boom")
    host.register(observer, name="tests.observer")
    pipeline = compile_spec(spec(b={"use": "test-boom"}), host)
    with pytest.raises(StepError, match="step 'b': RuntimeError: kaput"):
        Runner(pipeline, {"task": object()}, host).run(Conversation.from_text("x"))
    assert observer.events == [("start", "b"), ("finish", "b", True)]
