"""The `direct` baseline pipeline: one `answer` step, on DummyLM (a scripted test double)."""

import dspy
from dspy.utils import DummyLM

from pearl.runtime.pipeline import load
from pearl.runtime.runner import Runner
from pearl.types import Conversation


def test_direct_pipeline_answers_in_one_call(host):
    lm = DummyLM([{"response": "  Here is how to terminate a C program: call exit(0).  "}], adapter=dspy.JSONAdapter())
    pipeline = load("direct", host)
    assert list(pipeline.steps) == ["answer"]
    result = Runner(pipeline, {"task": lm}, host).run(Conversation.from_text("How do I terminate a C program?"))
    assert result.response == "Here is how to terminate a C program: call exit(0)."
    assert result.pipeline == "direct" and len(lm.history) == 1
    assert "How do I terminate a C program?" in lm.history[-1]["messages"][-1]["content"]
