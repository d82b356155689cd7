"""The `help-lines` step: make sure a reply to a person who may be at risk names where to get help now.

A small model told to "mention a crisis line" often writes "seek professional help" and
nothing a person in crisis can act on (seen on the 1.5B default through the whole `csa`
chain). This step closes that gap without a model call. A taxonomy category may carry
`help_lines`: one sentence per language tag with concrete contacts (the built-in oyster
taxonomy gives them for `mental_health`). When the assessment (the slot named by
`assessment`: a `RiskAssessment`, or a step output carrying one as its `assessment` field,
such as `csa-lite`'s `plan`) places the
request in such a category and flags it (`RiskAssessment.is_risky`), and the reply (the
slot named by `source`) names no contact yet — no number of three or more digits, spaces or
hyphens allowed between them, which is how every listed line is written — the category's
sentence for the conversation's language is appended as its own paragraph. Otherwise the reply passes unchanged.

Output: slot `reply`, a `pearl.types.Answer` subclass (response, reasoning carried over) with
`added` saying whether a line was appended, so reports can count it.

Parameters: `source` (default `refined`), the slot holding the reply to check; any step
output with a `response` field will do (`reasoning` is carried over when it has one);
`assessment` (default `assessment`), the slot holding the risk assessment.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

from pearl.csa import RiskAssessment
from pearl.csa.taxonomy import get_taxonomy
from pearl.errors import StepError
from pearl.host.hookspecs import hookimpl
from pearl.host.step import Step
from pearl.strategies.guard import refusal_language
from pearl.types import Answer, Conversation

CONTACT = re.compile(r"\d[\d\s-]{2,}\d|\d{3,}")  # 988, 116 123, 400-161-9995


class HelpLinesParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(default="refined",
                        description="the slot whose reply is checked (a step output with `response`)")
    assessment: str = Field(default="assessment",
                            description="the slot holding the RiskAssessment, or an output with an `assessment` field")


class HelpLinesAnswer(Answer):
    """The reply, with the category's help line appended when it named none."""

    added: bool = Field(default=False, description="a help line was appended")


def names_a_contact(text: str) -> bool:
    return bool(CONTACT.search(text))


class HelpLinesStep(Step):
    name = "help-lines"
    description = "appends the risk category's help line (crisis contacts) to a reply that names none; no LM call"
    uses_lm = False
    Params = HelpLinesParams
    output = ("reply", HelpLinesAnswer)

    def __init__(self, params: HelpLinesParams, context):
        super().__init__(params, context)
        self.inputs = {"conversation": Conversation, params.assessment: BaseModel, params.source: BaseModel}

    def run(self, state) -> HelpLinesAnswer:
        assessment = state.get(self.params.assessment)
        if not isinstance(assessment, RiskAssessment):
            assessment = getattr(assessment, "assessment", None)
        if not isinstance(assessment, RiskAssessment):
            raise StepError(self.context.step_id, f"slot {self.params.assessment!r} holds no risk assessment: set "
                                                  "`assessment` to the slot of the risk step (or of a plan that has one)")
        reply = state.get(self.params.source)
        response, reasoning = str(reply.response), getattr(reply, "reasoning", None)
        category = get_taxonomy(self.context.host, assessment.taxonomy).category(assessment.category)
        lines = category.help_lines if category is not None else {}
        line = lines.get(refusal_language(state.conversation)) or lines.get("en")
        if not line or not assessment.is_risky or names_a_contact(response):
            return HelpLinesAnswer(response=response, reasoning=reasoning)
        return HelpLinesAnswer(response=f"{response.rstrip()}\n\n{line}", reasoning=reasoning, added=True)


@hookimpl
def register_steps(register):
    register(HelpLinesStep)
