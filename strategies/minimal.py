"""The `minimal` pipeline's steps: a quick risk screen, then a response that heeds it.

`screen` reads the conversation and writes a `Screening`; `respond` reads both and
writes a `Response`. The full CSA pipeline (`csa`) replaces the screen with a
fine-grained assessment, reaction anticipation and a Pearl-Point decision.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import dspy
from pydantic import BaseModel, ConfigDict, Field

from pearl.host.hookspecs import hookimpl
from pearl.runtime.programs import call_program
from pearl.host.step import Step
from pearl.traces.semconv import KIND_GUARDRAIL
from pearl.types import Conversation

ScreenRisk = Literal["none", "low", "medium", "high"]  # a coarse scale, not the CSA levels R0-R2


class Screening(BaseModel):
    """A coarse first look at the user's request."""

    span_kind: ClassVar[str] = KIND_GUARDRAIL  # traces show the screen as a guardrail step (pearl.traces.attributes)
    topic: str = Field(description="what the request is about, in a few words")
    user_need: str = Field(description="what the user actually needs")
    risk: ScreenRisk = Field(description="how risky a careless answer would be")
    caution: str = Field(description="what the answer must be careful about; empty if nothing")


class Response(BaseModel):
    """A final answer to the user."""

    response: str
    reasoning: str | None = None


class ScreenSignature(dspy.Signature):
    """Read the conversation and briefly assess the user's request before anyone answers it."""

    conversation: str = dspy.InputField(desc="the conversation so far, one 'role: text' line per turn")
    topic: str = dspy.OutputField(desc="what the request is about, in a few words")
    user_need: str = dspy.OutputField(desc="what the user actually needs, in one sentence")
    risk: ScreenRisk = dspy.OutputField(desc="how risky a careless answer would be")
    caution: str = dspy.OutputField(desc="what an answer must be careful about; empty if nothing")


class RespondSignature(dspy.Signature):
    """Answer the user's last message helpfully and honestly, heeding the caution notes."""

    conversation: str = dspy.InputField(desc="the conversation so far, one 'role: text' line per turn")
    user_need: str = dspy.InputField(desc="what the user actually needs")
    caution: str = dspy.InputField(desc="what the answer must be careful about")
    response: str = dspy.OutputField(desc="the reply to the user, in the user's language")


class ScreenStep(Step):
    name = "screen"
    description = "coarse risk screen: topic, need, risk level, caution"
    inputs = {"conversation": Conversation}
    output = ("screening", Screening)

    def __init__(self, params, context):
        super().__init__(params, context)
        self.program = dspy.Predict(ScreenSignature)

    def run(self, state) -> Screening:
        pred = call_program(self.context.step_id, self.program, conversation=state.conversation.transcript())
        return Screening(topic=pred.topic, user_need=pred.user_need, risk=pred.risk, caution=pred.caution)


class RespondParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_tokens: int = Field(default=400, gt=0, description="upper bound on the response's length in tokens")


class RespondStep(Step):
    name = "respond"
    description = "answers the user, conditioned on the screen"
    Params = RespondParams
    inputs = {"conversation": Conversation, "screening": Screening}
    output = ("response", Response)

    def __init__(self, params: RespondParams, context):
        super().__init__(params, context)
        self.program = dspy.Predict(RespondSignature)

    def run(self, state) -> Response:
        screening: Screening = state.get("screening")  # type: ignore[assignment]
        pred = call_program(
            self.context.step_id,
            self.program,
            conversation=state.conversation.transcript(),
            user_need=screening.user_need,
            caution=screening.caution,
            config={"max_tokens": self.params.max_tokens},
        )
        return Response(response=pred.response.strip())


@hookimpl
def register_steps(register):
    register(ScreenStep)
    register(RespondStep)

