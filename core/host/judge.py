"""The judge contract: scoring a response to a conversation.

A judge is a subclass of the abstract base class `Judge`, registered with
`register_judges` (`register(MyJudge)`). Judges are the losses of Lingo-BP (satisfaction,
safety) and the scorers of evaluation (refusal). They must be language-neutral: they
judge conversations in any language.

What a subclass must provide::

    name         the registry key (`pearl eval --judges NAME`, or a step parameter such
                 as `satisfaction_judge = "NAME"`)
    judge(conversation, response, *, guideline=None, category=None) -> Judgement
                 the verdict on `response` as the answer to `conversation`; a subclass
                 may return a `Judgement` subclass with typed details

What it may provide: `description` (one line, shown by `pearl plugins`) and `uses_lm`
(False for a judge that never calls a language model; default True).

What it may assume:

- The class is instantiated with no arguments, once per evaluation or per step using it,
  in the thread that builds it; `__init__` may build DSPy programs, not call an LM.
- `judge` runs inside `dspy.context(lm=<the judge LM>)` when `uses_lm` is True (the
  caller sets it: evaluation's judge LM, or the judging step's LM), and may be called from
  several threads at once, so it keeps no per-call state on `self`.
- `guideline` and `category` are the safety rules and risk category the pipeline's
  assessment found (or a categoriser chose); None when there are none.
- When no verdict can be had (the LM's answer cannot be parsed, say), raise
  `pearl.errors.PearlError` naming why; callers record the error and go on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
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
    model: str = Field(default="", description="what made the verdict: the judge LM's model, a weights file, 'rules'")

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


class Judge(ABC):
    """Base class of judges (see the module docstring for the contract)."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    uses_lm: ClassVar[bool] = True

    @abstractmethod
    def judge(self, conversation: Conversation, response: str, *, guideline: list[str] | None = None,
              category: str | None = None) -> Judgement:
        """The verdict on `response` as the answer to `conversation`; raise `PearlError` when there is none."""
