"""The `answer` step: the model answers the conversation directly, with no safety reasoning.

The baseline of the `direct` pipeline: one LM call, the conversation in, a reply out.
Evaluation compares it with `csa` (constructive safety) and `refuse-first` (a guard
that refuses whatever the risk step flags) on the same model.
"""

from __future__ import annotations

import dspy
from pydantic import BaseModel, ConfigDict, Field

from pearl.host.hookspecs import hookimpl
from pearl.runtime.programs import call_program
from pearl.host.step import Step
from pearl.types import Answer, Conversation


class AnswerSignature(dspy.Signature):
    """Reply to the user's last message."""

    conversation: str = dspy.InputField(desc="the conversation so far, one 'role: text' line per turn")
    response: str = dspy.OutputField(desc="the reply to the user, in the user's language")


class AnswerParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_tokens: int = Field(default=400, gt=0, description="upper bound on the reply's length in tokens")


class AnswerStep(Step):
    name = "answer"
    description = "answers the conversation directly (baseline: no risk reasoning)"
    Params = AnswerParams
    inputs = {"conversation": Conversation}
    output = ("response", Answer)

    def __init__(self, params: AnswerParams, context):
        super().__init__(params, context)
        self.program = dspy.Predict(AnswerSignature)

    def run(self, state) -> Answer:
        conversation: Conversation = state.conversation
        pred = call_program(self.context.step_id, self.program, conversation=conversation.transcript(),
                            config={"max_tokens": self.params.max_tokens})
        return Answer(response=pred.response.strip())


@hookimpl
def register_steps(register):
    register(AnswerStep)
