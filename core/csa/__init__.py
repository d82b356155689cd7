"""The data model of constructive safety alignment (CSA.md sections 1-5).

These are the typed values the CSA steps pass through the run state:

    conversation -> RiskAssessment -> ReactionTable -> Decision -> Chain -> Draft -> Refinement
                    (risk)            (anticipate)     (decide)    (draft)  (recombine) (refine)

Taxonomies (`Taxonomy`) and response strategies (`ResponseStrategy`) are registered
by plugins; the rest are step outputs.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pearl.traces import semconv as sc
from pearl.traces.attributes import Event, evaluation_event

RISK_SPAN = "pearl.risk"  # span attribute namespaces of the risk assessment and the decision
DECISION_SPAN = "pearl.decision"

UserType = Literal["benign", "sensitive", "malicious"]
USER_TYPES: tuple[UserType, ...] = ("benign", "sensitive", "malicious")

RiskLevel = Literal["R0", "R1", "R2"]
LEVELS: tuple[RiskLevel, ...] = ("R0", "R1", "R2")
RISK_LEVELS: dict[str, str] = {
    "R0": "benign need on a sensitive topic",
    "R1": "grey or misguided intent",
    "R2": "attacker or red-teamer (jailbreak attempts)",
}

InteractionType = Literal["declarative", "inquiry", "directive"]

Reaction = Literal["satisfied", "rephrases", "escalates", "leaves_unsafe", "keeps_attacking"]
REACTIONS: tuple[Reaction, ...] = ("satisfied", "rephrases", "escalates", "leaves_unsafe", "keeps_attacking")

UNKNOWN_CATEGORY = "unknown"


def risky(category: str, level: str, severity: float) -> bool:
    """The rule of `RiskAssessment.is_risky`: a category other than "unknown", a level above R0,
    or a severity (0-1) above 0."""
    return category != UNKNOWN_CATEGORY or level != "R0" or severity > 0


# --- taxonomy --------------------------------------------------------------------------

class RiskGroup(BaseModel):
    """A first-level risk group (e.g. 'Physical and Mental Harm')."""

    id: str
    name: str
    description: str = ""


class RiskCategory(BaseModel):
    """A second-level category and its safety guideline (numbered handling rules)."""

    id: str
    name: str
    group: str = Field(description="id of its RiskGroup")
    description: str = ""
    guideline: list[str] = Field(default_factory=list)
    names: dict[str, str] = Field(default_factory=dict, description="names in other languages, by language tag")
    help_lines: dict[str, str] = Field(default_factory=dict,
                                       description="by language tag, one sentence naming where a person at risk gets help now")
    help_cues: list[str] = Field(default_factory=list,
                                 description="regular expressions (case-insensitive; `(?-i:...)` for a case-sensitive "
                                             "part) over the person's words that make "
                                             "`help_lines` apply whatever category the risk step chose, and that the "
                                             "risk step files under this category (its `cue_repair`)")

    def cued_by(self, text: str) -> bool:
        """Whether one of `help_cues` matches `text` (case-insensitive)."""
        return any(re.search(cue, text, re.IGNORECASE) for cue in self.help_cues)

    @field_validator("help_cues")
    @classmethod
    def _cues_compile(cls, cues: list[str]) -> list[str]:
        for cue in cues:
            try:
                re.compile(cue)
            except re.error as exc:
                raise ValueError(f"help cue {cue!r} is not a regular expression ({exc}): fix it in the taxonomy") from exc
        return cues


class Taxonomy(BaseModel):
    """Groups, categories and levels; category ids are unique."""

    name: str
    description: str = ""
    groups: list[RiskGroup]
    categories: list[RiskCategory]
    levels: dict[str, str] = Field(default_factory=lambda: dict(RISK_LEVELS))

    @model_validator(mode="after")
    def _consistent(self) -> "Taxonomy":
        seen: set[str] = set()
        group_ids = {g.id for g in self.groups}
        for c in self.categories:
            if c.id in seen:
                raise ValueError(f"category id '{c.id}' appears twice")
            if c.group not in group_ids:
                raise ValueError(f"category '{c.id}' names unknown group '{c.group}'")
            seen.add(c.id)
        return self

    def category(self, category_id: str) -> RiskCategory | None:
        return next((c for c in self.categories if c.id == category_id), None)

    def group(self, group_id: str) -> RiskGroup | None:
        return next((g for g in self.groups if g.id == group_id), None)

    def category_ids(self) -> list[str]:
        return [c.id for c in self.categories]


# --- risk assessment -------------------------------------------------------------------

class UserPosterior(BaseModel):
    """P(user type | conversation); the three probabilities sum to 1."""

    benign: float = Field(ge=0, le=1)
    sensitive: float = Field(ge=0, le=1)
    malicious: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _sums_to_one(self) -> "UserPosterior":
        total = self.benign + self.sensitive + self.malicious
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"user-type probabilities sum to {total:.4f}, not 1: use UserPosterior.normalised(...)")
        return self

    @classmethod
    def normalised(cls, benign: float, sensitive: float, malicious: float) -> "UserPosterior":
        """Clip to [0, 1] and rescale to sum 1 (uniform if all are zero)."""
        values = [min(1.0, max(0.0, float(v))) for v in (benign, sensitive, malicious)]
        total = sum(values)
        if total <= 0:
            values, total = [1.0, 1.0, 1.0], 3.0
        b, s = values[0] / total, values[1] / total
        return cls(benign=b, sensitive=s, malicious=max(0.0, 1.0 - b - s))

    def as_dict(self) -> dict[UserType, float]:
        return {"benign": self.benign, "sensitive": self.sensitive, "malicious": self.malicious}


class RiskAssessment(BaseModel):
    """Fine-grained risk of one request: category, level, intent, user-type posterior."""

    taxonomy: str
    category: str = Field(description="a category id of the taxonomy, or 'unknown'")
    group: str | None = None
    level: RiskLevel
    interaction: InteractionType
    attack_form: str | None = Field(default=None, description="when directive: role-play, injection, ...")
    posterior: UserPosterior
    severity: float = Field(ge=0, le=1)
    guideline: list[str] = Field(default_factory=list, description="the category's rules, adapted to this query")
    rationale: str = ""
    repairs: list[str] = Field(default_factory=list,
                               description="degenerate parts of the model's answer that were repaired, and how")
    readings: dict[str, float] = Field(default_factory=dict,
                                       description="P(yes) to yes/no questions about the message, when the posterior "
                                                   "was read from token probabilities (e.g. danger, distress)")

    @property
    def is_risky(self) -> bool:
        return risky(self.category, self.level, self.severity)

    # --- on its step's span (the `pearl.traces.attributes.SpanDescribed` protocol) ---
    span_kind: ClassVar[str] = sc.KIND_GUARDRAIL

    def span_attributes(self, content: bool) -> dict[str, Any]:
        """`pearl.risk.*`: category, level, intent, severity, the user-type posterior; the rationale
        (it may quote the user) only with content capture on."""
        p = RISK_SPAN
        return {
            f"{p}.taxonomy": self.taxonomy,
            f"{p}.category": self.category,
            f"{p}.group": self.group,
            f"{p}.level": self.level,
            f"{p}.interaction": self.interaction,
            f"{p}.attack_form": self.attack_form,
            f"{p}.severity": float(self.severity),
            f"{p}.is_risky": self.is_risky,
            f"{p}.posterior.benign": float(self.posterior.benign),
            f"{p}.posterior.sensitive": float(self.posterior.sensitive),
            f"{p}.posterior.malicious": float(self.posterior.malicious),
            f"{p}.guideline_count": len(self.guideline),
            f"{p}.repairs": list(self.repairs) or None,
            **{f"{p}.reading.{k}": float(v) for k, v in self.readings.items()},
            f"{p}.rationale": (self.rationale or None) if content else None,
            sc.PEARL_STEP_SUMMARY: f"category={self.category} level={self.level} severity={self.severity:.3g}",
        }

    def span_events(self, content: bool) -> list[Event]:
        """One evaluation named `risk`: score = severity, label = level, the rationale with content on."""
        return [evaluation_event("risk", self.severity, self.level, self.rationale if content else None,
                                 **{f"{RISK_SPAN}.category": self.category})]


# --- response strategies and the game ---------------------------------------------------

class StrategyPrior(BaseModel):
    """What a strategy's author expects of it for one user type, before any conversation is read.

    `anticipate` in mode "declared" turns it into a forecast without a model call: the user
    is satisfied with probability `satisfied`, and the reply carries `risk_share` of the
    request's severity (as assessed by the `risk` step) as harm risk for that user type.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    satisfied: float = Field(ge=0, le=1, description="chance that a user of this type is served and carries on")
    risk_share: float = Field(ge=0, le=1, description="share of the request's severity such a reply carries as harm risk")


class ResponseStrategy(BaseModel):
    """One way to respond (a leader's action in the game)."""

    model_config = ConfigDict(frozen=True)

    name: str
    summary: str = Field(description="what the response does")
    fits_when: str = Field(description="the situations it fits")
    constraints: list[str] = Field(default_factory=list, description="hard constraints the response must respect")
    cost: float = Field(default=0.5, ge=0, le=1, description="relative inference cost (length of the answer)")
    fallback_for: tuple[UserType, ...] = Field(
        default=(), description="the user types this strategy serves when no strategy is inside the safety boundary")
    prior: dict[UserType, StrategyPrior] = Field(
        default_factory=dict, description="per user type, the declared outlook read by `anticipate` mode 'declared'")
    declines: bool = Field(
        default=False, description="a reply in this strategy does not carry out the request itself (it supports, "
                                   "redirects or refuses); a reply that does is written again when `recombine` "
                                   "holds the decision's boundary")

    @property
    def for_malicious_only(self) -> bool:
        """The library keeps it for malicious users alone (`fallback_for == ("malicious",)`, the built-in
        `firm_refusal`)."""
        return tuple(self.fallback_for) == ("malicious",)


class ReactionForecast(BaseModel):
    """How one user type is expected to react to one strategy."""

    strategy: str
    user_type: UserType
    reactions: dict[Reaction, float] = Field(description="distribution over reactions; sums to 1")
    retention: float = Field(ge=0, le=1, description="expected satisfaction / chance the user is well served")
    risk: float = Field(ge=0, le=1, description="harm risk of giving this response to this user type")

    @field_validator("reactions")
    @classmethod
    def _distribution(cls, value: dict[str, float]) -> dict[str, float]:
        total = sum(value.values())
        if any(v < 0 for v in value.values()) or abs(total - 1.0) > 1e-6:
            raise ValueError(f"reaction probabilities must be >= 0 and sum to 1 (got {total:.4f})")
        return value


class ReactionTable(BaseModel):
    """Forecasts for every (strategy, user type) pair."""

    strategies: list[str]
    forecasts: list[ReactionForecast]
    library: list[ResponseStrategy] = Field(default_factory=list, description="the records of `strategies`, same order")
    source: Literal["model", "declared", "picked"] = Field(
        default="model", description="who forecast: a model, the strategies' declared priors (no model call), or "
                                     "the priors with the strategy a model picked per user type raised")
    picks: dict[str, str] = Field(default_factory=dict, description="source 'picked': the strategy picked per user type")

    def strategy(self, name: str) -> ResponseStrategy | None:
        return next((s for s in self.library if s.name == name), None)

    def get(self, strategy: str, user_type: UserType) -> ReactionForecast:
        for f in self.forecasts:
            if f.strategy == strategy and f.user_type == user_type:
                return f
        raise KeyError((strategy, user_type))

    def informative(self) -> bool:
        """False when, for every user type, every strategy got the same forecast (reactions, retention, risk):
        such a table cannot tell the strategies apart (a small model may answer one pattern throughout)."""
        by_type: dict[str, set] = {}
        for f in self.forecasts:
            key = (tuple(sorted((r, round(p, 6)) for r, p in f.reactions.items())), round(f.retention, 6),
                   round(f.risk, 6))
            by_type.setdefault(f.user_type, set()).add(key)
        return any(len(keys) > 1 for keys in by_type.values())


class UtilityRow(BaseModel):
    """One strategy's line in the leader's utility table."""

    strategy: str
    expected_utility: float
    expected_retention: float
    expected_risk: float
    worst_risk: float = Field(description="max risk over user types with posterior >= epsilon")
    cost: float
    admissible: bool


class Decision(BaseModel):
    """The Stackelberg leader's choice: the Pearl Point strategy and why."""

    strategy: str
    admissible: bool = Field(description="False when no strategy was inside the safety boundary")
    reason: str
    table: list[UtilityRow]
    alpha: float
    beta: float
    gamma: float
    tau: float
    epsilon: float
    chosen: ResponseStrategy | None = Field(default=None, description="the record of `strategy`")
    informative: bool = Field(default=True, description="False when the forecasts were the same for every strategy, "
                                                        "so the choice rests on the tie-breaks or the fallback alone")

    # --- on its step's span (the `pearl.traces.attributes.SpanDescribed` protocol) ---
    def _chosen_row(self) -> UtilityRow | None:
        return next((row for row in self.table if row.strategy == self.strategy), None)

    def span_attributes(self, content: bool) -> dict[str, Any]:
        """`pearl.decision.*`: the strategy, the game's parameters and the chosen row's utility."""
        p = DECISION_SPAN
        attributes: dict[str, Any] = {
            f"{p}.strategy": self.strategy,
            f"{p}.admissible": self.admissible,
            f"{p}.reason": self.reason,
            f"{p}.candidates": len(self.table),
            f"{p}.admissible_candidates": sum(1 for row in self.table if row.admissible),
            f"{p}.alpha": float(self.alpha),
            f"{p}.beta": float(self.beta),
            f"{p}.gamma": float(self.gamma),
            f"{p}.tau": float(self.tau),
            f"{p}.epsilon": float(self.epsilon),
            sc.PEARL_STEP_SUMMARY: f"strategy={self.strategy}" + ("" if self.admissible else " inadmissible"),
        }
        chosen = self._chosen_row()
        if chosen is not None:
            attributes.update({
                f"{p}.expected_utility": float(chosen.expected_utility),
                f"{p}.expected_retention": float(chosen.expected_retention),
                f"{p}.expected_risk": float(chosen.expected_risk),
                f"{p}.worst_risk": float(chosen.worst_risk),
            })
        return attributes

    def span_events(self, content: bool) -> list[Event]:
        """One evaluation named `decision`: score = the chosen strategy's expected utility, label = it,
        explanation = the framework's reason (no user text, so regardless of `content`)."""
        chosen = self._chosen_row()
        return [evaluation_event("decision", chosen.expected_utility if chosen else None, self.strategy,
                                 self.reason, **{f"{DECISION_SPAN}.admissible": self.admissible})]


# --- reasoning chain -----------------------------------------------------------------------

ChainNode = Literal["user_needs", "risk_intent", "safety_guidelines", "safety_strategies", "usefulness_strategies"]
CHAIN_NODES: tuple[ChainNode, ...] = (
    "user_needs", "risk_intent", "safety_guidelines", "safety_strategies", "usefulness_strategies",
)


def chain_graph() -> nx.DiGraph:
    """The dependency DAG of the five chain nodes (edges point downstream)."""
    g = nx.DiGraph()
    g.add_nodes_from(CHAIN_NODES)
    g.add_edges_from([
        ("user_needs", "risk_intent"),
        ("risk_intent", "safety_guidelines"),
        ("safety_guidelines", "safety_strategies"),
        ("safety_guidelines", "usefulness_strategies"),
        ("user_needs", "usefulness_strategies"),
    ])
    return g


class Chain(BaseModel):
    """The structured reasoning chain (CSA.md section 3); strategies are ordered lists."""

    user_needs: str
    risk_intent: str = Field(default="", description="interaction type and how the risk shows; empty if none")
    safety_guidelines: list[str] = Field(default_factory=list)
    safety_strategies: list[str] = Field(default_factory=list)
    usefulness_strategies: list[str] = Field(default_factory=list)
    repairs: list[str] = Field(default_factory=list,
                               description="degenerate parts of the model's answer that were repaired, and how")

    @property
    def simplified(self) -> bool:
        """No risk: recombination uses needs + strategies only."""
        return not self.risk_intent.strip() and not self.safety_guidelines


class Draft(BaseModel):
    """A recombined chain: natural reasoning and the final response."""

    response: str
    reasoning: str | None = None
    simplified: bool = Field(default=False, description="written from the simplified chain (no risk)")
    scrubbed: bool = Field(default=False,
                           description="sentences had to be removed from the response: framework vocabulary, the "
                                       "chain's analysis, the repeats of a reply that loops, or the words after the last full "
                                       "sentence of a reply that stops mid-sentence")
    held_back: bool = Field(default=False,
                            description="the first reply carried out a request the decision declines (the refusal "
                                        "classifier was sure it complies in full), so it was written again (`held_back_by` says "
                                        "how)")
    replaced: str | None = Field(default=None,
                                 description="when held back or followed through, the reply written first (kept in the "
                                             "record for audit, never sent)")
    held_back_by: Literal["moves", "decline", "fixed"] | None = Field(
        default=None, description="when held back, what wrote the reply sent: 'moves' (a rewrite from the chain's "
                                  "moves), 'decline' (a short decline written by the model, after two rewrites "
                                  "that were unusable or still carried the request out), or 'fixed' (the "
                                  "boundary's fixed decline, when the model's decline failed too)")
    followed_through: bool = Field(
        default=False, description="the decision carries the request out, but the first reply refused it in full (the "
                                   "refusal classifier was sure), so it was written again from the chain's moves and "
                                   "that rewrite, which does not refuse, was sent (the first reply is in `replaced`)")
