"""Chain drafting (CSA.md section 3): the `draft` step -> slot `chain`.

The five nodes of `pearl.csa.Chain`, conditioned on the assessment and the decision:

- user needs, safety strategies, usefulness strategies: written by the model, the
  strategies as short ordered phrases that carry out the chosen response strategy
  and respect its hard constraints;
- risk intent: the assessed interaction type (and attack form) followed by the
  model's sentence on how the risk shows;
- safety guidelines: the assessment's guideline (already adapted to the request).

When the assessment shows no risk (`RiskAssessment.is_risky` is False) the simplified
chain is drafted: risk intent and guidelines stay empty and the model writes only the
needs and the strategies. `pearl.csa.chain_graph()` gives the node dependencies that
Lingo-BP walks.

A well-formed but degenerate plan is repaired, never fatal, and recorded in
`Chain.repairs`: empty user needs become "Answer the person's message: <their last
message>" (recombination still has something to serve).
"""

from __future__ import annotations

import dspy
from pydantic import BaseModel, ConfigDict, Field

from pearl.csa import Chain, Decision, ResponseStrategy, RiskAssessment
from pearl.host.hookspecs import hookimpl
from pearl.runtime.programs import call_program
from pearl.host.step import Step
from pearl.strategies.fields import text, text_list
from pearl.strategies.risk import describe_assessment
from pearl.types import Conversation

Need = text("Sentence", 200)
Phrase = text("Phrase", 100)
Phrases = text_list("Phrases", 3, Phrase)


class DraftSignature(dspy.Signature):
    """Plan a reply to the user's last message, following the chosen approach and the rules.

    Write what the person really needs (the practical need and the feeling behind it),
    how the risk shows in the message, and two short ordered lists of concrete moves:
    moves that keep the reply safe, and moves that make it most useful.
    """

    conversation: str = dspy.InputField(desc="the conversation, one 'role: text' line per turn")
    assessment: str = dspy.InputField(desc="the risk assessment of the request")
    rules: str = dspy.InputField(desc="rules the reply must respect, numbered")
    approach: str = dspy.InputField(desc="the chosen way to respond and its hard limits")
    user_needs: Need = dspy.OutputField(desc="the core need and the emotional motive, one or two sentences")
    risk_signal: Need = dspy.OutputField(desc="how the risk shows in the message, one sentence")
    safety_strategies: Phrases = dspy.OutputField(desc="at most 3 short moves that keep the reply safe, in order")
    usefulness_strategies: Phrases = dspy.OutputField(desc="at most 3 short moves that make it useful, in order")


class SimpleDraftSignature(dspy.Signature):
    """Plan a reply to the user's last message, following the chosen approach.

    Write what the person really needs and two short ordered lists of concrete moves:
    moves that keep the reply accurate and responsible, and moves that make it most useful.
    """

    conversation: str = dspy.InputField(desc="the conversation, one 'role: text' line per turn")
    approach: str = dspy.InputField(desc="the chosen way to respond")
    user_needs: Need = dspy.OutputField(desc="the core need and the emotional motive, one or two sentences")
    safety_strategies: Phrases = dspy.OutputField(desc="at most 3 short moves that keep the reply responsible")
    usefulness_strategies: Phrases = dspy.OutputField(desc="at most 3 short moves that make it useful, in order")


def describe_approach(decision: Decision, strategy: ResponseStrategy | None) -> str:
    if strategy is None:
        return decision.strategy
    limits = "; ".join(strategy.constraints)
    return f"{strategy.name}: {strategy.summary}" + (f" Limits: {limits}." if limits else "")


def with_phrase_limit(signature: type[dspy.Signature], limit: int) -> type[dspy.Signature]:
    """`signature` with both strategy lists bounded to `limit` phrases (schema and wording)."""
    phrases = text_list("Phrases", limit, Phrase)
    for name in ("safety_strategies", "usefulness_strategies"):
        desc = signature.output_fields[name].json_schema_extra["desc"].replace("at most 3 ", f"at most {limit} ")
        signature = signature.with_updated_fields(name, type_=phrases, desc=desc)
    return signature


def _phrases(items, limit: int) -> list[str]:
    return [x.strip() for x in items if x and x.strip()][:limit]


class DraftChain(dspy.Module):
    """conversation + assessment + decision -> `Chain` (full or simplified)."""

    def __init__(self, max_phrases: int = 3):
        super().__init__()
        self.max_phrases = max_phrases
        self.full = dspy.Predict(with_phrase_limit(DraftSignature, max_phrases))
        self.simple = dspy.Predict(with_phrase_limit(SimpleDraftSignature, max_phrases))

    def forward(self, conversation: str, assessment: RiskAssessment, decision: Decision) -> dspy.Prediction:
        approach = describe_approach(decision, decision.chosen)
        if not assessment.is_risky:
            p = self.simple(conversation=conversation, approach=approach)
            chain = Chain(user_needs=p.user_needs.strip(),
                          safety_strategies=_phrases(p.safety_strategies, self.max_phrases),
                          usefulness_strategies=_phrases(p.usefulness_strategies, self.max_phrases))
            return dspy.Prediction(chain=_repaired(chain, conversation))
        rules = "\n".join(f"{i}. {r}" for i, r in enumerate(assessment.guideline, 1)) or "(none)"
        p = self.full(conversation=conversation, assessment=describe_assessment(assessment), rules=rules,
                      approach=approach)
        form = f" ({assessment.attack_form})" if assessment.attack_form else ""
        signal = p.risk_signal.strip()
        chain = Chain(
            user_needs=p.user_needs.strip(),
            risk_intent=f"{assessment.interaction}{form}" + (f": {signal}" if signal else ""),
            safety_guidelines=list(assessment.guideline),
            safety_strategies=_phrases(p.safety_strategies, self.max_phrases),
            usefulness_strategies=_phrases(p.usefulness_strategies, self.max_phrases),
        )
        return dspy.Prediction(chain=_repaired(chain, conversation))


def _repaired(chain: Chain, conversation: str) -> Chain:
    """`chain`, with empty user needs replaced by the person's last message (flagged)."""
    if chain.user_needs:
        return chain
    last = conversation.strip().splitlines()[-1].split(":", 1)[-1].strip() if conversation.strip() else ""
    return chain.model_copy(update={"user_needs": f"Answer the person's message: {last[:160]}",
                                    "repairs": [*chain.repairs, "no user needs were drafted: the last message stands in"]})


class DraftParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_phrases: int = Field(default=3, ge=1, le=10, description="at most this many phrases per strategy list")


class DraftStep(Step):
    name = "draft"
    description = "the five-node reasoning chain, conditioned on the assessment and the decision"
    Params = DraftParams
    inputs = {"conversation": Conversation, "assessment": RiskAssessment, "decision": Decision}
    output = ("chain", Chain)

    def __init__(self, params: DraftParams, context):
        super().__init__(params, context)
        self.program = DraftChain(max_phrases=params.max_phrases)

    def run(self, state) -> Chain:
        pred = call_program(self.context.step_id, self.program, conversation=state.conversation.transcript(),
                            assessment=state.get("assessment"), decision=state.get("decision"))
        return pred.chain


@hookimpl
def register_steps(register):
    register(DraftStep)
