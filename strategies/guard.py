"""The `guard` step: a classic refusal-first guard, the baseline of the `refuse-first` pipeline.

It reads the risk step's `RiskAssessment` (slot `assessment`): when the assessment flags
anything (`RiskAssessment.is_risky`: a known category, a level above R0, or a non-zero
severity) it answers with a fixed refusal in the user's language and calls no model;
otherwise the model answers directly, as in the `direct` pipeline.
"""

from __future__ import annotations

import dspy
from pydantic import BaseModel, ConfigDict, Field

from pearl.csa import RiskAssessment
from pearl.host.hookspecs import hookimpl
from pearl.runtime.programs import call_program
from pearl.host.step import Step
from pearl.strategies.direct import AnswerSignature
from pearl.strategies.language import HAN_CHAR, language_of
from pearl.types import Answer, Conversation

REFUSALS: dict[str, str] = {
    "en": "I'm sorry, but I can't help with that request.",
    "zh": "抱歉，我无法协助处理这个请求。",
}


def refusal_language(conversation: Conversation) -> str:
    """The conversation's language (`pearl.strategies.language.language_of`) if a refusal text
    exists for it; else Chinese for a message with Han characters, English otherwise."""
    tag = language_of(conversation)
    if tag in REFUSALS:
        return tag
    return "zh" if HAN_CHAR.search(conversation.last_user_message) else "en"


class GuardParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_tokens: int = Field(default=400, gt=0, description="upper bound on an unflagged reply's length in tokens")


class GuardStep(Step):
    name = "guard"
    description = "refuses whenever the risk assessment flags anything; otherwise answers directly"
    Params = GuardParams
    inputs = {"conversation": Conversation, "assessment": RiskAssessment}
    output = ("response", Answer)

    def __init__(self, params: GuardParams, context):
        super().__init__(params, context)
        self.program = dspy.Predict(AnswerSignature)

    def run(self, state) -> Answer:
        assessment: RiskAssessment = state.get("assessment")  # type: ignore[assignment]
        conversation: Conversation = state.conversation
        if assessment.is_risky:
            why = f"flagged: category {assessment.category}, level {assessment.level}, severity {assessment.severity:.2f}"
            return Answer(response=REFUSALS[refusal_language(conversation)], reasoning=why)
        pred = call_program(self.context.step_id, self.program, conversation=conversation.transcript(),
                            config={"max_tokens": self.params.max_tokens})
        return Answer(response=pred.response.strip())


@hookimpl
def register_steps(register):
    register(GuardStep)
