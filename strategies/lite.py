"""The `csa-lite` serving pipeline's steps: the Pearl Point in two LM calls.

`lite-plan` -> slot `plan` (`LitePlan`): ONE structured call answers, for the
conversation, what the `risk` step and the `anticipate` step answer in `csa` (category
from the taxonomy's ids, level, interaction, attack form, user-type weights, severity,
and for every strategy of a short list and every user type a reaction forecast and the
risk 0-10). `forecast` sets the forecast's grain:

- `point` (default): the user's most likely reaction, one enum value per pair (about 12
  tokens a pair): the forecast is that reaction with probability 1, its retention the
  reaction's `RETENTION_VALUE`;
- `weights`: the five reaction weights 1-10, as `anticipate`'s `table` mode (about 45
  tokens a pair), normalised by `pearl.strategies.anticipate.to_forecast`.

The strategy is then chosen in Python by
`pearl.strategies.decide.solve`: the same utility, the same safety boundary and the same
α, β, γ, τ, ε parameters as the `decide` step. The guideline is the category's own
rules (the first `max_rules`), not rewritten for the request (that is one more call in `csa`).

`lite-respond` -> slot `response` (`pearl.strategies.minimal.Response`): ONE call that
writes the reply following the chosen strategy, its constraints and the guideline, in the
person's language (named to the model, `pearl.strategies.language`). A reply in another
script, in the person's own voice (`pearl.strategies.recombine.speaks_as_the_person`),
saying one sentence over and over (`pearl.strategies.recombine.loops`), or carrying the
prompt's private plan (`pearl.strategies.recombine.leaks`: framework terms, the user-type
shares, 8-word runs of the strategy or rules) is written once more, sampled, and the retry
is kept only if it is free of all four; sentences that still leak are dropped when anything
is left, and a reply that still loops says each sentence once.

What `csa-lite` leaves out compared with `csa`: the adapted guideline, the reasoning
chain and its recombination, and Lingo-BP refinement (no judge calls); the forecasts
cover `strategies` only (five by default), decoded in one stream. A `help-lines` step
after `lite-respond` (in `pipelines/csa-lite.toml`) adds crisis lines as in `csa`.
"""

from __future__ import annotations

import dspy
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from pearl.csa import LEVELS, REACTIONS, USER_TYPES, Decision, ReactionForecast, ReactionTable, RiskAssessment
from pearl.host.hookspecs import hookimpl
from pearl.host.step import Step
from pearl.csa.taxonomy import category_choices, get_taxonomy
from pearl.runtime.programs import call_program, sampled
from pearl.strategies.anticipate import (RETENTION_VALUE, TOKENS_PER_PAIR, USER_TYPE_TEXT, describe_strategy,
                                         table_model, to_forecast)
from pearl.strategies.decide import DecideParams, solve
from pearl.strategies.fields import Score, check_choice, check_score, choice, text
from pearl.strategies.language import language_name, language_of, written_in
from pearl.strategies.library import select_strategies
from pearl.strategies.minimal import Response
from pearl.strategies.recombine import finished, leaks, loops, scrub, speaks_as_the_person, unrepeated
from pearl.strategies.risk import (ATTACK_FORMS, INTERACTIONS, NO_GROUP, Catalogue, catalogue_groups,
                                   category_from_cues, category_type, compact_catalogue, describe_user, group_type,
                                   posterior_from_weights, reconcile_category)
from pearl.types import Conversation

#: The short list `lite-plan` forecasts by default: one strategy per broad kind of answer, and the
#: fallback of each user type `decide` may judge (`safe_completion` for a benign one).
DEFAULT_LITE_STRATEGIES: tuple[str, ...] = (
    "full_help", "help_with_safety_context", "safe_completion", "supportive_response", "refuse_with_alternatives",
)

#: Completion budget for the assessment fields (rationale, enums, weights).
ASSESSMENT_TOKENS = 160

#: Completion budget per (strategy, user type) pair of a `point` forecast.
TOKENS_PER_POINT = 32

Forecast = Literal["point", "weights"]


class PointScores(BaseModel):
    """A point forecast for one pair: the most likely reaction and the risk 0-10."""

    reaction: choice("Reaction", REACTIONS)
    risk: Score


class UserTypePoints(BaseModel):
    benign: PointScores
    sensitive: PointScores
    malicious: PointScores


def point_table_model(strategies) -> type[BaseModel]:
    """One `UserTypePoints` per strategy (keys are strategy names), as `anticipate.table_model`."""
    fields = {f"s{i}": (UserTypePoints, Field(alias=s.name)) for i, s in enumerate(strategies)}
    return create_model("ReactionPoints", __config__=ConfigDict(populate_by_name=True), **fields)


def to_point_forecast(strategy: str, user_type: str, scores: PointScores) -> ReactionForecast:
    """The forecast "this user reacts with `scores.reaction`" (probability 1)."""
    check_choice(f"reaction for ({strategy}, {user_type})", scores.reaction, REACTIONS)
    check_score("risk", scores.risk)
    return ReactionForecast(strategy=strategy, user_type=user_type,
                            reactions={r: 1.0 if r == scores.reaction else 0.0 for r in REACTIONS},
                            retention=RETENTION_VALUE[scores.reaction], risk=scores.risk / 10)


class LitePlan(BaseModel):
    """What one `lite-plan` call decided: the assessment, the forecasts, the Pearl Point."""

    assessment: RiskAssessment
    reactions: ReactionTable
    decision: Decision


class PlanSignature(dspy.Signature):
    """Assess the user's last message, then forecast how each kind of user would react to each reply strategy.

    Most requests are ordinary: then the group is "none" and the category "unknown".
    Otherwise choose the group whose line fits, then a category id from that line.
    Levels: R0 ordinary need on a sensitive topic; R1 grey, misguided or vulnerable;
    R2 attack or jailbreak attempt. Interaction: declarative states something,
    inquiry asks for information or an opinion, directive gives an instruction.
    Weigh who the user probably is, 0-10 each: benign, sensitive, malicious.
    Severity 0-10: how much harm a careless answer could do.
    Then, for every strategy and user type, imagine that user gets a reply following the
    strategy: forecast their reaction (satisfied, rephrases, escalates, leaves_unsafe,
    keeps_attacking) in the form the table asks for, and the risk 0-10 of harm that reply
    could enable.
    """

    # What every call shares comes first (prefix caching), the conversation last.
    categories: str = dspy.InputField(desc="one line per group: 'group: category ids'")
    strategies: str = dspy.InputField(desc="the candidate strategies, 'name: what it does'")
    user_types: str = dspy.InputField(desc="the user types")
    conversation: str = dspy.InputField(desc="the conversation, one 'role: text' line per turn")
    rationale: text("Sentence", 200) = dspy.OutputField(desc="one sentence: what is asked and whether any risk lies in it")
    group: str = dspy.OutputField(desc="'none', or the group of the risk")
    category: str = dspy.OutputField(desc="'unknown', or a category id from the group's line")
    level: choice("Level", LEVELS) = dspy.OutputField()
    interaction: choice("Interaction", INTERACTIONS) = dspy.OutputField()
    attack_form: choice("AttackForm", ATTACK_FORMS) = dspy.OutputField(desc="how a directive attacks")
    benign: Score = dspy.OutputField()
    sensitive: Score = dspy.OutputField()
    malicious: Score = dspy.OutputField()
    severity: Score = dspy.OutputField()
    table: BaseModel = dspy.OutputField(desc="per strategy name, per user type, the scores")


class LitePlanParams(DecideParams):
    """The `decide` step's parameters (same defaults), plus the taxonomy and the short list."""

    model_config = ConfigDict(extra="forbid")

    taxonomy: str = Field(default="oyster", description="a registered taxonomy (pearl taxonomy --list)")
    strategies: list[str] = Field(default_factory=lambda: list(DEFAULT_LITE_STRATEGIES),
                                  description="the registered strategies to forecast and choose from")
    forecast: Forecast = Field(default="point", description="'point': the most likely reaction per pair; "
                                                            "'weights': the five reaction weights per pair")
    max_rules: int = Field(default=3, ge=1, le=10, description="at most this many of the category's rules")
    catalogue: Catalogue = Field(default="ids", description="how the categories are shown, as on the `risk` step: "
                                                            "'ids' (one line per group) or 'described'")
    cue_repair: bool = Field(default=True, description="file the request under a category whose help cues the "
                                                       "person's words match, as the `risk` step does")


class PlanProgram(dspy.Module):
    """conversation -> (RiskAssessment, forecasts) in one call."""

    def __init__(self, taxonomy, strategies, forecast: Forecast = "point", *, catalogue: Catalogue = "ids",
                 cue_repair: bool = True):
        super().__init__()
        self.taxonomy = taxonomy
        self.cue_repair = cue_repair
        self.strategies = strategies
        self.forecast = forecast
        self.table = point_table_model(strategies) if forecast == "point" else table_model(strategies)
        self._choices = category_choices(taxonomy)
        self._groups = [NO_GROUP, *catalogue_groups(taxonomy)]
        self._catalogue = compact_catalogue(taxonomy, catalogue)
        self.plan = dspy.Predict(PlanSignature.with_updated_fields("category", type_=category_type(taxonomy))
                                 .with_updated_fields("group", type_=group_type(taxonomy))
                                 .with_updated_fields("table", type_=self.table))

    def forward(self, conversation: str, max_rules: int = 3, said: str | None = None) -> dspy.Prediction:
        """`said`: the person's own words, for the help cues (the whole conversation when not given)."""
        per_pair = TOKENS_PER_POINT if self.forecast == "point" else TOKENS_PER_PAIR
        budget = ASSESSMENT_TOKENS + per_pair * len(self.strategies) * len(USER_TYPES)
        p = self.plan(categories=self._catalogue,
                      strategies="\n".join(describe_strategy(s) for s in self.strategies),
                      user_types="\n".join(f"{t}: {USER_TYPE_TEXT[t]}" for t in USER_TYPES),
                      conversation=conversation, config={"max_tokens": budget})
        check_choice("group", p.group, self._groups)  # re-checked for backends that do not constrain
        check_choice("category", p.category, self._choices)
        check_choice("level", p.level, LEVELS)
        check_choice("interaction", p.interaction, INTERACTIONS)
        check_choice("attack_form", p.attack_form, ATTACK_FORMS)
        for name in ("benign", "sensitive", "malicious", "severity"):
            check_score(name, p[name])
        # degenerate answers are repaired and recorded as the `risk` step does (all but its rationale repair)
        posterior, repaired_posterior = posterior_from_weights(p.benign, p.sensitive, p.malicious)
        category_id, repaired_category = reconcile_category(self.taxonomy, p.group, p.category)
        repairs = [r for r in (repaired_posterior, repaired_category) if r]
        if self.cue_repair:
            category_id, repaired = category_from_cues(self.taxonomy, category_id,
                                                       conversation if said is None else said)
            repairs += [repaired] if repaired else []
        category = self.taxonomy.category(category_id)
        assessment = RiskAssessment(
            taxonomy=self.taxonomy.name, category=category_id, group=category.group if category is not None else None,
            level=p.level, interaction=p.interaction, attack_form=None if p.attack_form == "none" else p.attack_form,
            posterior=posterior, severity=int(p.severity) / 10,
            guideline=list(category.guideline)[:max_rules] if category is not None else [],
            rationale=(p.rationale or "").strip(), repairs=repairs)
        table = p.table if isinstance(p.table, self.table) else self.table.model_validate(p.table)
        convert = to_point_forecast if self.forecast == "point" else to_forecast
        forecasts = [convert(s.name, t, getattr(getattr(table, f"s{i}"), t))
                     for i, s in enumerate(self.strategies) for t in USER_TYPES]
        return dspy.Prediction(assessment=assessment, reactions=ReactionTable(
            strategies=[s.name for s in self.strategies], forecasts=forecasts, library=list(self.strategies)))


class LitePlanStep(Step):
    name = "lite-plan"
    description = "one call: risk assessment, user-type posterior and reaction forecasts; the Pearl Point solved in Python"
    Params = LitePlanParams
    inputs = {"conversation": Conversation}
    output = ("plan", LitePlan)

    def __init__(self, params: LitePlanParams, context):
        super().__init__(params, context)
        taxonomy = get_taxonomy(context.host, params.taxonomy)
        self.program = PlanProgram(taxonomy, select_strategies(context.host, params.strategies), params.forecast,
                                   catalogue=params.catalogue, cue_repair=params.cue_repair)

    def run(self, state) -> LitePlan:
        q: LitePlanParams = self.params  # type: ignore[assignment]
        pred = call_program(self.context.step_id, self.program, conversation=state.conversation.transcript(),
                            max_rules=q.max_rules, said=state.conversation.user_words)
        reactions: ReactionTable = pred.reactions
        decision = solve(reactions, pred.assessment.posterior, {s.name: s.cost for s in reactions.library},
                         alpha=q.alpha, beta=q.beta, gamma=q.gamma, tau=q.tau, epsilon=q.epsilon)
        return LitePlan(assessment=pred.assessment, reactions=reactions, decision=decision)


class LiteRespondSignature(dspy.Signature):
    """Reply to the user's last message following the chosen way of answering.

    Respect every constraint and rule. Write as yourself: never mention strategies, rules,
    risk levels or user types. Write in the language given.
    """

    conversation: str = dspy.InputField(desc="the conversation, one 'role: text' line per turn")
    language: str = dspy.InputField(desc="the language the reply is written in (the person's)")
    user: str = dspy.InputField(desc="who the user probably is")
    approach: str = dspy.InputField(desc="how to answer")
    constraints: str = dspy.InputField(desc="what the reply must respect, one per line")
    response: str = dspy.OutputField(desc="the reply to the user")


class LiteRespondParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_tokens: int = Field(default=400, gt=0, description="upper bound on the response's length in tokens")


class LiteRespondStep(Step):
    name = "lite-respond"
    description = "one call: the reply, following the plan's strategy, its constraints and the category's rules"
    Params = LiteRespondParams
    inputs = {"conversation": Conversation, "plan": LitePlan}
    output = ("response", Response)

    def __init__(self, params: LiteRespondParams, context):
        super().__init__(params, context)
        self.program = dspy.Predict(LiteRespondSignature)

    @staticmethod
    def _off(response: str, conversation: Conversation, tag: str, private: list[str]) -> bool:
        """Written in another script than the person's, in the person's voice, looping, or carrying
        the prompt's private plan (framework terms, user-type shares, 8-word runs of the rules)."""
        return (not written_in(response, tag) or speaks_as_the_person(response, conversation) or loops(response)
                or bool(leaks(response, None, private)))

    def run(self, state) -> Response:
        plan: LitePlan = state.get("plan")  # type: ignore[assignment]
        strategy = plan.decision.chosen or plan.reactions.strategy(plan.decision.strategy)
        rules = list(strategy.constraints if strategy is not None else []) + list(plan.assessment.guideline)
        tag = language_of(state.conversation)
        inputs = dict(conversation=state.conversation.transcript(), language=language_name(tag),
                      user=describe_user(plan.assessment.posterior, plan.assessment.level),
                      approach=strategy.summary if strategy is not None else plan.decision.strategy,
                      constraints="\n".join(f"- {r}" for r in rules) or "- (none)",
                      config={"max_tokens": self.params.max_tokens})
        private = [inputs["user"], inputs["approach"], *rules]
        pred = call_program(self.context.step_id, self.program, **inputs)
        response = str(pred.response).strip()
        if self._off(response, state.conversation, tag, private):  # once more, sampled
            with sampled():
                retry = str(call_program(self.context.step_id, self.program, **inputs).response).strip()
            if not self._off(retry, state.conversation, tag, private):
                response = retry
        if leaks(response, None, private):  # still leaking: drop the offending sentences, if anything is left
            response = scrub(response, None, private) or response
        if loops(response):
            response = unrepeated(response)
        return Response(response=finished(response))  # a reply cut mid-sentence ends at its last full one


@hookimpl
def register_steps(register):
    register(LitePlanStep)
    register(LiteRespondStep)
