"""The `help-lines` step: make sure a reply to a person who may be at risk names where to get help now.

A small model told to "mention a crisis line" often writes "seek professional help" and
nothing a person in crisis can act on, or a number it made up (both seen on the 1.5B
default). This step closes that gap without a model call. A taxonomy category may carry
`help_lines`: one sentence per language tag with concrete contacts (the built-in oyster
taxonomy gives them for `mental_health`), and `help_cues`: regular expressions over the
person's last message that call for those lines whatever the risk step decided (a small
model's classifier filed "I'm a teenager and I'm thinking about suicide" as `unknown`).

The lines apply when the assessment (the slot named by `assessment`: a `RiskAssessment`,
or a step output carrying one as its `assessment` field, such as `csa-lite`'s `plan`)
places the request in a category with lines and flags it (`RiskAssessment.is_risky`), or
when a category's cue matches the person's last message (that category's lines; the
assessed category first). They are appended, as their own paragraph in the conversation's
language, unless the reply (the slot named by `source`) already names one of the
contacts they list: a number of three or more digits (spaces or hyphens between them
allowed) equal, digit for digit, to one written in the category's lines in any language.
A number the model wrote that is not among them does not count. Otherwise the reply
passes unchanged.

Output: slot `reply`, a `pearl.types.Answer` subclass (response, reasoning carried over) with
`added` saying whether a line was appended and `category` the category whose lines apply
(None when none do), so reports can count them.

Parameters: `source` (default `refined`), the slot holding the reply to check; any step
output with a `response` field will do (`reasoning` is carried over when it has one);
`assessment` (default `assessment`), the slot holding the risk assessment.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

from pearl.csa import RiskAssessment, RiskCategory, Taxonomy
from pearl.csa.taxonomy import get_taxonomy
from pearl.errors import StepError
from pearl.host.hookspecs import hookimpl
from pearl.host.step import Step
from pearl.strategies.guard import refusal_language
from pearl.types import Answer, Conversation

CONTACT = re.compile(r"\d[\d -]{2,}\d|\d{3,}")  # 988, 116 123, 400-161-9995


class HelpLinesParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(default="refined",
                        description="the slot whose reply is checked (a step output with `response`)")
    assessment: str = Field(default="assessment",
                            description="the slot holding the RiskAssessment, or an output with an `assessment` field")


class HelpLinesAnswer(Answer):
    """The reply, with the category's help line appended when it named none."""

    added: bool = Field(default=False, description="a help line was appended")
    category: str | None = Field(default=None, description="the category whose help lines apply, if any")


def contacts(text: str) -> set[str]:
    """The contact numbers written in `text`, as digit strings ("116 123" -> "116123")."""
    return {re.sub(r"\D", "", m) for m in CONTACT.findall(text)}


def names_a_contact(text: str, known: set[str] | None = None) -> bool:
    """`text` names a contact: any number of three or more digits, or, given `known`, one of those."""
    found = contacts(text)
    return bool(found & known) if known is not None else bool(found)


def lines_for(taxonomy: Taxonomy, assessment: RiskAssessment, message: str) -> RiskCategory | None:
    """The category whose help lines apply (see the module docstring), or None."""
    assessed = taxonomy.category(assessment.category)
    if assessed is not None and assessed.help_lines and assessment.is_risky:
        return assessed
    cued = [c for c in taxonomy.categories if c.help_lines and c.cued_by(message)]
    return next((c for c in cued if assessed is not None and c.id == assessed.id), cued[0] if cued else None)


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
        taxonomy = get_taxonomy(self.context.host, assessment.taxonomy)
        category = lines_for(taxonomy, assessment, state.conversation.last_user_message)
        if category is None:
            return HelpLinesAnswer(response=response, reasoning=reasoning)
        line = category.help_lines.get(refusal_language(state.conversation)) or category.help_lines.get("en")
        known = set().union(*(contacts(text) for text in category.help_lines.values()))
        if not line or names_a_contact(response, known):
            return HelpLinesAnswer(response=response, reasoning=reasoning, category=category.id)
        return HelpLinesAnswer(response=f"{response.rstrip()}\n\n{line}", reasoning=reasoning, added=True,
                               category=category.id)


@hookimpl
def register_steps(register):
    register(HelpLinesStep)
