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
    # one scheduled round: two iterations, or one when the first already scored the maximum
    assert len(its) == {"schedule_done": 2, "converged": 1}.get(refined["stop_reason"]), refined["stop_reason"]
    assert 0 <= refined["chosen"] < len(its) and result.response == its[refined["chosen"]]["response"]
    for it in its:  # every iteration was judged, on the judges' scales
        assert it["satisfaction"]["score"] in {x / 5 for x in range(-5, 6)}
        assert it["safety"]["score"] in {0.0, 0.5, 1.0}
    # the round is a user-mode update of the usefulness nodes, in reverse topological order
    assert [(it["mode"], [u["node"] for u in it["updates"]]) for it in its[1:]] == \
        [("user", ["usefulness_strategies", "user_needs"])] * (len(its) - 1)
    assert refined["usage"]["calls"] >= 2 and result.steps["refine"].usage.calls == refined["usage"]["calls"]
