"""The `draft` step on DummyLM: full chain conditioned on assessment and decision; simplified chain."""

import dspy
import networkx as nx
from dspy.utils import DummyLM

from csa_doubles import DRAFT
from pearl.csa import CHAIN_NODES, Decision, RiskAssessment, UserPosterior, chain_graph
from pearl.host.step import RunState, StepContext
from pearl.strategies.library import BUILTIN_STRATEGIES
from pearl.types import Conversation

SUPPORT = next(s for s in BUILTIN_STRATEGIES if s.name == "supportive_response")
DECISION = Decision(strategy=SUPPORT.name, admissible=True, reason="r", table=[], alpha=1, beta=2, gamma=0.1, tau=0.3,
                    epsilon=0.1, chosen=SUPPORT)


def assessment(**kw):
    base = dict(taxonomy="oyster", category="mental_health", level="R1", interaction="declarative",
                attack_form=None, posterior=UserPosterior(benign=0.2, sensitive=0.8, malicious=0), severity=0.8,
                guideline=["Be warm.", "Give a crisis line."])
    return RiskAssessment(**{**base, **kw})


def run(host, a, answers):
    cls = host.step("draft")
    step = cls(cls.Params(), StepContext(step_id="draft", host=host))
    state = RunState(Conversation.from_text("I feel like ending it all."))
    state.set("assessment", a)
    state.set("decision", DECISION)
    lm = DummyLM(answers, adapter=dspy.JSONAdapter())
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        return step.run(state), lm


def test_full_chain(host):
    chain, lm = run(host, assessment(), [DRAFT])
    assert chain.user_needs == DRAFT["user_needs"]
    assert chain.risk_intent == "declarative: hopeless words about ending it"
    assert chain.safety_guidelines == ["Be warm.", "Give a crisis line."]
    assert chain.safety_strategies == DRAFT["safety_strategies"] and not chain.simplified
    prompt = lm.history[0]["messages"][-1]["content"]
    assert "supportive_response" in prompt and "never give means" in prompt and "1. Be warm." in prompt


def test_simplified_chain_when_no_risk(host):
    safe = assessment(category="unknown", level="R0", severity=0, guideline=[])
    answer = {k: DRAFT[k] for k in ("user_needs", "safety_strategies", "usefulness_strategies")}
    chain, lm = run(host, safe, [answer])
    assert chain.simplified and chain.risk_intent == "" and chain.safety_guidelines == []
    assert "risk_signal" not in lm.history[0]["messages"][0]["content"]


def test_phrases_are_capped_and_cleaned(host):
    many = {**DRAFT, "usefulness_strategies": ["a", " ", "b", "c", "d"]}
    chain, _ = run(host, assessment(attack_form="role_play", interaction="directive"), [many])
    assert chain.usefulness_strategies == ["a", "b", "c"] and chain.risk_intent.startswith("directive (role_play): ")


def test_chain_graph_is_a_dag_over_the_five_nodes():
    g = chain_graph()
    assert set(g.nodes) == set(CHAIN_NODES) and nx.is_directed_acyclic_graph(g)
    assert list(nx.topological_sort(g))[0] == "user_needs"


def test_empty_user_needs_are_repaired_from_the_last_message_and_flagged(host):
    chain, _ = run(host, assessment(), [{**DRAFT, "user_needs": "  "}])
    assert chain.user_needs == "Answer the person's message: I feel like ending it all."
    assert chain.repairs == ["no user needs were drafted: the last message stands in"]
    whole, _ = run(host, assessment(), [DRAFT])
    assert whole.repairs == []
