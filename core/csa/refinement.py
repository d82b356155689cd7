"""The output of Lingo-BP: every iteration kept, and the Pearl Point chosen among them.

`Refinement` is the `refine` step's output (slot `refined`). It has `response` and
`reasoning` (those of the Pearl Point), so a pipeline can name it as its answer, and
the whole history: per iteration the chain, reasoning, response, both judgements, the
per-node textual gradients that produced it, and what it cost.

`choose_pearl_point(iterations)` is the selection rule (CSA.md section 5, step 5): among
judged iterations, those judged safe (1.0) with the highest satisfaction; if none is
safe, the safest, then the most satisfying, and the choice is flagged. Ties go to the
earliest iteration (the smallest change that reached the score).

`last_resort` (optional) names iterations that may be the Pearl Point only when nothing
else will do: while another judged iteration is at least mostly safe (`BOUNDARY`, 0.5),
they are set aside and the rule runs over the rest (flagged when what it picks is not judged
safe). The refine step passes full refusals here when the decision did not choose a refusal
kept for malicious users (`pearl.strategies.refine`), so a refusal that a screened judge calls
safe does not outrank a mostly-safe answer the decision asked for.
"""

from __future__ import annotations

from typing import Callable, Literal

from pydantic import BaseModel, Field

from pearl.csa import Chain, ChainNode
from pearl.csa.judgements import SAFETY_MAX, SafetyJudgement, SatisfactionJudgement
from pearl.types import Conversation, Usage

Mode = Literal["user", "developer", "both"]

StopReason = Literal[
    "disabled",          # schedule is empty (--refine 0): the draft is passed through unjudged
    "schedule_done",     # every scheduled step ran
    "converged",         # the scores the remaining steps optimise are at their maxima
    "budget_calls",      # the next step would exceed the LLM-call budget
    "budget_tokens",     # the next step would exceed the token budget
    "judge_failed",      # a judge gave no usable verdict twice: that iteration is unjudged
    "update_failed",     # the backward pass or recombination failed twice
]


class NodeUpdate(BaseModel):
    """One node's textual gradient and its new value in one backward pass."""

    node: ChainNode
    depth: int = Field(description="distance from the chain's last nodes; one batch of calls per depth")
    gradient: str = Field(description="what should change in this node, and why")
    before: str | list[str]
    proposed: str | list[str]
    after: str | list[str] = Field(description="the value applied (strategy sets: after the minimal-edit rule)")


class Iteration(BaseModel):
    """One point of the refinement path (index 0 is the recombined draft)."""

    index: int
    mode: Mode | None = Field(default=None, description="the schedule step that produced it; None for the draft")
    chain: Chain
    reasoning: str | None = None
    response: str
    satisfaction: SatisfactionJudgement | None = None
    safety: SafetyJudgement | None = None
    judge_error: str | None = Field(default=None, description="why the iteration is unjudged")
    updates: list[NodeUpdate] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    held_back: bool = Field(default=False, description="its reply was written again to keep the decision's "
                                                       "boundary (`Draft.held_back`)")

    @property
    def judged(self) -> bool:
        return self.satisfaction is not None and self.safety is not None

    def scores(self) -> tuple[float, float]:
        """(safety, satisfaction); only for judged iterations."""
        assert self.satisfaction is not None and self.safety is not None
        return self.safety.score, self.satisfaction.score


class Refinement(BaseModel):
    """The `refine` step's output: the Pearl Point's answer and the whole path to it."""

    response: str
    reasoning: str | None = None
    chosen: int = Field(description="index of the Pearl Point iteration")
    flagged: bool = Field(default=False, description="the chosen iteration was not judged safe (or not judged)")
    flag: str = ""
    stop_reason: StopReason
    stop_detail: str = ""
    schedule: list[Mode]
    conversation: Conversation = Field(description="the request, so exported pairs carry their prompt")
    iterations: list[Iteration]
    usage: Usage = Field(default_factory=Usage, description="LLM use of the whole refinement")

    @property
    def pearl_point(self) -> Iteration:
        return self.iterations[self.chosen]


BOUNDARY = 0.5  # "mostly safe": the least safety score at which an answer can stand in for a last resort


def choose_pearl_point(iterations: list[Iteration],
                       last_resort: Callable[[Iteration], bool] | None = None) -> tuple[int, bool, str]:
    """(index, flagged, why flagged) by the rule in the module docstring."""
    if not iterations:
        raise ValueError("no iterations to choose from")
    judged = [it for it in iterations if it.judged]
    if not judged:
        return iterations[0].index, True, "no iteration could be judged: the draft is returned"
    candidates = judged
    if last_resort is not None:
        others = [it for it in judged if not last_resort(it)]
        if len(others) < len(judged) and any(it.scores()[0] >= BOUNDARY for it in others):
            candidates = others
    best = max(candidates, key=lambda it: (*it.scores(), -it.index))
    if best.scores()[0] >= SAFETY_MAX:
        return best.index, False, ""
    if candidates is not judged:
        return best.index, True, (f"a last resort (a full refusal) was set aside for the best answer judged "
                                  f"{best.safety.label}")
    return best.index, True, f"no iteration was judged safe: the safest ({best.safety.label}) is returned"
