"""End-to-end on the real embedded model (Gemma 3 270M): structure, never wisdom."""

import json

import pytest

from pearl.runtime.session import open_session
from pearl.errors import InputError

pytestmark = pytest.mark.model


def test_structured_call_is_schema_constrained(embedded_lm):
    import dspy

    class Sig(dspy.Signature):
        """Rate the message."""

        message: str = dspy.InputField()
        risk: str = dspy.OutputField()
        score: int = dspy.OutputField()

    with dspy.context(lm=embedded_lm, adapter=dspy.JSONAdapter()):
        pred = dspy.Predict(Sig)(message="How do I bake bread?")
    assert isinstance(pred.score, int) and isinstance(pred.risk, str)


def test_lms_on_one_context_share_its_lock_and_long_replies_stay_parseable(embedded_lm):
    import dspy

    from pearl.host.backend import BackendSettings
    from pearl.runtime.concurrency import map_in_context
    from pearl.plugins.llamacpp import LlamaCppBackend

    judge_lm = LlamaCppBackend().create(BackendSettings(model="tiny", max_tokens=256, n_ctx=4096))
    assert judge_lm.llama is embedded_lm.llama and judge_lm._lock is embedded_lm._lock
    assert embedded_lm.copy(temperature=0.7)._lock is embedded_lm._lock

    class Story(dspy.Signature):
        """Write a long story about the topic."""

        topic: str = dspy.InputField()
        story: str = dspy.OutputField()

    def write(lm):  # a 1000-token budget would ask llama.cpp for a grammar it cannot parse
        with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
            return dspy.Predict(Story)(topic="a cat", config={"max_tokens": 1000}).story

    stories = map_in_context(write, [embedded_lm, judge_lm])  # two LMs on one context at once
    assert all(isinstance(s, str) and len(s) <= 800 for s in stories)


def test_cli_run_json_prints_a_result(run_cli):
    proc = run_cli(["run", "--pipeline", "minimal", "--json", "My landlord won't return my deposit, what can I do?"])
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["pipeline"] == "minimal" and result["response"].strip()
    assert set(result["steps"]) == {"screen", "respond"}
    assert result["steps"]["screen"]["output"]["risk"] in {"none", "low", "medium", "high"}
    assert result["usage"]["calls"] >= 2 and result["usage"]["completion_tokens"] > 0


def test_too_long_conversation_is_a_clear_error(host):
    session = open_session("minimal", n_ctx=2048)
    with pytest.raises(InputError, match="too long for the model's context"):
        session.run("word " * 3000)
