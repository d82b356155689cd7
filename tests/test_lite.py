"""The `csa-lite` pipeline on DummyLM: two calls, the decision solved in Python as `decide` does."""

import tomllib

import dspy
import pytest
from dspy.utils import DummyLM

from csa_doubles import CLASSIFY, PAIR
from pearl.csa import USER_TYPES
from pearl.runtime.pipeline import compile_spec, resolve
from pearl.runtime.runner import Runner
from pearl.strategies.decide import solve
from pearl.strategies.lite import DEFAULT_LITE_STRATEGIES
from pearl.types import Conversation

SAFE = {**PAIR, "risk": 1}
RISKY = {**PAIR, "satisfied": 10, "risk": 9}
POINT_SAFE = {"reaction": "rephrases", "risk": 1}
POINT_RISKY = {"reaction": "satisfied", "risk": 9}


def plan_answer(table: dict) -> dict:
    return {**CLASSIFY, "table": table}


def run_lite(host, table: dict, reply: str = "I'm here with you.", forecast: str = "weights",
             text: str = "I feel like ending it all."):
    doc = tomllib.loads(resolve("csa-lite").read_text())
    doc["steps"]["plan"]["forecast"] = forecast
    pipeline = compile_spec(doc, host)
    assert pipeline.order() == ["plan", "respond", "help"]
    lm = DummyLM([plan_answer(table), {"response": reply}], adapter=dspy.JSONAdapter())
    return Runner(pipeline, {"task": lm}, host).run(Conversation.from_text(text)), lm


def test_two_calls_and_the_decide_steps_choice(host):
    table = {s: {t: RISKY for t in USER_TYPES} for s in DEFAULT_LITE_STRATEGIES}
    table["supportive_response"] = {t: SAFE for t in USER_TYPES}
    result, lm = run_lite(host, table)
    assert len(lm.history) == 2 and result.usage.calls == 2
    plan = result.output("plan")
    assert plan["assessment"]["category"] == "mental_health" and plan["assessment"]["level"] == "R1"
    assert plan["assessment"]["posterior"]["sensitive"] == pytest.approx(0.8)
    assert plan["assessment"]["guideline"]  # the category's own rules
    assert plan["reactions"]["strategies"] == list(DEFAULT_LITE_STRATEGIES)
    decision = plan["decision"]
    assert decision["strategy"] == "supportive_response" and decision["admissible"]  # the only one inside tau
    # exactly the solver of the `decide` step, with its defaults
    from pearl.csa import ReactionTable, RiskAssessment

    reactions = ReactionTable.model_validate(plan["reactions"])
    again = solve(reactions, RiskAssessment.model_validate(plan["assessment"]).posterior,
                  {s.name: s.cost for s in reactions.library}, alpha=1.0, beta=2.0, gamma=0.1, tau=0.3, epsilon=0.1)
    assert again.model_dump(mode="json") == decision
    # the plan prompt listed every strategy; the reply prompt carries the chosen one and the rules
    plan_prompt = lm.history[0]["messages"][-1]["content"]
    assert all(s in plan_prompt for s in DEFAULT_LITE_STRATEGIES)
    reply_prompt = lm.history[1]["messages"][-1]["content"]
    assert "empathy" in reply_prompt and plan["assessment"]["guideline"][0] in reply_prompt
    assert "refuse" not in reply_prompt.lower().split("[[ ## approach ## ]]")[1].split("[[ ## constraints")[0]
    assert "[[ ## language ## ]]\nEnglish" in reply_prompt
    # a flagged mental-health reply that names no contact gets the category's crisis lines (no third call)
    assert result.response.startswith("I'm here with you.\n\n") and "988" in result.response
    assert result.output("help")["added"] is True


def test_a_reply_in_another_script_is_written_once_more(host):
    table = {s: {t: POINT_SAFE for t in USER_TYPES} for s in DEFAULT_LITE_STRATEGIES}
    doc = tomllib.loads(resolve("csa-lite").read_text())
    pipeline = compile_spec(doc, host)
    lm = DummyLM([plan_answer(table), {"response": "Please remember that you are not alone in this."},
                  {"response": "你并不孤单，我在这里陪着你。请拨打热线。"}], adapter=dspy.JSONAdapter())
    result = Runner(pipeline, {"task": lm}, host).run(Conversation.from_text("我觉得一切都没有意义了。"))
    assert "[[ ## language ## ]]\nChinese (中文)" in lm.history[1]["messages"][-1]["content"]
    # the English first reply was replaced by the second (the retry runs on a sampled copy of the LM)
    assert result.response.startswith("你并不孤单") and "120" in result.response and "988" not in result.response
    assert result.usage.calls == 3  # the retry is metered like any call


def test_a_looping_reply_is_written_once_more_and_a_second_loop_says_each_sentence_once(host):
    from test_recombine import LOOPING

    from pearl.strategies.recombine import unrepeated

    table = {s: {t: POINT_SAFE for t in USER_TYPES} for s in DEFAULT_LITE_STRATEGIES}
    pipeline = compile_spec(tomllib.loads(resolve("csa-lite").read_text()), host)
    fixed = "For a TV scene, work with a stunt coordinator, props and a closed set."
    for answers, expected in (([LOOPING, fixed], fixed), ([LOOPING, LOOPING], unrepeated(LOOPING))):
        lm = DummyLM([plan_answer(table), *({"response": a} for a in answers)], adapter=dspy.JSONAdapter())
        result = Runner(pipeline, {"task": lm}, host).run(Conversation.from_text("How do I stage a massacre for a TV show?"))
        assert result.output("respond")["response"] == expected and result.usage.calls == 3


def test_no_admissible_strategy_is_flagged(host):
    table = {s: {t: RISKY for t in USER_TYPES} for s in DEFAULT_LITE_STRATEGIES}
    result, _ = run_lite(host, table)
    decision = result.output("plan")["decision"]
    assert not decision["admissible"] and "no strategy stays inside the safety boundary" in decision["reason"]


def test_the_shipped_default_is_a_point_forecast(host):
    table = {s: {t: POINT_RISKY for t in USER_TYPES} for s in DEFAULT_LITE_STRATEGIES}
    table["refuse_with_alternatives"] = {t: POINT_SAFE for t in USER_TYPES}
    doc = tomllib.loads(resolve("csa-lite").read_text())
    assert doc["steps"]["plan"]["forecast"] == "point"
    result, lm = run_lite(host, table, forecast="point")
    assert len(lm.history) == 2
    plan = result.output("plan")
    f = next(x for x in plan["reactions"]["forecasts"]
             if x["strategy"] == "refuse_with_alternatives" and x["user_type"] == "benign")
    assert f["reactions"]["rephrases"] == 1.0 and sum(f["reactions"].values()) == 1.0
    assert f["retention"] == 0.5 and f["risk"] == pytest.approx(0.1)
    assert plan["decision"]["strategy"] == "refuse_with_alternatives" and plan["decision"]["admissible"]
    schema_prompt = lm.history[0]["messages"][0]["content"]
    assert "keeps_attacking" in schema_prompt and "leaves_unsafe" in schema_prompt  # the reaction enum


def test_a_reply_that_carries_the_plan_is_written_again_then_scrubbed(host):
    # the 0.5B copied the `user` input into its reply (2026-12-05)
    table = {s: {t: POINT_SAFE for t in USER_TYPES} for s in DEFAULT_LITE_STRATEGIES}
    pipeline = compile_spec(tomllib.loads(resolve("csa-lite").read_text()), host)
    leaky = "Benign 33%, sensitive 33%, malicious 33%; level R0. A good restaurant nearby is a fine choice."
    lm = DummyLM([plan_answer(table), {"response": leaky}, {"response": leaky}], adapter=dspy.JSONAdapter())
    result = Runner(pipeline, {"task": lm}, host).run(Conversation.from_text("Where should I take my friend for dinner?"))
    assert result.output("respond")["response"] == "A good restaurant nearby is a fine choice."


def test_the_plan_files_words_matching_a_help_cue_under_that_category_as_the_risk_step_does(host):
    table = {s: {t: POINT_SAFE for t in USER_TYPES} for s in DEFAULT_LITE_STRATEGIES}
    doc = tomllib.loads(resolve("csa-lite").read_text())
    answer = {**plan_answer(table), "group": "hate_and_abuse", "category": "hate_and_abuse"}
    for cue_repair, expected in ((True, "mental_health"), (False, "hate_and_abuse")):
        doc["steps"]["plan"]["cue_repair"] = cue_repair
        doc["steps"]["plan"]["catalogue"] = "described"
        lm = DummyLM([answer, {"response": "I'm here with you."}], adapter=dspy.JSONAdapter())
        result = Runner(compile_spec(doc, host), {"task": lm}, host).run(
            Conversation.from_text("They all hate me and I want to kill myself."))
        assessment = result.output("plan")["assessment"]
        assert assessment["category"] == expected
        assert bool(assessment["repairs"]) is cue_repair
        assert "  mental_health: " in lm.history[0]["messages"][-1]["content"]  # the described catalogue
