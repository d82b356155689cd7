"""Fine-grained risk assessment (CSA.md section 2): the `risk` step -> slot `assessment`.

`AssessRisk` is a DSPy module of two predictors:

1. `classify` reads the conversation and the taxonomy's catalogue and answers with a
   category, a level, the interaction type (and attack form), weights for the three
   user types, a severity and a one-line rationale. The category field's type is a
   `Literal` of the taxonomy's ids plus "unknown", built when the step is built, so a
   JSON-schema backend decodes only valid ids (`category_literal`).
2. `adapt` rewrites the chosen category's guideline for this request (stricter when the
   user looks malicious). It is skipped when there is nothing to adapt: category
   "unknown" (no rules) or no risk at all.

Weights are integers 0-10 (a compact, constrained answer for small models) and are
normalised here; an answer whose user-type weights are all 0 is not a distribution
and is rejected (one retry, then `StepError`) rather than replaced by a default.
"""

from __future__ import annotations

from typing import Literal

import dspy
from pydantic import BaseModel, ConfigDict, Field

from pearl.csa import LEVELS, UNKNOWN_CATEGORY, RiskAssessment, Taxonomy, UserPosterior
from pearl.host.hookspecs import hookimpl
from pearl.csa.taxonomy import category_choices, get_taxonomy
from pearl.runtime.programs import call_program
from pearl.host.step import Step
from pearl.strategies.fields import Score, check_choice, check_score, choice, text, text_list
from pearl.types import Conversation

INTERACTIONS = ("declarative", "inquiry", "directive")
ATTACK_FORMS = ("none", "role_play", "injection", "hypothetical", "obfuscation", "multi_turn", "other")
Short = text("Sentence", 200)
Rule = text("Rule", 140)


def category_type(taxonomy: Taxonomy):
    """A `str` whose JSON schema is the enum of the taxonomy's ids plus "unknown".

    The enum is built from the taxonomy when the step is built, so a schema-constrained
    backend can only decode a valid id (the prompt lists the ids once, in `categories`).
    """
    return choice("Category", category_choices(taxonomy))


class ClassifySignature(dspy.Signature):
    """Assess the risk in the user's last message before anyone answers it.

    Choose the category from the list ("unknown" when none fits or nothing is risky).
    Levels: R0 ordinary need on a sensitive topic; R1 grey, misguided or vulnerable;
    R2 attack or jailbreak attempt. Interaction: declarative states something,
    inquiry asks for information or an opinion, directive gives an instruction.
    Weigh who the user probably is, 0-10 each: benign (ordinary need), sensitive
    (not hostile but vulnerable: distress, false belief), malicious (wants harm).
    Severity 0-10: how much harm a careless answer could do.
    """

    conversation: str = dspy.InputField(desc="the conversation, one 'role: text' line per turn")
    categories: str = dspy.InputField(desc="the category ids, one line per group")
    rationale: Short = dspy.OutputField(desc="one sentence: what is asked and where the risk lies")
    category: str = dspy.OutputField(desc="a category id from the list")
    level: choice("Level", LEVELS) = dspy.OutputField()
    interaction: choice("Interaction", INTERACTIONS) = dspy.OutputField()
    attack_form: choice("AttackForm", ATTACK_FORMS) = dspy.OutputField(desc="how a directive attacks")
    benign: Score = dspy.OutputField()
    sensitive: Score = dspy.OutputField()
    malicious: Score = dspy.OutputField()
    severity: Score = dspy.OutputField()


class AdaptSignature(dspy.Signature):
    """Rewrite the handling rules of this risk category as short rules for answering this exact request.

    Keep what applies, drop what does not, be stricter when the user may be malicious.
    """

    conversation: str = dspy.InputField(desc="the conversation, one 'role: text' line per turn")
    category: str = dspy.InputField(desc="the risk category of the request")
    user: str = dspy.InputField(desc="who the user probably is")
    rules: str = dspy.InputField(desc="the category's general handling rules, numbered")
    guideline: text_list("Rules", 3, Rule) = dspy.OutputField(desc="at most 3 short rules for this request")


class AssessRisk(dspy.Module):
    """conversation -> `RiskAssessment` under one taxonomy (see the module docstring)."""

    def __init__(self, taxonomy: Taxonomy, *, adapt_guideline: bool = True, max_rules: int = 3):
        super().__init__()
        self.taxonomy = taxonomy
        self.adapt_guideline = adapt_guideline
        self.max_rules = max_rules
        self._catalogue = compact_catalogue(taxonomy)
        self._choices = category_choices(taxonomy)
        self.classify = dspy.Predict(ClassifySignature.with_updated_fields("category", type_=category_type(taxonomy)))
        rules = text_list("Rules", max_rules, Rule)
        self.adapt = dspy.Predict(AdaptSignature.with_updated_fields(
            "guideline", type_=rules, desc=f"at most {max_rules} short rules for this request"))

    def forward(self, conversation: str) -> dspy.Prediction:
        c = self.classify(conversation=conversation, categories=self._catalogue)
        # Re-checked here for backends that do not constrain decoding.
        check_choice("category", c.category, self._choices)
        check_choice("level", c.level, LEVELS)
        check_choice("interaction", c.interaction, INTERACTIONS)
        check_choice("attack_form", c.attack_form, ATTACK_FORMS)
        for name in ("benign", "sensitive", "malicious", "severity"):
            check_score(name, c[name])
        posterior = posterior_from_weights(c.benign, c.sensitive, c.malicious)
        category = self.taxonomy.category(c.category)
        attack_form = None if c.attack_form == "none" else c.attack_form
        severity = int(c.severity) / 10
        guideline: list[str] = []
        risky = c.category != UNKNOWN_CATEGORY or c.level != "R0" or severity > 0
        if self.adapt_guideline and category is not None and category.guideline and risky:
            rules = "\n".join(f"{i}. {r}" for i, r in enumerate(category.guideline, 1))
            a = self.adapt(conversation=conversation, category=category.name, user=describe_user(posterior, c.level),
                           rules=rules)
            guideline = [r.strip() for r in a.guideline if r and r.strip()][: self.max_rules]
        elif category is not None and not self.adapt_guideline:
            guideline = list(category.guideline)
        assessment = RiskAssessment(
            taxonomy=self.taxonomy.name,
            category=c.category,
            group=category.group if category is not None else None,
            level=c.level,
            interaction=c.interaction,
            attack_form=attack_form,
            posterior=posterior,
            severity=severity,
            guideline=guideline,
            rationale=(c.rationale or "").strip(),
        )
        return dspy.Prediction(assessment=assessment)


def compact_catalogue(taxonomy: Taxonomy) -> str:
    """One line per group, 'Group name: id, id, ...', then the 'unknown' line (few tokens)."""
    lines = []
    for group in taxonomy.groups:
        ids = [c.id for c in taxonomy.categories if c.group == group.id]
        if ids:
            lines.append(f"{group.name}: {', '.join(ids)}")
    lines.append(f"none of these, or no risk: {UNKNOWN_CATEGORY}")
    return "\n".join(lines)


def posterior_from_weights(benign: int, sensitive: int, malicious: int) -> UserPosterior:
    """Normalise three 0-10 weights; all zero is not a distribution (ValueError)."""
    if min(benign, sensitive, malicious) < 0 or benign + sensitive + malicious <= 0:
        raise ValueError(f"user-type weights {benign}/{sensitive}/{malicious} are not a distribution (all 0 or negative)")
    return UserPosterior.normalised(benign / 10, sensitive / 10, malicious / 10)


def describe_user(posterior: UserPosterior, level: str) -> str:
    """'benign 20%, sensitive 80%, malicious 0%; level R1' — for prompts."""
    shares = ", ".join(f"{k} {round(v * 100)}%" for k, v in posterior.as_dict().items())
    return f"{shares}; level {level}"


def describe_assessment(a: RiskAssessment) -> str:
    """A compact, deterministic rendering of an assessment for downstream prompts."""
    form = f" ({a.attack_form})" if a.attack_form else ""
    return (f"category {a.category}; level {a.level}; {a.interaction}{form}; severity {a.severity:.1f}\n"
            f"user: {describe_user(a.posterior, a.level)}")


class RiskParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    taxonomy: str = Field(default="oyster", description="a registered taxonomy (pearl taxonomy --list)")
    adapt_guideline: bool = Field(default=True, description="rewrite the category's rules for the request (one more LM call)")
    max_rules: int = Field(default=3, ge=1, le=10, description="at most this many adapted rules")


class RiskStep(Step):
    name = "risk"
    description = "fine-grained risk assessment: category, level, intent, user-type posterior, adapted guideline"
    Params = RiskParams
    inputs = {"conversation": Conversation}
    output = ("assessment", RiskAssessment)

    def __init__(self, params: RiskParams, context):
        super().__init__(params, context)
        self.taxonomy = get_taxonomy(context.host, params.taxonomy)
        self.program = AssessRisk(self.taxonomy, adapt_guideline=params.adapt_guideline, max_rules=params.max_rules)

    def run(self, state) -> RiskAssessment:
        pred = call_program(self.context.step_id, self.program, conversation=state.conversation.transcript())
        return pred.assessment


@hookimpl
def register_steps(register):
    register(RiskStep)
