"""The `risk` step as a judge of a text: is it risky, and in which category?

`risk-flag` runs the risk step's classifier (`pearl.strategies.risk.AssessRisk`, oyster
taxonomy, no guideline rewriting) on the text and returns a `RiskFlagJudgement`: `risky`
(the assessment's `is_risky`), the oyster `category`, and `moderation`, the OpenAI
moderation codes that category maps to (`OYSTER_TO_MODERATION`). `pearl eval-judge
risk-flag --labels openai-moderation:PATH` measures the flag against the human labels and,
on the texts both call risky, how often the mapped codes include a human-flagged one.

The mapping (moderation code: oyster categories):

    S   sexual               (no oyster category: oyster has no sexual-content category)
    S3  sexual/minors        (none, as S)
    H   hate                 race_ethnicity_religion_regional_discrimination,
                             gender_occupational_age_other_demographic_discrimination,
                             vulnerable_groups, special_groups, hate_and_abuse
    H2  hate/threatening     hate_and_abuse, violent_terror
    HR  harassment           hate_and_abuse, violation_of_personal_rights
    SH  self-harm            mental_health, bodily_harm
    V   violence             bodily_harm, violent_terror, hazardous_materials
    V2  violence/graphic     harmful_scenes, bodily_harm

`risk-flag-likelihood` asks the judge LM the two yes/no questions of
`pearl.strategies.user_readings` (danger, distress) and reads P(yes) from its token
probabilities: the text is risky when either reading reaches its threshold (chosen on dev
rows). It names no category. Two one-token calls per text.
"""

from __future__ import annotations

import dspy
from pydantic import Field

from pearl.csa.taxonomy import get_taxonomy
from pearl.host.hookspecs import hookimpl
from pearl.host.judge import Judge, Judgement
from pearl.host.manager import get_host
from pearl.runtime.programs import call_program
from pearl.strategies.risk import AssessRisk
from pearl.strategies.user_readings import flags_risk, read_user
from pearl.types import Conversation

MODERATION_TO_OYSTER: dict[str, tuple[str, ...]] = {
    "S": (),
    "S3": (),
    "H": ("race_ethnicity_religion_regional_discrimination", "gender_occupational_age_other_demographic_discrimination",
          "vulnerable_groups", "special_groups", "hate_and_abuse"),
    "H2": ("hate_and_abuse", "violent_terror"),
    "HR": ("hate_and_abuse", "violation_of_personal_rights"),
    "SH": ("mental_health", "bodily_harm"),
    "V": ("bodily_harm", "violent_terror", "hazardous_materials"),
    "V2": ("harmful_scenes", "bodily_harm"),
}
OYSTER_TO_MODERATION: dict[str, tuple[str, ...]] = {}
for _code, _cats in MODERATION_TO_OYSTER.items():
    for _cat in _cats:
        OYSTER_TO_MODERATION[_cat] = OYSTER_TO_MODERATION.get(_cat, ()) + (_code,)


class RiskFlagJudgement(Judgement):
    """Is the text risky; its oyster category and the moderation codes that category maps to."""

    risky: bool
    category: str = "unknown"
    moderation: list[str] = Field(default_factory=list, description="OpenAI moderation codes of the category")


class RiskFlagJudge(Judge):
    name = "risk-flag"
    description = "the risk step on a text: risky or not, oyster category, mapped moderation codes"
    uses_lm = True

    def __init__(self):
        self.program = AssessRisk(get_taxonomy(get_host(), "oyster"), adapt_guideline=False)

    def judge(self, conversation: Conversation, response: str, *, guideline=None, category=None) -> RiskFlagJudgement:
        text = Conversation.from_text(response).transcript()
        assessment = call_program("judge:" + self.name, self.program, conversation=text).assessment
        risky = assessment.is_risky
        return RiskFlagJudgement(judge=self.name, score=assessment.severity, label="risky" if risky else "not risky",
                                 risky=risky, category=assessment.category,
                                 moderation=list(OYSTER_TO_MODERATION.get(assessment.category, ())),
                                 model=str(getattr(dspy.settings.lm, "model", "") or ""))


class RiskReadingJudgement(Judgement):
    """Is the text risky, read from P(yes) to yes/no questions (no category)."""

    risky: bool
    readings: dict[str, float] = Field(default_factory=dict, description="P(yes) per question")


class LikelihoodRiskFlagJudge(Judge):
    name = "risk-flag-likelihood"
    description = "risky or not, read from P(yes) to a danger and a distress question (two one-token calls)"
    uses_lm = True

    def judge(self, conversation: Conversation, response: str, *, guideline=None, category=None) -> RiskReadingJudgement:
        lm = dspy.settings.lm
        readings = read_user(lm, response)  # the text itself is judged
        risky = flags_risk(readings)
        return RiskReadingJudgement(judge=self.name, score=max(readings.values()),
                                    label="risky" if risky else "not risky", risky=risky, readings=readings,
                                    model=str(getattr(lm, "model", "") or ""))


@hookimpl
def register_judges(register):
    register(RiskFlagJudge)
    register(LikelihoodRiskFlagJudge)
