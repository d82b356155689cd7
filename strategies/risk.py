"""Fine-grained risk assessment (CSA.md section 2): the `risk` step -> slot `assessment`.

`AssessRisk` is a DSPy module of two predictors:

1. `classify` reads the taxonomy's catalogue and the conversation and answers with a
   rationale, a risk group, a category, a level, the interaction type (and attack
   form), weights for the three user types and a severity. Group then category: a small
   model first says whether and where the request is risky ("none" is the catalogue's
   first line), then picks an id from that group. The catalogue shows each id with its
   taxonomy description under its group (`catalogue = "described"`, the default) or
   only the ids, one line per group (`"ids"`): with ids alone the 1.5B model filed 26 of
   60 held-out texts under `cult`, the one id of the first risky line; described, 2
   (tests/bench/risk_step.py, README "Compiled programs"). Both fields are enums built
   from the taxonomy when the step is built (`category_type`, `group_type`), so a
   JSON-schema backend decodes only valid ids. The catalogue comes before the
   conversation, so every risk call of a run, and of every run, shares the same prompt
   prefix byte for byte (a KV-cache hit on backends that reuse prefixes).
2. `adapt` rewrites the chosen category's guideline for this request (stricter when the
   user looks malicious). It is skipped when there is nothing to adapt: category
   "unknown" (no rules) or no risk at all.

Weights are integers 0-10 (a compact, constrained answer for small models) and are
normalised here. Well-formed but degenerate answers are repaired, never fatal, and each
repair is recorded in `RiskAssessment.repairs`: user-type weights all 0 become the
uniform posterior; group "none" with a category other than "unknown" becomes
"unknown"; a category outside the chosen group keeps the category (the finer answer)
and records the mismatch; a severe answer (severity >= 5) with category "unknown"
whose rationale names exactly one category takes that category (a 1.5B model wrote
"a desire to end their life, which is a mental health risk" and then chose "none"); and
(`cue_repair`, on by default) a request whose person's words match a category's help cues
(`RiskCategory.help_cues`: oyster's `mental_health` lists first-person crisis phrases) is
filed under that category whatever the model chose (the 1.5B filed "I want to kill myself"
messages under `hate_and_abuse` and `unknown`).

With `user_types = "read"` the posterior comes from token probabilities instead of the written
weights: two one-token yes/no readings about the person's words (danger, distress;
`pearl.strategies.user_readings`), stored in `RiskAssessment.readings`; the written weights are
not used. This needs a backend that reports token log-probabilities (llamacpp, openai, sglang)
and a model that answers yes or no. When a reading cannot be taken (no log-probabilities; a
base model such as the 270M `tiny`, whose likeliest first tokens are neither word), the
posterior is the written weights', and the assessment's `repairs` says why.

With `severity = "level"` the severity the decision weighs comes from the level the model chose,
not from the number it wrote: a written 0 stays 0 (nothing risky), any other answer becomes the
level's value (`LEVEL_SEVERITY`: R0 0.2, R1 0.6, R2 1.0; `level_severity` sets others), and the
written value is kept in `repairs` when the two differ. The 1.5B default writes 0, 1 or 10 and
little between: 10 for some safe look-alikes, 1 for some harmful requests. With the declared
forecasts, decisions the item's label calls for went from 35 to 37 of 40 dev items and from 51 to
52 of 60 test items (tests/bench/QUALITY.md); `csa.toml` keeps the written severity.
"""

from __future__ import annotations

import re
from typing import Literal

import dspy
from pydantic import BaseModel, ConfigDict, Field, field_validator

from pearl.csa import LEVELS, UNKNOWN_CATEGORY, RiskAssessment, RiskLevel, Taxonomy, UserPosterior, risky
from pearl.host.hookspecs import hookimpl
from pearl.csa.taxonomy import category_choices, get_taxonomy
from pearl.errors import BackendError
from pearl.runtime.programs import call_program
from pearl.host.step import Step
from pearl.strategies.fields import Score, check_choice, check_score, choice, text, text_list
from pearl.strategies.user_readings import posterior_from_readings, read_user
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


NO_GROUP = "none"


def group_type(taxonomy: Taxonomy):
    """A `str` whose JSON schema is the enum "none" plus the taxonomy's group ids (those with categories)."""
    return choice("Group", [NO_GROUP, *catalogue_groups(taxonomy)])


def catalogue_groups(taxonomy: Taxonomy) -> list[str]:
    return [g.id for g in taxonomy.groups if any(c.group == g.id for c in taxonomy.categories)]


class ClassifySignature(dspy.Signature):
    """Assess the risk in the user's last message before anyone answers it.

    Most requests are ordinary: then the group is "none" and the category "unknown".
    Otherwise choose the group whose line fits, then a category id from that line.
    Despair, wishing to die or disappear, or self-harm is a mental_health risk.
    Levels: R0 ordinary need on a sensitive topic; R1 grey, misguided or vulnerable;
    R2 attack or jailbreak attempt. Interaction: declarative states something,
    inquiry asks for information or an opinion, directive gives an instruction.
    Weigh who the user probably is, 0-10 each, at least one above 0: benign (ordinary
    need), sensitive (not hostile but vulnerable: distress, false belief), malicious
    (wants harm). Severity 0-10: how much harm a careless answer could do.
    """

    categories: str = dspy.InputField(desc="the groups and their category ids")
    messages: str = dspy.InputField(desc="what was said, one 'role: text' line per turn; assess the last user line")
    rationale: Short = dspy.OutputField(desc="one sentence: what is asked and whether any risk lies in it")
    group: str = dspy.OutputField(desc="'none', or the group of the risk")
    category: str = dspy.OutputField(desc="'unknown', or a category id from the group's line")
    level: choice("Level", LEVELS) = dspy.OutputField()
    interaction: choice("Interaction", INTERACTIONS) = dspy.OutputField()
    attack_form: choice("AttackForm", ATTACK_FORMS) = dspy.OutputField(desc="how a directive attacks")
    benign: Score = dspy.OutputField(desc="0-10: likely an ordinary person with a legitimate need")
    sensitive: Score = dspy.OutputField(desc="0-10: likely vulnerable (despair, crisis, false belief)")
    malicious: Score = dspy.OutputField(desc="0-10: likely wants to cause harm")
    severity: Score = dspy.OutputField(desc="0-10: harm a careless answer could do")


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

    def __init__(self, taxonomy: Taxonomy, *, adapt_guideline: bool = True, max_rules: int = 3,
                 catalogue: Catalogue = "described", cue_repair: bool = True,
                 user_types: UserTypes = "written", severity: SeveritySource = "written",
                 level_severity: dict[str, float] | None = None):
        super().__init__()
        self.user_types = user_types
        self.severity = severity
        self.level_severity = dict(LEVEL_SEVERITY if level_severity is None else level_severity)
        self.taxonomy = taxonomy
        self.cue_repair = cue_repair
        self.adapt_guideline = adapt_guideline
        self.max_rules = max_rules
        self._catalogue = compact_catalogue(taxonomy, catalogue)
        self._choices = category_choices(taxonomy)
        self._groups = [NO_GROUP, *catalogue_groups(taxonomy)]
        self.classify = dspy.Predict(ClassifySignature
                                     .with_updated_fields("category", type_=category_type(taxonomy))
                                     .with_updated_fields("group", type_=group_type(taxonomy)))
        rules = text_list("Rules", max_rules, Rule)
        self.adapt = dspy.Predict(AdaptSignature.with_updated_fields(
            "guideline", type_=rules, desc=f"at most {max_rules} short rules for this request"))

    def forward(self, conversation: str, said: str | None = None) -> dspy.Prediction:
        """`said`: the person's own words, which the help cues are matched against (the whole
        conversation when not given)."""
        c = self.classify(categories=self._catalogue, messages=conversation)
        # Re-checked here for backends that do not constrain decoding.
        check_choice("group", c.group, self._groups)
        check_choice("category", c.category, self._choices)
        check_choice("level", c.level, LEVELS)
        check_choice("interaction", c.interaction, INTERACTIONS)
        check_choice("attack_form", c.attack_form, ATTACK_FORMS)
        for name in ("benign", "sensitive", "malicious", "severity"):
            check_score(name, c[name])
        repairs: list[str] = []
        readings: dict[str, float] = {}
        if self.user_types == "read":
            try:
                readings = read_user(dspy.settings.lm, conversation if said is None else said)
            except BackendError as exc:  # no log-probabilities, or a model that will not say yes or no
                repairs.append(f"user types could not be read ({exc}); the posterior is the written weights'")
        if readings:
            posterior = posterior_from_readings(readings)
        else:
            posterior, repaired = posterior_from_weights(c.benign, c.sensitive, c.malicious)
            repairs += [repaired] if repaired else []
        category_id, repaired = reconcile_category(self.taxonomy, c.group, c.category)
        repairs += [repaired] if repaired else []
        category_id, repaired = category_from_rationale(self.taxonomy, category_id, int(c.severity), c.rationale or "")
        repairs += [repaired] if repaired else []
        if self.cue_repair:
            category_id, repaired = category_from_cues(self.taxonomy, category_id,
                                                       conversation if said is None else said)
            repairs += [repaired] if repaired else []
        category = self.taxonomy.category(category_id)
        attack_form = None if c.attack_form == "none" else c.attack_form
        severity = int(c.severity) / 10
        if self.severity == "level":
            severity, noted = severity_from_level(severity, c.level, self.level_severity)
            repairs += [noted] if noted else []
        guideline: list[str] = []
        needs_rules = category is not None and category.guideline and risky(category_id, c.level, severity)
        if self.adapt_guideline and needs_rules:
            rules = "\n".join(f"{i}. {r}" for i, r in enumerate(category.guideline, 1))
            a = self.adapt(conversation=conversation, category=category.name, user=describe_user(posterior, c.level),
                           rules=rules)
            guideline = [r.strip() for r in a.guideline if r and r.strip()][: self.max_rules]
        elif category is not None and not self.adapt_guideline:
            guideline = list(category.guideline)
        assessment = RiskAssessment(
            taxonomy=self.taxonomy.name,
            category=category_id,
            group=category.group if category is not None else None,
            level=c.level,
            interaction=c.interaction,
            attack_form=attack_form,
            posterior=posterior,
            severity=severity,
            guideline=guideline,
            rationale=(c.rationale or "").strip(),
            repairs=repairs,
            readings=readings,
        )
        return dspy.Prediction(assessment=assessment)


CATALOGUES = ("ids", "described")
Catalogue = Literal["ids", "described"]
UserTypes = Literal["written", "read"]
SeveritySource = Literal["written", "level"]
#: `severity = "level"`: the severity of each level (R0 benign need, R1 grey, R2 attack).
LEVEL_SEVERITY: dict[str, float] = {"R0": 0.2, "R1": 0.6, "R2": 1.0}


def severity_from_level(written: float, level: str, by_level: dict[str, float]) -> tuple[float, str | None]:
    """`(severity, note)`: 0 when the model wrote 0, else the level's severity in `by_level`;
    `note` records the written value when the two differ."""
    severity = 0.0 if written == 0 else by_level[level]
    if severity == written:
        return severity, None
    return severity, f"severity {written:g} written; {severity:g} from level {level} (severity = 'level')"


def compact_catalogue(taxonomy: Taxonomy, style: Catalogue = "ids") -> str:
    """The "none" line first, then the groups. `ids`: one line per group, 'group_id: id, id, ...'
    (few tokens). `described`: the group's line, then one indented line per category with its
    description ('  id: what it covers'), so the model can tell a category by more than its id."""
    lines = [f"{NO_GROUP}: {UNKNOWN_CATEGORY} (an ordinary request, nothing risky)"]
    for group in catalogue_groups(taxonomy):
        categories = [c for c in taxonomy.categories if c.group == group]
        if style == "described":
            lines.append(f"{group}:")
            lines += [f"  {c.id}: {c.description or c.name}" for c in categories]
        else:
            lines.append(f"{group}: {', '.join(c.id for c in categories)}")
    return "\n".join(lines)


def posterior_from_weights(benign: int, sensitive: int, malicious: int) -> tuple[UserPosterior, str | None]:
    """Normalise three 0-10 weights: `(posterior, repair)`. All zero (no information) is
    repaired to the uniform posterior, and `repair` says so; negative weights are a ValueError."""
    if min(benign, sensitive, malicious) < 0:
        raise ValueError(f"user-type weights {benign}/{sensitive}/{malicious} are negative")
    if benign + sensitive + malicious == 0:
        return UserPosterior.normalised(1, 1, 1), "user-type weights were all 0: uniform posterior"
    return UserPosterior.normalised(benign / 10, sensitive / 10, malicious / 10), None


def reconcile_category(taxonomy: Taxonomy, group: str, category_id: str) -> tuple[str, str | None]:
    """The category to keep given the group the model chose first: `(category, repair)`."""
    if group == NO_GROUP:
        if category_id == UNKNOWN_CATEGORY:
            return category_id, None
        return UNKNOWN_CATEGORY, f"group 'none' with category '{category_id}': category 'unknown'"
    category = taxonomy.category(category_id)
    if category is None:
        return category_id, f"group '{group}' without a category: category 'unknown'"
    if category.group != group:
        return category_id, f"category '{category_id}' is in group '{category.group}', not '{group}': category kept"
    return category_id, None


SEVERE = 5  # severity (0-10) from which an "unknown" category contradicts the answer's own rationale


def category_from_rationale(taxonomy: Taxonomy, category_id: str, severity: int, rationale: str) -> tuple[str, str | None]:
    """`(category, repair)`: an "unknown" category of a severe answer (severity >= SEVERE) whose
    rationale names exactly one category (its id with spaces, or its name) becomes that category."""
    if category_id != UNKNOWN_CATEGORY or severity < SEVERE:
        return category_id, None
    words = lambda t: f" {' '.join(re.sub(r'[^a-z0-9]+', ' ', t.lower()).split())} "  # noqa: E731
    text = words(rationale)
    named = [c.id for c in taxonomy.categories if words(c.id) in text or words(c.name) in text]
    if len(named) != 1:
        return category_id, None
    return named[0], f"category 'unknown' at severity {severity} while the rationale names '{named[0]}': '{named[0]}'"


def category_from_cues(taxonomy: Taxonomy, category_id: str, said: str) -> tuple[str, str | None]:
    """`(category, repair)`: when the person's words match a help cue (`RiskCategory.help_cues`,
    first-person phrases such as "kill myself") of a category other than the one chosen, that
    category (the first such in taxonomy order); the chosen one stays when its own cues match."""
    cued = [c for c in taxonomy.categories if c.cued_by(said)]
    if not cued or any(c.id == category_id for c in cued):
        return category_id, None
    return cued[0].id, f"category '{category_id}' while the person's words match a help cue of '{cued[0].id}': " \
                       f"'{cued[0].id}'"


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
    catalogue: Catalogue = Field(default="described", description="how the categories are shown: 'described' (each "
                                                                  "id with its description) or 'ids' (one line per group)")
    cue_repair: bool = Field(default=True, description="file the request under a category whose help cues the "
                                                       "person's words match (e.g. 'kill myself': mental_health)")
    user_types: UserTypes = Field(default="written", description="where the user-type posterior comes from: "
                                  "'written' (the model's 0-10 weights) or 'read' (P(yes) to a danger and a distress "
                                  "question, two one-token calls; needs token log-probabilities)")
    severity: SeveritySource = Field(default="written", description="where the severity comes from: 'written' (the "
                                     "model's 0-10 answer) or 'level' (the chosen level's value from "
                                     "level_severity; a written 0 stays 0)")
    level_severity: dict[RiskLevel, float] = Field(default_factory=lambda: dict(LEVEL_SEVERITY),
                                                   description="with severity = 'level': each level's severity (0-1)")

    @field_validator("level_severity")
    @classmethod
    def _every_level(cls, v: dict[str, float]) -> dict[str, float]:
        missing = [level for level in LEVELS if level not in v]
        if missing:
            raise ValueError(f"level_severity lacks {', '.join(missing)}: give a severity (0-1) for each of "
                             f"{', '.join(LEVELS)}")
        bad = [f"{k}={x}" for k, x in v.items() if not 0 <= x <= 1]
        if bad:
            raise ValueError(f"level_severity values must lie in 0-1, not {', '.join(bad)}")
        return v


class RiskStep(Step):
    name = "risk"
    description = "fine-grained risk assessment: category, level, intent, user-type posterior, adapted guideline"
    Params = RiskParams
    inputs = {"conversation": Conversation}
    output = ("assessment", RiskAssessment)

    def __init__(self, params: RiskParams, context):
        super().__init__(params, context)
        self.taxonomy = get_taxonomy(context.host, params.taxonomy)
        self.program = AssessRisk(self.taxonomy, adapt_guideline=params.adapt_guideline, max_rules=params.max_rules,
                                  catalogue=params.catalogue, cue_repair=params.cue_repair,
                                  user_types=params.user_types, severity=params.severity,
                                  level_severity=params.level_severity)

    def run(self, state) -> RiskAssessment:
        pred = call_program(self.context.step_id, self.program, conversation=state.conversation.transcript(),
                            said=state.conversation.user_words)
        return pred.assessment


@hookimpl
def register_steps(register):
    register(RiskStep)
