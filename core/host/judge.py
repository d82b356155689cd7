"""The judge contract: scoring a response to a conversation.

A judge is a subclass of `Judge`, registered with `register_judges`. Judges are the
losses of Lingo-BP (satisfaction, safety) and the scorers of evaluation (refusal).
They must be language-neutral: they judge conversations in any language.

Contract: `name` is the registry key; `uses_lm` says whether `judge` needs an active
DSPy LM (`dspy.context(lm=...)`); `judge(...)` returns a `Judgement` (or a subclass with
typed details) and raises `pearl.errors.PearlError` when no verdict can be had.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, Field

from pearl.traces import semconv as sc
from pearl.traces.attributes import Event, evaluation_event
from pearl.types import Conversation


class Judgement(BaseModel):
    """One judge's verdict on one response."""

    judge: str
    score: float = Field(description="the judge's number; its range is the judge's (satisfaction [-1, 1], safety {0, .5, 1})")
    label: str = Field(description="the verdict in words, e.g. 'safe', 'mostly safe', 'full refusal'")
    suggestion: str = Field(default="", description="what would make the response better, concretely")

    # --- on its step's span (the `pearl.traces.attributes.SpanDescribed` protocol) ---
    span_kind: ClassVar[str] = sc.KIND_EVALUATOR
    span_namespace: ClassVar[str] = sc.PEARL_JUDGEMENT  # events get `.path` inside an output, the span `.count`

    def span_attributes(self, content: bool) -> dict[str, Any]:
        """`pearl.judgement.<judge>.score` / `.label` (a later verdict of the same judge overrides)."""
        prefix = f"{sc.PEARL_JUDGEMENT}.{self.judge}"
        return {f"{prefix}.score": float(self.score), f"{prefix}.label": self.label}

    def span_events(self, content: bool) -> list[Event]:
        """One evaluation named after the judge; the suggestion (free text) only with content on."""
        return [evaluation_event(self.judge, self.score, self.label, self.suggestion if content else None)]


class Judge:
    """Base class of judges (see the module docstring)."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    uses_lm: ClassVar[bool] = True

    def judge(self, conversation: Conversation, response: str, *, guideline: list[str] | None = None,
              category: str | None = None) -> Judgement:
        raise NotImplementedError
