"""The `minimal` pipeline's wiring, on DSPy's DummyLM (a scripted test double)."""

import dspy
from dspy.utils import DummyLM

from pearl.runtime.pipeline import load
from pearl.runtime.runner import Runner
from pearl.types import Conversation


def test_minimal_pipeline_passes_screen_into_response(host):
    lm = DummyLM(
        [
            {"topic": "tenancy", "user_need": "get the deposit back", "risk": "low", "caution": "not legal advice"},
            {"response": "Write to your landlord citing the tenancy agreement."},
        ],
        adapter=dspy.JSONAdapter(),
    )
    pipeline = load("minimal", host)
    result = Runner(pipeline, {"task": lm}, host).run(Conversation.from_text("My landlord kept my deposit."))
    assert result.response == "Write to your landlord citing the tenancy agreement."
    assert result.steps["screen"].output["risk"] == "low"
    # the response step's prompt carried the screen's outputs
    respond_prompt = lm.history[-1]["messages"][-1]["content"]
    assert "get the deposit back" in respond_prompt and "not legal advice" in respond_prompt
