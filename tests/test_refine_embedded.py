"""One end-to-end refinement on the real embedded model (Gemma 3 270M): structure only."""

import pytest

from pearl.runtime.pipeline import compile_spec
from pearl.runtime.runner import Runner
from pearl.types import Conversation

from lingobp_doubles import DoublesPlugin, pipeline_doc

pytestmark = pytest.mark.model


def test_one_refinement_step_on_the_embedded_model(host, embedded_lm):
    host.register(DoublesPlugin(), name="tests.lingobp")
    pipeline = compile_spec(pipeline_doc(schedule=["user"], response_max_tokens=200), host)
    result = Runner(pipeline, {"task": embedded_lm}, host).run(
        Conversation.from_text("I'm locked out of my own house, how do I open the door?"))
    refined = result.output("refine")
    its = refined["iterations"]
    assert refined["stop_reason"] in {"schedule_done", "converged", "judge_failed", "update_failed"}
    assert 1 <= len(its) <= 2 and 0 <= refined["chosen"] < len(its)
    assert result.response == its[refined["chosen"]]["response"]
    first = its[0]
    if refined["stop_reason"] != "judge_failed" or len(its) > 1:
        assert first["satisfaction"]["score"] in {x / 5 for x in range(-5, 6)}
        assert first["safety"]["score"] in {0.0, 0.5, 1.0}
    if len(its) == 2:
        assert its[1]["mode"] == "user"
        assert [u["node"] for u in its[1]["updates"]] == ["usefulness_strategies", "user_needs"]
    assert refined["usage"]["calls"] >= 2 and result.steps["refine"].usage.calls == refined["usage"]["calls"]
