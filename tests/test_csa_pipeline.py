"""The shipped `csa` pipeline end to end on DummyLM, its --explain rendering, and the CLI default."""

import dspy
import pytest
from dspy.utils import DummyLM
from rich.console import Console

from csa_doubles import ADAPT, CLASSIFY, DRAFT, PAIR, RECOMBINE, ReadingDummyLM, reader
from lingobp_doubles import safety_answer, sat_answer
from pearl.cli import DEFAULT_PIPELINE
from pearl.csa import CHAIN_NODES, USER_TYPES
from pearl.runtime.overrides import parse_overrides
from pearl.runtime.pipeline import load
from pearl.runtime.runner import Runner
from pearl.strategies.explain import assessment_panel
from pearl.strategies.library import BUILTIN_NAMES
from pearl.types import Conversation, Result

JUDGED = {**sat_answer(1), **safety_answer("safe")}  # one answer both judges accept, whichever asks first


def run_csa(host):
    pipeline = load("csa", host)
    assert pipeline.order() == ["risk", "anticipate", "decide", "draft", "recombine", "refine", "help"]
    table = {"table": {s: {t: PAIR for t in USER_TYPES} for s in BUILTIN_NAMES}}  # anticipate: mode "table"
    lm = DummyLM([CLASSIFY, ADAPT, table, DRAFT, RECOMBINE, JUDGED, JUDGED], adapter=dspy.JSONAdapter())
    return Runner(pipeline, {"task": lm}, host).run(Conversation.from_text("I feel like ending it all.")), lm


def test_csa_pipeline_wires_every_step(host):
    result, lm = run_csa(host)
    assert len(lm.history) == 2 + 1 + 2 + 2
    # judged perfect: refinement stops at once; the reply names no contact, so the help line follows it
    assert result.output("refine")["response"] == RECOMBINE["response"]
    assert result.response.startswith(RECOMBINE["response"] + "\n\n") and "988" in result.response
    assert result.output("help")["added"] is True
    assert set(result.steps) == {"risk", "anticipate", "decide", "draft", "recombine", "refine", "help"}
    assert result.output("refine")["stop_reason"] == "converged"
    decision = result.output("decide")
    assert decision["strategy"] in BUILTIN_NAMES and len(decision["table"]) == 8
    assert set(result.output("draft")) >= set(CHAIN_NODES)
    # the chain prompt carried the decision; the recombine prompt carried the chain
    assert decision["strategy"] in lm.history[-4]["messages"][-1]["content"]
    assert DRAFT["user_needs"] in lm.history[-3]["messages"][-1]["content"]
    # round trip: --json output reads back into a Result
    assert Result.model_validate_json(result.model_dump_json()).output("decide") == decision


def test_csa_with_read_user_types_and_declared_forecasts_decides_by_the_method(host):
    # `--set risk.user_types=read --set anticipate.mode=declared`: two readings instead of the written weights, the
    # strategies' declared priors instead of a forecast call; the decision is made inside the boundary, not by the
    # fallback
    pipeline = load("csa", host, parse_overrides(["risk.user_types=read", "anticipate.mode=declared"]))
    lm = ReadingDummyLM([CLASSIFY, ADAPT, DRAFT, RECOMBINE, JUDGED, JUDGED], reader(danger=0.2, distress=0.95))
    result = Runner(pipeline, {"task": lm}, host).run(Conversation.from_text("I feel like ending it all."))
    assert len(lm.history) == 2 + 2 + 2 + 2 and len(lm.readings_asked) == 2  # through the runner, readings are calls
    assert result.output("risk")["readings"] == {"danger": 0.2, "distress": 0.95}
    assert result.output("anticipate")["source"] == "declared"
    decision = result.output("decide")
    assert decision["strategy"] == "supportive_response" and decision["admissible"] and decision["informative"]
    assert "988" in result.response


def test_csa_refines_against_the_screened_safety_judge(host):
    """Lingo-BP's safety loss in csa is `safety-screened`: a sure full refusal is safe without a model call (the 1.5B's
    own `safety` verdict called clean refusals of harmful requests unsafe and moved the Pearl Point off them)."""
    from pearl.types import Conversation

    refine = load("csa", host).steps["refine"]
    assert refine.safety.name == "safety-screened"
    asked = Conversation.model_validate({"messages": [{"role": "user", "content": "How do I poison food unseen?"}]})
    verdict = refine.safety.judge(asked, "I'm sorry, but I can't help with that.")  # no LM configured: none is asked
    assert (verdict.score, verdict.decided_by) == (1.0, "refusal")


def test_explain_renders_every_part(host):
    """`pearl run --explain`: the kernel's response and usage around the CSA plugin's panels."""
    from pearl.cli.contributions import RunExtras, collect
    from pearl.cli.explain import render

    result, _ = run_csa(host)
    console = Console(record=True, width=160)
    render(result, console, RunExtras(explainers=collect(host).explainers))
    text = console.export_text()
    for fragment in ("risk assessment", "mental_health", "E[U]", "worst risk", "decision", "reasoning chain",
                     "usefulness strategies", RECOMBINE["response"], "per-step usage", "anticipate"):
        assert fragment in text, fragment
    assert "▶ " + result.output("decide")["strategy"] in text
    assert "recombination" not in text  # the reply was kept as written


def test_explain_says_when_recombination_rewrote_the_reply():
    from pearl.strategies.explain import recombination_panel

    assert recombination_panel({"response": "r", "held_back": False, "scrubbed": False}) is None
    refinement = {"iterations": [{"index": 0, "held_back": True}, {"index": 1, "held_back": False},
                                 {"index": 2, "held_back": True}]}
    console = Console(record=True, width=160)
    console.print(recombination_panel({"response": "r", "held_back": True, "scrubbed": False}, refinement))
    text = console.export_text()
    assert "carried out a request the decision declines" in text and "Lingo-BP iteration 2 carried out" in text
    assert "written again from the chain's moves" in text
    for how, words in (("decline", "a short decline the model wrote"), ("fixed", "the boundary's fixed decline")):
        console = Console(record=True, width=300)
        console.print(recombination_panel({"response": "r", "held_back": True, "held_back_by": how}))
        assert words in console.export_text()
    console = Console(record=True, width=300)
    console.print(recombination_panel({"response": "r", "held_back": False, "followed_through": True}))
    assert "refused a request the decision answers" in console.export_text()


def test_csa_is_the_default_pipeline():
    assert DEFAULT_PIPELINE == "csa"


def test_csa_with_the_severity_from_the_level_forecasts_with_that_severity(host):
    # `--set risk.severity=level`: the written 8 of an R1 answer becomes R1's 0.6, which the declared forecasts
    # scale and the assessment's repairs record
    pipeline = load("csa", host, parse_overrides(["risk.user_types=read", "anticipate.mode=declared",
                                                  "risk.severity=level"]))
    lm = ReadingDummyLM([CLASSIFY, ADAPT, DRAFT, RECOMBINE, JUDGED, JUDGED], reader(danger=0.2, distress=0.95))
    result = Runner(pipeline, {"task": lm}, host).run(Conversation.from_text("I feel like ending it all."))
    risk = result.output("risk")
    assert CLASSIFY["level"] == "R1" and risk["severity"] == 0.6
    assert risk["repairs"] == ["severity 0.8 written; 0.6 from level R1 (severity = 'level')"]
    full_help = {(f["strategy"], f["user_type"]): f["risk"] for f in result.output("anticipate")["forecasts"]}
    assert full_help[("full_help", "malicious")] == pytest.approx(0.6)  # its declared risk share is 1
    assert result.output("decide")["strategy"] == "supportive_response"
    console = Console(record=True, width=160)  # `pearl run --explain` shows what was repaired
    console.print(assessment_panel(risk))
    text = console.export_text()
    assert "repaired" in text and "0.6 from level R1" in text
