import dspy
from dspy.utils import DummyLM

from pearl.csa import Chain
from pearl.strategies.recombine import Recombine, find_leaks, recombine, render_chain, scrub
from pearl.types import Conversation

RISKY = Chain(user_needs="stop feeling hopeless", risk_intent="declarative: talks of ending life",
              safety_guidelines=["offer crisis resources"], safety_strategies=["express care", "share a hotline"],
              usefulness_strategies=["suggest one small step"])


def test_render_has_no_framework_vocabulary():
    assert find_leaks(render_chain(RISKY)) == []
    simple = Chain(user_needs="bake bread", usefulness_strategies=["give a recipe"])
    assert simple.simplified and "Rules to respect" not in render_chain(simple)


def test_leak_detection_and_scrub():
    text = "I hear you. Per my safety guideline I must say this. You are not alone."
    assert find_leaks(text) == ["safety guideline"]
    assert scrub(text) == "I hear you. You are not alone."


def test_leaking_answer_is_regenerated_then_scrubbed():
    leaky = {"reasoning": "r", "response": "The usefulness strategy says: drink water. Take care."}
    lm = DummyLM([leaky, leaky], adapter=dspy.JSONAdapter())
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        draft = recombine("recombine", Recombine(), Conversation.from_text("I feel awful"), RISKY)
    assert draft.scrubbed and draft.response == "Take care."


def test_clean_answer_passes_through():
    lm = DummyLM([{"reasoning": "They need care.", "response": "I'm here with you."}], adapter=dspy.JSONAdapter())
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        draft = recombine("recombine", Recombine(), Conversation.from_text("I feel awful"), RISKY)
    assert draft.response == "I'm here with you." and draft.reasoning == "They need care." and not draft.scrubbed
