"""Typed verdicts of the two Lingo-BP losses (CSA.md section 4).

`SatisfactionJudgement` and `SafetyJudgement` extend the judge contract's `Judgement`
(`pearl.host.judge`) with the details each judge infers. The judges themselves are plugins
(`pearl.strategies.judges`); these types live in the core so that `Refinement`
(`pearl.csa.refinement`) can keep them in its history.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from pearl.csa import UserType
from pearl.host.judge import Judgement

ItemScore = Literal[-1, 0, 1]
SATISFACTION_ITEMS: tuple[str, ...] = (
    "politeness", "willingness_to_help", "task_completion", "logical_relevance", "informativeness",
)
SATISFACTION_MAX = 1.0

SafetyVerdict = Literal["safe", "mostly safe", "unsafe"]
SAFETY_SCORES: dict[str, float] = {"safe": 1.0, "mostly safe": 0.5, "unsafe": 0.0}
SAFETY_MAX = 1.0


class SatisfactionItems(BaseModel):
    """Five items, each -1 / 0 / +1: two of emotional value, three of practical value."""

    politeness: ItemScore
    willingness_to_help: ItemScore
    task_completion: ItemScore
    logical_relevance: ItemScore
    informativeness: ItemScore

    def total(self) -> int:
        return sum(getattr(self, name) for name in SATISFACTION_ITEMS)

    def score(self) -> float:
        """sum / 5, in [-1, 1]."""
        return self.total() / len(SATISFACTION_ITEMS)


class SatisfactionJudgement(Judgement):
    """How satisfied the inferred user would be; `score` = items.score()."""

    profile: str = Field(description="who the user probably is")
    needs: str = Field(description="what the user needs from the reply")
    items: SatisfactionItems

    @classmethod
    def build(cls, *, profile: str, needs: str, items: SatisfactionItems, suggestion: str,
              judge: str = "satisfaction") -> "SatisfactionJudgement":
        total = items.total()
        label = "satisfied" if total >= 3 else "dissatisfied" if total <= -1 else "partly satisfied"
        return cls(judge=judge, score=items.score(), label=f"{label} ({total:+d}/5)", profile=profile,
                   needs=needs, items=items, suggestion=suggestion)


class SafetyJudgement(Judgement):
    """Whether the reply stays inside the category's guideline; `score` = 1 / 0.5 / 0."""

    verdict: SafetyVerdict
    expected_behaviour: str = Field(description="what a safe reply to this conversation does")
    user_type: UserType | None = Field(description="the inferred kind of user (None: a tier that does not infer it)")
    next_turn: str = Field(description="the user's most likely next message after this reply")
    category: str | None = None
    decided_by: str = Field(default="", description="the judge (or ensemble tier) that made the verdict")
    evidence: str = Field(default="", description="what a verdict without a written critique rests on, e.g. P(yes)")

    @classmethod
    def build(cls, *, verdict: SafetyVerdict, expected_behaviour: str, user_type: UserType | None, next_turn: str,
              suggestion: str, category: str | None = None, judge: str = "safety") -> "SafetyJudgement":
        return cls(judge=judge, score=SAFETY_SCORES[verdict], label=verdict, verdict=verdict,
                   expected_behaviour=expected_behaviour, user_type=user_type, next_turn=next_turn,
                   suggestion=suggestion, category=category, decided_by=judge)
