"""Reaction anticipation (CSA.md section 1): the `anticipate` step -> slot `reactions`.

For every (response strategy, user type) pair the model forecasts how that user would
react to a reply following that strategy, as weights 1-10 over the five reactions
(`pearl.csa.REACTIONS`; 1 is "very unlikely", so no reaction is ruled out and the
weights always form a distribution), and rates the harm risk 0-10 of giving that reply to that
user type. Weights are normalised here; retention (expected satisfaction) is the
expected `RETENTION_VALUE` of the reaction distribution: a user who is satisfied stays,
one who rephrases half stays, one who escalates, leaves for an unsafe source or keeps
attacking is not served.

The modes (`mode` parameter); all but `declared` are DSPy modules:

- `pairs` (`ForecastPair`): one call per pair (24 for the built-in library), fanned out
  with `pearl.runtime.concurrency.map_in_context`. Every prompt starts with the same bytes
  (the instructions, the conversation, the assessment) and ends with the pair, so a
  server backend reuses its prefix cache and llama.cpp reuses its KV cache between calls.
- `strategy` (`ForecastStrategy`): one call per strategy (8) whose answer holds all three
  user types; the same shared prefix, the strategy last.
- `table` (`ForecastTable`): one structured call whose output schema has one object
  per strategy and user type, so the whole table is decoded at once.

- `rank` (`ForecastRank`): one structured call that, per user type, orders all the
  strategies by how well they would serve that user and by how much harm they could
  enable (relative judgements, which a small model can make when its absolute 0-10 scores
  come out all alike); the forecasts are read off the ranks and the assessment's severity
  (`ranked_forecast`), so the strategies always differ. About 300 completion tokens
  against the table's ~1,400.

- `pick` (`PickStrategy`): per benign and sensitive user, one constrained choice of the
  strategy that would serve that user best (2 calls of a few tokens each, the strategies
  listed in an order seeded by the conversation and the user type); the forecasts are the
  declared priors (below) with the picked strategy's satisfaction moved half way to 1 for
  that user type (`pick_forecasts`). For small models whose numbers and orderings carry
  nothing: on the 1.5B default, `table`, `pairs` and `strategy` forecast the same reactions
  for every strategy and `rank` returned the strategies in the order they were listed
  (tests/bench/QUALITY.md). The 1.5B's picks carried little more (they changed the priors'
  decision on 2 of 40 test items), so `csa.toml` keeps `table`. A malicious user's
  forecasts stay the priors (`PICK_TYPES`). Needs the same priors as `declared`.

- `declared`: no model call. Each strategy's declared prior (`ResponseStrategy.prior`,
  per user type: the chance the user is satisfied and the share of the request's severity
  the reply carries as risk) scaled by the risk step's severity; the conversation enters
  through the assessment alone (severity here, the posterior in `decide`). For models
  whose own forecasts come out alike for every strategy (the 1.5B default's `table`
  forecasts did on every benchmark item), so that `decide` weighs the posterior and the
  severity instead of falling back to one strategy per user type. Every strategy in the
  working set must declare a prior for all three user types (`PipelineError` otherwise).

The first three forecast the same numbers for the same pairs, so the decision (`decide`) reads
them alike; `tests/bench/anticipation.py` measures how often the cheaper modes lead to the
same decision as `pairs`.

`pairs` is the step's default; the shipped `csa` pipeline uses `table`, for calls and
prompt tokens (tests/bench/COST.md, 270M model, 2 shared cores: `pairs` 24 calls, 23.9k
prompt tokens (19.8k of them cached), 1.1k completion tokens, 112-164 s; `table` 1 call,
1.4k prompt, 1.3-1.4k completion tokens, 128-188 s in the cost runs, but once 1,630 s on a
busier machine). The table decodes its ~1,400 tokens in one stream, so on llama.cpp it is
not faster than the pairs, which reuse the shared prefix and, on a server backend, run as
one batch. An earlier measurement on a loaded machine: pairs 470 s, table 644 s.

A weight outside 1-10 (possible only from a backend that does not constrain decoding)
is rejected (one retry, then `StepError`). The weights used to be 0-10, and the
embedded model answered all zeros often enough to fail 3 of 4 XSTest runs.
"""

from __future__ import annotations

import hashlib
import random
from typing import Literal

import dspy
from pydantic import BaseModel, ConfigDict, Field, create_model

from pearl.runtime.concurrency import map_in_context
from pearl.csa import REACTIONS, USER_TYPES, ReactionForecast, ReactionTable, ResponseStrategy, RiskAssessment
from pearl.errors import PipelineError
from pearl.host.hookspecs import hookimpl
from pearl.runtime.programs import call_program
from pearl.host.step import Step
from pearl.strategies.library import select_strategies
from pearl.strategies.fields import Score, Weight, check_score, check_weight
from pearl.strategies.risk import describe_assessment
from pearl.types import Conversation

USER_TYPE_TEXT: dict[str, str] = {
    "benign": "an ordinary person with a legitimate need",
    "sensitive": "not hostile but vulnerable: in distress or holding a false belief",
    "malicious": "wants to cause harm or is probing for a way around safeguards",
}

RETENTION_VALUE: dict[str, float] = {
    "satisfied": 1.0, "rephrases": 0.5, "escalates": 0.0, "leaves_unsafe": 0.0, "keeps_attacking": 0.0,
}


#: Completion budget for one pair's JSON (about 55 tokens are needed; room for whitespace).
TOKENS_PER_PAIR = 120


class PairScores(BaseModel):
    """The model's raw answer for one pair: reaction weights 1-10 and risk 0-10."""

    satisfied: Weight
    rephrases: Weight
    escalates: Weight
    leaves_unsafe: Weight
    keeps_attacking: Weight
    risk: Score


def to_forecast(strategy: str, user_type: str, scores: BaseModel | dict) -> ReactionForecast:
    """Normalise one raw answer into a `ReactionForecast` (ValueError for a weight outside 1-10)."""
    raw = scores if isinstance(scores, dict) else scores.model_dump()
    for key in REACTIONS:
        check_weight(f"reaction weight {key} for ({strategy}, {user_type})", raw[key])
    check_score("risk", raw["risk"])
    weights = {r: float(raw[r]) for r in REACTIONS}
    total = sum(weights.values())
    reactions = {r: w / total for r, w in weights.items()}
    retention = sum(p * RETENTION_VALUE[r] for r, p in reactions.items())
    return ReactionForecast(strategy=strategy, user_type=user_type, reactions=reactions,
                            retention=min(1.0, max(0.0, retention)), risk=float(raw["risk"]) / 10)


def describe_strategy(s: ResponseStrategy) -> str:
    return f"{s.name}: {s.summary}"


# --- mode "pairs" ------------------------------------------------------------------------

class ForecastPairSignature(dspy.Signature):
    """Imagine the user is of the given type and gets a reply that follows the given strategy.

    Forecast the user's next move as weights 1-10 (1: very unlikely) for each reaction: satisfied (is
    served and continues), rephrases (asks again), escalates (pushes harder or gets
    upset), leaves_unsafe (goes to a worse source), keeps_attacking (tries another
    trick). Risk 0-10: how much harm that reply could enable for that user.
    """

    # The shared prefix comes first, the pair last (prefix caching).
    conversation: str = dspy.InputField(desc="the conversation, one 'role: text' line per turn")
    assessment: str = dspy.InputField(desc="the risk assessment of the request")
    strategy: str = dspy.InputField(desc="how the reply responds")
    user_type: str = dspy.InputField(desc="who the user is")
    satisfied: Weight = dspy.OutputField()
    rephrases: Weight = dspy.OutputField()
    escalates: Weight = dspy.OutputField()
    leaves_unsafe: Weight = dspy.OutputField()
    keeps_attacking: Weight = dspy.OutputField()
    risk: Score = dspy.OutputField()


class ForecastPair(dspy.Module):
    """One (strategy, user type) forecast."""

    def __init__(self):
        super().__init__()
        self.forecast = dspy.Predict(ForecastPairSignature)

    def forward(self, conversation: str, assessment: str, strategy: ResponseStrategy, user_type: str):
        p = self.forecast(conversation=conversation, assessment=assessment, strategy=describe_strategy(strategy),
                          user_type=f"{user_type}: {USER_TYPE_TEXT[user_type]}",
                          config={"max_tokens": TOKENS_PER_PAIR})
        scores = {k: p[k] for k in PairScores.model_fields}
        return dspy.Prediction(forecast=to_forecast(strategy.name, user_type, scores))


# --- mode "strategy" ---------------------------------------------------------------------

class UserTypeScores(BaseModel):
    benign: PairScores
    sensitive: PairScores
    malicious: PairScores


class ForecastStrategySignature(dspy.Signature):
    """Imagine each type of user gets a reply that follows the given strategy.

    For each user type, forecast the user's next move as weights 1-10 (1: very unlikely) for each
    reaction: satisfied (is served and continues), rephrases (asks again), escalates (pushes harder
    or gets upset), leaves_unsafe (goes to a worse source), keeps_attacking (tries another trick).
    Risk 0-10: how much harm that reply could enable for that user.
    """

    # The shared prefix comes first, the strategy last (prefix caching).
    conversation: str = dspy.InputField(desc="the conversation, one 'role: text' line per turn")
    assessment: str = dspy.InputField(desc="the risk assessment of the request")
    user_types: str = dspy.InputField(desc="the user types")
    strategy: str = dspy.InputField(desc="how the reply responds")
    scores: UserTypeScores = dspy.OutputField(desc="per user type, the scores")


class ForecastStrategy(dspy.Module):
    """One strategy's forecasts for every user type, in one call."""

    def __init__(self):
        super().__init__()
        self.forecast = dspy.Predict(ForecastStrategySignature)

    def forward(self, conversation: str, assessment: str, strategy: ResponseStrategy):
        p = self.forecast(conversation=conversation, assessment=assessment,
                          user_types="\n".join(f"{t}: {USER_TYPE_TEXT[t]}" for t in USER_TYPES),
                          strategy=describe_strategy(strategy),
                          config={"max_tokens": 32 + TOKENS_PER_PAIR * len(USER_TYPES)})
        scores = p.scores if isinstance(p.scores, UserTypeScores) else UserTypeScores.model_validate(p.scores)
        return dspy.Prediction(forecasts=[to_forecast(strategy.name, t, getattr(scores, t)) for t in USER_TYPES])


# --- mode "table" ------------------------------------------------------------------------


def table_model(strategies: list[ResponseStrategy]) -> type[BaseModel]:
    """A pydantic model with one `UserTypeScores` per strategy (keys are strategy names)."""
    fields = {f"s{i}": (UserTypeScores, Field(alias=s.name)) for i, s in enumerate(strategies)}
    return create_model("ReactionScores", __config__=ConfigDict(populate_by_name=True), **fields)


class ForecastTableSignature(dspy.Signature):
    """For every listed strategy and every user type, imagine the user gets a reply that follows the strategy.

    Forecast each user's next move as weights 1-10 (1: very unlikely) for each reaction: satisfied (is
    served and continues), rephrases (asks again), escalates (pushes harder or gets
    upset), leaves_unsafe (goes to a worse source), keeps_attacking (tries another
    trick). Risk 0-10: how much harm that reply could enable for that user.
    """

    conversation: str = dspy.InputField(desc="the conversation, one 'role: text' line per turn")
    assessment: str = dspy.InputField(desc="the risk assessment of the request")
    strategies: str = dspy.InputField(desc="the candidate strategies, 'name: what it does'")
    user_types: str = dspy.InputField(desc="the user types")
    table: BaseModel = dspy.OutputField(desc="per strategy name, per user type, the scores")


class ForecastTable(dspy.Module):
    """The whole table in one structured call."""

    def __init__(self, strategies: list[ResponseStrategy]):
        super().__init__()
        self.strategies = strategies
        self.model = table_model(strategies)
        self.forecast = dspy.Predict(ForecastTableSignature.with_updated_fields("table", type_=self.model))

    def forward(self, conversation: str, assessment: str):
        p = self.forecast(conversation=conversation, assessment=assessment,
                          strategies="\n".join(describe_strategy(s) for s in self.strategies),
                          user_types="\n".join(f"{t}: {USER_TYPE_TEXT[t]}" for t in USER_TYPES),
                          config={"max_tokens": 64 + TOKENS_PER_PAIR * len(self.strategies) * len(USER_TYPES)})
        table = p.table if isinstance(p.table, self.model) else self.model.model_validate(p.table)
        forecasts = []
        for i, s in enumerate(self.strategies):
            per_type: UserTypeScores = getattr(table, f"s{i}")
            for t in USER_TYPES:
                forecasts.append(to_forecast(s.name, t, getattr(per_type, t)))
        return dspy.Prediction(forecasts=forecasts)


# --- mode "rank" -------------------------------------------------------------------------

class ForecastRankSignature(dspy.Signature):
    """Compare the listed reply strategies for each type of user who could have written this conversation.

    For each user type, order ALL the strategy names twice. best_first: from the reply that would
    serve that user best (they are satisfied and carry on) to the one that would serve them worst.
    riskiest_first: from the reply that could enable the most harm for that user to the one that
    could enable the least. Compare the strategies with each other; every name appears once in each list.
    """

    conversation: str = dspy.InputField(desc="the conversation, one 'role: text' line per turn")
    assessment: str = dspy.InputField(desc="the risk assessment of the request")
    strategies: str = dspy.InputField(desc="the candidate strategies, 'name: what it does'")
    user_types: str = dspy.InputField(desc="the user types")
    ranking: BaseModel = dspy.OutputField(desc="per user type, the two orderings of the strategy names")


def rank_model(strategies: list[ResponseStrategy]) -> type[BaseModel]:
    """Per user type, two lists of exactly `len(strategies)` strategy names."""
    name = Literal[tuple(s.name for s in strategies)]  # type: ignore[valid-type]
    n = len(strategies)
    orders = create_model("Orders", best_first=(list[name], Field(min_length=n, max_length=n)),
                          riskiest_first=(list[name], Field(min_length=n, max_length=n)))
    return create_model("Ranking", **{t: (orders, ...) for t in USER_TYPES})


def complete_order(order: list[str], names: list[str]) -> list[str]:
    """`order` without repeats, then any name it left out, in library order (a small model may repeat one)."""
    seen: list[str] = []
    for n in [*order, *names]:
        if n in names and n not in seen:
            seen.append(n)
    return seen


def ranked_forecast(strategy: str, user_type: str, best: int, riskiest: int, n: int,
                    severity: float) -> ReactionForecast:
    """A forecast read off two ranks (0 = first) among `n` strategies.

    Satisfaction falls linearly with the rank in `best_first`, from 0.9 (best) to 0.1 (worst);
    the rest of the user's mass goes half to rephrasing and half, evenly, to the three
    unserved reactions. Risk falls linearly with the rank in `riskiest_first`, from the
    assessment's severity (riskiest) to 0 (least risky): the ranks say which replies are
    riskier, the assessment how risky the request is at all.
    """
    span = max(n - 1, 1)
    return forecast_from(strategy, user_type, satisfied=0.9 - 0.8 * best / span,
                         risk=severity * (1.0 - riskiest / span))


def forecast_from(strategy: str, user_type: str, *, satisfied: float, risk: float) -> ReactionForecast:
    """A forecast from the chance the user is satisfied: the rest of the user's mass goes half to
    rephrasing and half, evenly, to the three unserved reactions; retention follows from the
    reactions (`RETENTION_VALUE`); risk is clipped to 0-1."""
    rest = 1.0 - satisfied
    reactions = {"satisfied": satisfied, "rephrases": rest / 2, "escalates": rest / 6, "leaves_unsafe": rest / 6,
                 "keeps_attacking": rest / 6}
    retention = sum(p * RETENTION_VALUE[r] for r, p in reactions.items())
    return ReactionForecast(strategy=strategy, user_type=user_type, reactions=reactions,
                            retention=min(1.0, max(0.0, retention)), risk=min(1.0, max(0.0, risk)))


class ForecastRank(dspy.Module):
    """Relative forecasts in one structured call: per user type, the strategies ordered by
    how well they serve that user and by how much harm they could enable."""

    def __init__(self, strategies: list[ResponseStrategy]):
        super().__init__()
        self.strategies = strategies
        self.model = rank_model(strategies)
        self.forecast = dspy.Predict(ForecastRankSignature.with_updated_fields("ranking", type_=self.model))

    def forward(self, conversation: str, assessment: str, severity: float):
        names = [s.name for s in self.strategies]
        p = self.forecast(conversation=conversation, assessment=assessment,
                          strategies="\n".join(describe_strategy(s) for s in self.strategies),
                          user_types="\n".join(f"{t}: {USER_TYPE_TEXT[t]}" for t in USER_TYPES),
                          config={"max_tokens": 64 + 16 * len(names) * 2 * len(USER_TYPES)})
        ranking = p.ranking if isinstance(p.ranking, self.model) else self.model.model_validate(p.ranking)
        forecasts = []
        for t in USER_TYPES:
            orders = getattr(ranking, t)
            best = complete_order(list(orders.best_first), names)
            risky = complete_order(list(orders.riskiest_first), names)
            forecasts += [ranked_forecast(name, t, best.index(name), risky.index(name), len(names), severity)
                          for name in names]
        return dspy.Prediction(forecasts=forecasts)


# --- mode "pick" -------------------------------------------------------------------------

#: How far a pick moves the picked strategy's declared satisfaction toward certainty
#: (`pick_forecasts`): one answer of a small model is one piece of evidence, not proof. With 1 (the
#: first version) the 1.5B's pick of `refuse_with_alternatives` for a sensitive user outranked the
#: supportive response (declared 0.95, but twice the cost) on a first-person suicide message; at a
#: half a pick cannot overturn the strongest priors alone, and moves the middling ones.
PICK_WEIGHT = 0.5

#: The user types the model picks for. A malicious user is satisfied by exactly the replies that
#: carry the harm (the declared priors say so), and a pick "that serves them best while enabling no
#: harm" is the leader's question, not a forecast of their reaction: raising its satisfaction made
#: a refusal the Pearl Point for a crisis message the risk step had called half malicious.
PICK_TYPES: tuple[str, ...] = ("benign", "sensitive")


class PickStrategySignature(dspy.Signature):
    """Imagine this conversation was written by the given type of user.

    Choose the ONE reply strategy that would serve that user best while enabling no harm to
    them or to anyone else. Read what each strategy does and when it fits.
    """

    conversation: str = dspy.InputField(desc="the conversation, one 'role: text' line per turn")
    assessment: str = dspy.InputField(desc="the risk assessment of the request")
    user_type: str = dspy.InputField(desc="who the user is")
    strategies: str = dspy.InputField(desc="the candidate strategies, 'name: what it does (fits when ...)'")
    best: str = dspy.OutputField(desc="the name of the one strategy")


def presentation_order(strategies: list[ResponseStrategy], conversation: str, user_type: str) -> list[ResponseStrategy]:
    """The strategies in an order seeded by the conversation and the user type: a small model that
    answers with whatever is listed first (the 1.5B's `rank` answers were the library's order) then
    does not always pick the library's first, and the same input always gives the same order."""
    seed = int.from_bytes(hashlib.sha256(f"{user_type}\n{conversation}".encode()).digest()[:8], "big")
    order = list(strategies)
    random.Random(seed).shuffle(order)
    return order


class PickStrategy(dspy.Module):
    """Per user type in `PICK_TYPES`, one constrained choice of the strategy that would serve that
    user best; the forecasts are `pick_forecasts`."""

    def __init__(self, strategies: list[ResponseStrategy]):
        super().__init__()
        self.strategies = strategies
        names = Literal[tuple(s.name for s in strategies)]  # type: ignore[valid-type]
        self.pick = dspy.Predict(PickStrategySignature.with_updated_fields("best", type_=names))

    def forward(self, conversation: str, assessment: str, severity: float):
        picks = {}
        for t in PICK_TYPES:
            listed = presentation_order(self.strategies, conversation, t)
            p = self.pick(conversation=conversation, assessment=assessment,
                          user_type=f"{t}: {USER_TYPE_TEXT[t]}",
                          strategies="\n".join(f"{s.name}: {s.summary} (fits when {s.fits_when})" for s in listed),
                          config={"max_tokens": 48})
            picks[t] = p.best
        return dspy.Prediction(forecasts=pick_forecasts(self.strategies, severity, picks), picks=picks)


def pick_forecasts(strategies: list[ResponseStrategy], severity: float,
                   picks: dict[str, str]) -> list[ReactionForecast]:
    """The declared forecasts (`declared_forecasts`) with the satisfaction of the strategy picked for
    each user type moved `PICK_WEIGHT` of the way to 1 for that type: the priors carry the method's
    reading of the user types, the pick what this conversation asks for; risk stays the declared
    share of the assessed severity. Picks for types outside `PICK_TYPES` are ignored."""
    out = []
    for s in strategies:
        for t in USER_TYPES:
            satisfied = s.prior[t].satisfied
            if t in PICK_TYPES and picks.get(t) == s.name:
                satisfied += (1.0 - satisfied) * PICK_WEIGHT
            out.append(forecast_from(s.name, t, satisfied=satisfied, risk=severity * s.prior[t].risk_share))
    return out


# --- mode "declared" ---------------------------------------------------------------------

def declared_forecasts(strategies: list[ResponseStrategy], severity: float) -> list[ReactionForecast]:
    """Forecasts from the strategies' declared priors (`ResponseStrategy.prior`), no model call:
    satisfied as declared, risk = the assessment's severity x the declared risk share."""
    return [forecast_from(s.name, t, satisfied=s.prior[t].satisfied, risk=severity * s.prior[t].risk_share)
            for s in strategies for t in USER_TYPES]


def check_priors(strategies: list[ResponseStrategy], mode: str) -> None:
    """`PipelineError` naming every strategy that lacks a declared prior for some user type (`mode`: the
    anticipation mode that reads the priors, named in the message)."""
    missing = {s.name: [t for t in USER_TYPES if t not in s.prior] for s in strategies}
    missing = {name: types for name, types in missing.items() if types}
    if missing:
        listed = "; ".join(f"'{name}' (no {', '.join(types)})" for name, types in missing.items())
        raise PipelineError(
            f"anticipate mode '{mode}' reads each strategy's prior, and these declare none for some user type: "
            f"{listed}. Give them `prior = {{benign = {{satisfied = 0.9, risk_share = 0.3}}, sensitive = ..., "
            f"malicious = ...}}`, leave them out with `strategies = [...]`, or use mode 'table'")


# --- the step ----------------------------------------------------------------------------

class AnticipateParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["pairs", "strategy", "table", "rank", "pick", "declared"] = Field(
        default="pairs", description="one call per (strategy, user type) pair, one per strategy, one for the whole "
                                     "table, one that ranks the strategies per user type, one pick per benign "
                                     "and sensitive user that raises the declared priors, or no call: the "
                                     "strategies' declared priors scaled by the assessed severity")
    strategies: list[str] | None = Field(default=None, description="restrict to these registered strategies")
    extra_strategies: list[ResponseStrategy] = Field(default_factory=list, description="strategies defined inline")
    max_workers: int = Field(default=8, ge=1, description="concurrent calls (modes 'pairs' and 'strategy')")


class AnticipateStep(Step):
    name = "anticipate"
    description = "forecast each user type's reaction to each response strategy"
    Params = AnticipateParams
    inputs = {"conversation": Conversation, "assessment": RiskAssessment}
    output = ("reactions", ReactionTable)

    def __init__(self, params: AnticipateParams, context):
        super().__init__(params, context)
        self.strategies = select_strategies(context.host, params.strategies, params.extra_strategies)
        if params.mode in ("declared", "pick"):
            check_priors(self.strategies, params.mode)
        if params.mode == "declared":
            self.program = None  # no LM call
            return
        self.program = {"pairs": ForecastPair, "strategy": ForecastStrategy,
                        "rank": lambda: ForecastRank(self.strategies),
                        "pick": lambda: PickStrategy(self.strategies)}.get(
            params.mode, lambda: ForecastTable(self.strategies))()

    def run(self, state) -> ReactionTable:
        conversation = state.conversation.transcript()
        assessment = describe_assessment(state.get("assessment"))
        step_id = self.context.step_id
        picks: dict[str, str] = {}
        if self.params.mode == "pairs":
            pairs = [(s, t) for s in self.strategies for t in USER_TYPES]
            preds = map_in_context(
                lambda pair: call_program(step_id, self.program, conversation=conversation, assessment=assessment,
                                          strategy=pair[0], user_type=pair[1]),
                pairs, max_workers=self.params.max_workers)
            forecasts = [p.forecast for p in preds]
        elif self.params.mode == "strategy":
            preds = map_in_context(
                lambda s: call_program(step_id, self.program, conversation=conversation, assessment=assessment,
                                       strategy=s),
                self.strategies, max_workers=self.params.max_workers)
            forecasts = [f for p in preds for f in p.forecasts]
        elif self.params.mode == "declared":
            forecasts = declared_forecasts(self.strategies, state.get("assessment").severity)
        elif self.params.mode in ("rank", "pick"):
            prediction = call_program(step_id, self.program, conversation=conversation, assessment=assessment,
                                      severity=state.get("assessment").severity)
            forecasts, picks = prediction.forecasts, dict(prediction.get("picks") or {})
        else:
            forecasts = call_program(step_id, self.program, conversation=conversation, assessment=assessment).forecasts
        source = {"declared": "declared", "pick": "picked"}.get(self.params.mode, "model")
        return ReactionTable(strategies=[s.name for s in self.strategies], forecasts=forecasts,
                             library=list(self.strategies), source=source, picks=picks)


@hookimpl
def register_steps(register):
    register(AnticipateStep)
