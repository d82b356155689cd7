"""The judge contract: scoring a response to a conversation.

A judge is a subclass of `Judge`, registered with `register_judges`. Judges are the
losses of Lingo-BP (satisfaction, safety) and the scorers of evaluation (refusal).
They must be language-neutral: they judge conversations in any language.

Contract: `name` is the registry key; `uses_lm` says whether `judge` needs an active
DSPy LM (`dspy.context(lm=...)`); `judge(...)` returns a `Judgement` (or a subclass with
typed details) and raises `pearl.errors.PearlError` when no verdict can be had.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, Field

from pearl.types import Conversation


class Judgement(BaseModel):
    """One judge's verdict on one response."""

    judge: str
    score: float = Field(description="the judge's number; its range is the judge's (satisfaction [-1, 1], safety {0, .5, 1})")
    label: str = Field(description="the verdict in words, e.g. 'safe', 'mostly safe', 'full refusal'")
    suggestion: str = Field(default="", description="what would make the response better, concretely")


class Judge:
    """Base class of judges (see the module docstring)."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    uses_lm: ClassVar[bool] = True

    def judge(self, conversation: Conversation, response: str, *, guideline: list[str] | None = None,
              category: str | None = None) -> Judgement:
        raise NotImplementedError
