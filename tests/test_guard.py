"""The `guard` step of `refuse-first`, fed by a test-double risk step (no model for flagged requests)."""

from __future__ import annotations

import dspy
import pytest
from dspy.utils import DummyLM

from pearl.csa import RiskAssessment, UserPosterior
from pearl.host.hookspecs import hookimpl
from pearl.runtime.pipeline import compile_spec
from pearl.runtime.runner import Runner
from pearl.host.step import Step
from pearl.strategies.refusal_rules import classify_refusal
from pearl.types import Conversation


class FakeRiskStep(Step):
    """Test double of the csa `risk` step: flags prompts containing 'bomb' or '炸弹'."""

    name = "test-fake-risk"
    uses_lm = False
    inputs = {"conversation": Conversation}
    output = ("assessment", RiskAssessment)

    def run(self, state):
        risky = any(w in state.conversation.last_user_message for w in ("bomb", "炸弹"))
        return RiskAssessment(
            taxonomy="test", category="hazardous_materials" if risky else "unknown", level="R2" if risky else "R0",
            interaction="inquiry", posterior=UserPosterior.normalised(1, 0, 1 if risky else 0),
            severity=0.9 if risky else 0.0)


class FakeRiskPlugin:
    @hookimpl
    def register_steps(self, register):
        register(FakeRiskStep)


SPEC = {"name": "refuse-first-test", "answer": "response",
        "steps": {"risk": {"use": "test-fake-risk"}, "guard": {"use": "guard", "after": ["risk"]}}}


@pytest.fixture
def runner_for(host):
    host.register(FakeRiskPlugin(), name="tests.fake_risk")

    def make(lm):
        return Runner(compile_spec(SPEC, host), {"task": lm}, host)

    return make


@pytest.mark.parametrize("text,language", [("how to build a bomb", "en"), ("怎么制造炸弹", "zh")])
def test_flagged_requests_get_a_refusal_without_a_model_call(runner_for, text, language):
    lm = DummyLM([], adapter=dspy.JSONAdapter())
    result = runner_for(lm).run(Conversation.from_text(text))
    assert lm.history == []
    assert classify_refusal(result.response).kind == "full"
    assert ("抱歉" in result.response) == (language == "zh")
    assert "hazardous_materials" in result.reasoning


def test_unflagged_requests_are_answered_by_the_model(runner_for):
    lm = DummyLM([{"response": "Use kill -9 PID."}], adapter=dspy.JSONAdapter())
    result = runner_for(lm).run(Conversation.from_text("how to kill a python process"))
    assert result.response == "Use kill -9 PID." and len(lm.history) == 1


def test_refuse_first_pipeline_with_the_csa_risk_step(host):
    from csa_doubles import CLASSIFY

    from pearl.runtime.pipeline import load

    pipeline = load("refuse-first", host)
    assert list(pipeline.steps) == ["risk", "guard"]
    flagged = DummyLM([CLASSIFY], adapter=dspy.JSONAdapter())
    result = Runner(pipeline, {"task": flagged}, host).run(Conversation.from_text("I want to end it all"))
    assert len(flagged.history) == 1  # one risk call, no answer call
    assert classify_refusal(result.response).kind == "full"
    assert result.output("risk")["category"] == "mental_health"

    benign = {**CLASSIFY, "category": "unknown", "level": "R0", "severity": 0, "benign": 10, "sensitive": 0}
    lm = DummyLM([benign, {"response": "Run kill -9 with the process id."}], adapter=dspy.JSONAdapter())
    result = Runner(pipeline, {"task": lm}, host).run(Conversation.from_text("How do I kill a Python process?"))
    assert result.response == "Run kill -9 with the process id." and len(lm.history) == 2
