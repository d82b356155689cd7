"""Lingo-BP wiring on a routed DummyLM (a scripted test double): node order, node sets,
early stop, budget stop, history and Pearl-Point choice, judge failure."""

import re

import dspy
import pytest

from pearl.csa import CHAIN_NODES, Chain, chain_graph
from pearl.runtime.pipeline import compile_spec
from pearl.csa.refinement import Iteration, choose_pearl_point
from pearl.csa.judgements import SafetyJudgement, SatisfactionItems, SatisfactionJudgement
from pearl.runtime.runner import Runner
from pearl.strategies.lingobp import NODE_SETS, backward_levels, nodes_for, planned_calls, updates_model
from pearl.types import Conversation

from lingobp_doubles import DoublesPlugin, RISKY_CHAIN, RoutedDummyLM, Script, pipeline_doc

CONV = Conversation.from_text("I'm locked out of my own house, how do I open the door?")


@pytest.fixture
def doubles(host):
    host.register(DoublesPlugin(), name="tests.lingobp")
    return host


def run(host, script, **params):
    lm = RoutedDummyLM(script)
    pipeline = compile_spec(pipeline_doc(**params), host)
    result = Runner(pipeline, {"task": lm}, host).run(CONV)
    return result, lm


# --- graph walking ----------------------------------------------------------------------------

def backward_order(nodes) -> list:
    return [n for _, batch in backward_levels(nodes) for n in batch]


def test_reverse_topological_order_is_deterministic_and_valid():
    graph = chain_graph()
    order = backward_order(CHAIN_NODES)
    assert order == ["safety_strategies", "usefulness_strategies", "safety_guidelines", "risk_intent", "user_needs"]
    pos = {n: i for i, n in enumerate(order)}
    assert all(pos[b] < pos[a] for a, b in graph.edges)  # every node after its descendants
    assert backward_order(reversed(CHAIN_NODES)) == order  # input order does not matter
    assert [batch for _, batch in backward_levels(CHAIN_NODES)] == [
        ["safety_strategies", "usefulness_strategies"], ["safety_guidelines"], ["risk_intent"], ["user_needs"]]


def test_node_sets_per_mode():
    assert NODE_SETS["user"] == {"user_needs", "usefulness_strategies"}
    assert NODE_SETS["developer"] == NODE_SETS["both"] == set(CHAIN_NODES)
    simple = Chain(user_needs="bake bread", usefulness_strategies=["give a recipe"])
    assert nodes_for("developer", simple) == {"user_needs", "safety_strategies", "usefulness_strategies"}
    assert planned_calls("both", RISKY_CHAIN) == planned_calls("both", RISKY_CHAIN, "chain") == 1 + 1 + 2
    assert planned_calls("both", RISKY_CHAIN, "level") == 4 + 1 + 2
    assert planned_calls("both", RISKY_CHAIN, "node") == 5 + 1 + 2
    assert planned_calls("user", RISKY_CHAIN, "level") == 2 + 1 + 2  # usefulness strategies, then needs


def test_chain_update_schema_lists_nodes_in_backward_order():
    order = ["safety_strategies", "usefulness_strategies", "safety_guidelines", "risk_intent", "user_needs"]
    schema = updates_model(order).model_json_schema()
    assert list(schema["properties"]) == order  # decoded in this order: descendants first
    defs = schema["$defs"]
    assert defs["ListPartUpdate"]["properties"]["updated"]["maxItems"] == 6
    assert list(defs["TextPartUpdate"]["properties"]) == ["gradient", "updated"]  # the gradient comes first


@pytest.mark.parametrize("backward", ["chain", "level", "node"])
@pytest.mark.parametrize("mode, expected", [
    ("user", ["usefulness_strategies", "user_needs"]),
    ("developer", ["safety_strategies", "usefulness_strategies", "safety_guidelines", "risk_intent", "user_needs"]),
])
def test_mode_updates_only_its_nodes_in_reverse_order(doubles, mode, expected, backward):
    script = Script(sat=[0, 1], safety=["mostly safe", "safe"])
    result, _ = run(doubles, script, schedule=[mode], backward=backward)
    refined = result.output("refine")
    calls = {"chain": 1, "level": len(backward_levels(expected)), "node": len(expected)}[backward]
    assert result.steps["refine"].usage.calls == 2 + calls + 1 + 2
    it = refined["iterations"][1]
    assert [u["node"] for u in it["updates"]] == expected
    # same-depth nodes form one batch (same depth), batches in increasing depth
    depths = [u["depth"] for u in it["updates"]]
    assert depths == sorted(depths)
    frozen = set(CHAIN_NODES) - set(expected)
    for node in frozen:
        assert it["chain"][node] == RISKY_CHAIN.model_dump()[node]
    # strategy sets moved by the minimal-edit rule: at most one new item
    before = RISKY_CHAIN.usefulness_strategies
    after = it["chain"]["usefulness_strategies"]
    assert len([s for s in after if s not in before]) == 1


@pytest.mark.parametrize("backward", ["level", "node"])
def test_downstream_updates_reach_upstream_prompts(doubles, backward):
    script = Script(sat=[0, 1], safety=["unsafe", "safe"])
    _, lm = run(doubles, script, schedule=["both"], backward=backward)
    needs_prompt = next(p for p in lm.prompts if re.search(r"\[\[ ## parts? ## \]\]\nuser needs:", p))
    assert "g-safety_strategies" in needs_prompt and "g-risk_intent" in needs_prompt
    assert "Safety comes first" in needs_prompt  # both low: safety wins


def test_chain_backward_is_one_call_with_every_node_in_reverse_order(doubles):
    script = Script(sat=[0, 1], safety=["unsafe", "safe"])
    result, lm = run(doubles, script, schedule=["both"])
    order = ["safety_strategies", "usefulness_strategies", "safety_guidelines", "risk_intent", "user_needs"]
    assert script.group_calls == [order]
    prompt = next(p for p in lm.prompts if "`updates`" in p)
    assert "Safety comes first" in prompt
    it = result.output("refine")["iterations"][1]
    assert [u["node"] for u in it["updates"]] == order
    assert [u["depth"] for u in it["updates"]] == [0, 0, 1, 2, 3]
    assert it["updates"][0]["gradient"] == "g-safety_strategies"
    for node in ("safety_strategies", "usefulness_strategies"):  # per-node minimal edit: one new item per set
        before, after = RISKY_CHAIN.model_dump()[node], it["chain"][node]
        assert len([s for s in after if s not in before]) == 1
    assert it["chain"]["safety_guidelines"] == ["new safety_guidelines idea 2", "another safety_guidelines idea 2"]
    assert it["chain"]["user_needs"] == "user_needs v2"  # the draft was recombination 1


@pytest.mark.parametrize("backward", ["chain", "node"])
def test_both_mode_relaxes_when_only_satisfaction_is_low(doubles, backward):
    script = Script(sat=[0, 1], safety=["safe"])
    _, lm = run(doubles, script, schedule=["both"], backward=backward)
    node_prompt = next(p for p in lm.prompts if "[[ ## aim ## ]]" in p)
    assert "may be relaxed, but never beyond those rules" in node_prompt


@pytest.mark.parametrize("backward, calls", [("chain", 14), ("level", 2 + 3 * 7), ("node", 2 + 3 * 8)])
def test_history_completeness_and_pearl_point(doubles, backward, calls):
    # draft: sat 0 / mostly safe; v1: sat -1 / safe; v2: sat 0 / safe; v3: sat 0 / unsafe
    script = Script(sat=[0, -1, 0, 0], safety=["mostly safe", "safe", "safe", "unsafe"])
    result, _ = run(doubles, script, backward=backward)
    refined = result.output("refine")
    its = refined["iterations"]
    assert len(its) == 4 and [it["index"] for it in its] == [0, 1, 2, 3]
    assert [it["mode"] for it in its] == [None, "both", "both", "both"]
    for it in its:
        assert it["chain"] and it["response"] and it["satisfaction"] and it["safety"]
        assert it["usage"]["calls"] > 0
    assert [it["response"] for it in its[1:]] == ["reply v2", "reply v3", "reply v4"]
    assert its[1]["reasoning"] == "thinking 2."
    assert refined["stop_reason"] == "schedule_done"
    assert refined["chosen"] == 2 and not refined["flagged"]
    assert result.response == "reply v3"  # the Pearl Point is the pipeline's answer
    assert refined["usage"]["calls"] == calls  # three `both` steps; "chain" matches the reference's 14
    assert refined["conversation"]["messages"][0]["content"] == CONV.last_user_message


def test_no_safe_iteration_is_flagged(doubles):
    script = Script(sat=[1, 0, -1, 1], safety=["unsafe", "mostly safe", "mostly safe", "unsafe"])
    refined = run(doubles, script)[0].output("refine")
    assert refined["chosen"] == 1 and refined["flagged"] and "no iteration was judged safe" in refined["flag"]


def test_early_stop_when_scores_are_at_max(doubles):
    script = Script(sat=[0, 1], safety=["mostly safe", "safe"])
    refined = run(doubles, script)[0].output("refine")
    assert len(refined["iterations"]) == 2 and refined["stop_reason"] == "converged"
    # already perfect draft: no backward pass at all
    script = Script(sat=[1], safety=["safe"])
    refined = run(doubles, script)[0].output("refine")
    assert len(refined["iterations"]) == 1 and refined["stop_reason"] == "converged"
    assert script.node_calls == []


def test_user_mode_stops_on_satisfaction_alone(doubles):
    script = Script(sat=[1], safety=["unsafe"])
    refined = run(doubles, script, schedule=["user", "developer"])[0].output("refine")
    # user step skipped (satisfaction at max), developer step runs
    assert [it["mode"] for it in refined["iterations"]] == [None, "developer"]


@pytest.mark.parametrize("backward, per_step", [("chain", 4), ("node", 8)])
def test_budget_stop_on_calls(doubles, backward, per_step):
    script = Script(sat=[0], safety=["mostly safe"])
    limit = 2 + per_step + per_step - 1
    refined = run(doubles, script, max_calls=limit, backward=backward)[0].output("refine")
    assert len(refined["iterations"]) == 2
    assert refined["stop_reason"] == "budget_calls" and "raise max_calls" in refined["stop_detail"]
    assert refined["usage"]["calls"] == 2 + per_step


def test_budget_stop_on_tokens(doubles):
    script = Script(sat=[0], safety=["mostly safe"])
    refined = run(doubles, script, max_tokens=10)[0].output("refine")
    assert len(refined["iterations"]) == 1 and refined["stop_reason"] == "budget_tokens"
    assert refined["iterations"][0]["satisfaction"] is not None


def test_judge_failure_keeps_history_and_stops(doubles):
    script = Script(sat=[0, 0, 0], safety=["mostly safe", "mostly safe"], fail_judge_at=2)
    result, _ = run(doubles, script)
    refined = result.output("refine")
    its = refined["iterations"]
    assert len(its) == 3 and refined["stop_reason"] == "judge_failed"
    assert its[2]["safety"] is None and "judge 'safety' gave no verdict" in its[2]["judge_error"]
    assert its[2]["satisfaction"] is not None  # the other judge's verdict is kept
    assert script.rounds["safety"] == 4  # two tries on the failing round (one retry)
    assert refined["chosen"] in (0, 1) and its[0]["safety"] and its[1]["safety"]


def test_refine_zero_passes_the_draft_through(doubles):
    script = Script(sat=[0], safety=["safe"])
    result, lm = run(doubles, script, schedule=[])
    refined = result.output("refine")
    assert refined["stop_reason"] == "disabled" and len(refined["iterations"]) == 1
    assert result.response == "reply v1" and result.steps["refine"].usage.calls == 0


def judged_iteration(i, sat, verdict):
    """Iteration `i` (response "r{i}") with every satisfaction item at `sat` and the safety `verdict`."""
    items = SatisfactionItems(**{k: sat for k in SatisfactionItems.model_fields})
    return Iteration(index=i, chain=RISKY_CHAIN, response=f"r{i}",
                     satisfaction=SatisfactionJudgement.build(profile="p", needs="n", items=items, suggestion=""),
                     safety=SafetyJudgement.build(verdict=verdict, expected_behaviour="e", user_type="benign",
                                                  next_turn="t", suggestion=""))


def test_choose_pearl_point_ties_go_to_the_earliest():
    it = judged_iteration
    assert choose_pearl_point([it(0, 0, "safe"), it(1, 1, "safe"), it(2, 1, "safe")]) == (1, False, "")
    unjudged = Iteration(index=0, chain=RISKY_CHAIN, response="r0")
    assert choose_pearl_point([unjudged])[:2] == (0, True)


def test_a_last_resort_is_set_aside_while_another_iteration_is_mostly_safe():
    it = judged_iteration
    refusal = {"r1"}
    is_refusal = lambda it_: it_.response in refusal  # noqa: E731
    path = [it(0, 1, "mostly safe"), it(1, -1, "safe"), it(2, 0, "mostly safe")]
    assert choose_pearl_point(path) == (1, False, "")  # the method as written: the safe refusal
    index, flagged, why = choose_pearl_point(path, is_refusal)
    assert (index, flagged) == (0, True) and "set aside" in why and "mostly safe" in why
    # a safe answer beats a safe refusal even when the refusal satisfies more
    assert choose_pearl_point([it(0, 1, "safe"), it(1, 0, "safe")], lambda it_: it_.index == 0) == (1, False, "")
    # nothing else at least mostly safe: the last resort stays in
    assert choose_pearl_point([it(0, 1, "unsafe"), it(1, -1, "safe")], is_refusal) == (1, False, "")
    # no last resort among the iterations: the rule as written, message and all
    only_unsafe = [it(0, 1, "unsafe"), it(1, 0, "unsafe")]
    assert choose_pearl_point(only_unsafe, is_refusal) == choose_pearl_point(only_unsafe)


REFUSAL = "I'm sorry, but I can't help with that."
ANSWER = ("A pin tumbler lock has spring-loaded pins; the right key lifts each pin to the shear line. "
          "A locksmith can open your own door without damage.")


@pytest.mark.parametrize("fallback_for, last_resort, chosen", [
    (("sensitive",), False, 1),   # the method as written: the refusal judged safe
    (("sensitive",), True, 0),    # the decision asked for support: the mostly-safe answer
    (("malicious",), True, 1),    # the decision is a refusal kept for malicious users: the refusal stays
])
def test_refine_step_sets_a_full_refusal_aside_unless_the_decision_refuses(
        doubles, monkeypatch, fallback_for, last_resort, chosen):
    import lingobp_doubles

    strategy = lingobp_doubles.DECISION.chosen.model_copy(update={"fallback_for": fallback_for})
    monkeypatch.setattr(lingobp_doubles, "DECISION", lingobp_doubles.DECISION.model_copy(update={"chosen": strategy}))
    script = Script(sat=[1, -1], safety=["mostly safe", "safe"], replies=[ANSWER, REFUSAL])
    params = {"schedule": ["developer"]} | ({"refusal_last_resort": True} if last_resort else {})
    result, _ = run(doubles, script, **params)
    refined = result.output("refine")
    assert [it["response"] for it in refined["iterations"]] == [ANSWER, REFUSAL]
    assert refined["chosen"] == chosen and result.response == (ANSWER, REFUSAL)[chosen]
    assert refined["flagged"] == (chosen == 0)


def test_judges_are_language_neutral_in_their_prompts():
    from pearl.strategies.judges import SafetySignature, SatisfactionSignature

    for sig in (SafetySignature, SatisfactionSignature):
        assert "any language" in sig.instructions


def test_critique_of_a_screened_safety_verdict_names_its_tier():
    from pearl.strategies.lingobp import critique

    chain = RISKY_CHAIN
    screened = SafetyJudgement(judge="safety-screened", score=1.0, label="safe", verdict="safe", expected_behaviour="",
                               user_type=None, next_turn="", decided_by="refusal")
    text = critique("developer", Iteration(index=0, chain=chain, response="No.", safety=screened))
    assert text == "Safety review (safe): decided by refusal."
    full = screened.model_copy(update={"expected_behaviour": "decline", "user_type": "benign", "next_turn": "ok"})
    assert "a safe reply would decline" in critique("developer", Iteration(index=0, chain=chain, response="No.",
                                                                           safety=full))
    read = screened.model_copy(update={"label": "unsafe", "verdict": "unsafe", "score": 0.0, "judge": "safety-likelihood",
                                       "expected_behaviour": "leave out the method", "suggestion": "Remove it."})
    text = critique("developer", Iteration(index=0, chain=chain, response="Step 1", safety=read))
    assert text == "Safety review (unsafe): a safe reply would leave out the method. Suggestion: Remove it."
