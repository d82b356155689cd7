"""The `refine` step: Lingo-BP over the drafted chain, answering at the Pearl Point.

Reads `conversation`, `chain` (Chain), `draft` (Draft, the recombined chain) and
`assessment` (RiskAssessment: the category and its guideline bound the safety judge
and every update); writes `refined` (`pearl.csa.refinement.Refinement`), which a pipeline
names as its answer (`answer = "refined"`).

Parameters (TOML, `[steps.refine]`):
    schedule            modes per step, default ["both", "both", "both"]; [] disables
    backward            how a backward pass is split into LM calls: "chain" (default, one
                        structured call per step: three `both` steps in 14 calls), "level"
                        (one per depth level) or "node" (one per node: 26 calls)
    max_calls           per-request budget of LLM calls for the refinement (None = none)
    max_tokens          per-request budget of prompt + completion tokens (None = none)
    response_max_tokens upper bound on each recombined response's tokens
    satisfaction_judge  registered judge used as the satisfaction loss ("satisfaction")
    safety_judge        registered judge used as the safety loss ("safety")
    hold_back           hold the decision's boundary on every recombination, as the `recombine`
                        step's parameter of that name does (reads the `decision` slot too)
    refusal_last_resort unless the decision's strategy is one the library keeps for malicious
                        users (`fallback_for == ("malicious",)`, the built-in `firm_refusal`), a
                        reply the refusal classifier is sure refuses in full is the Pearl Point
                        only when no other iteration is judged at least mostly safe
                        (`pearl.csa.refinement.choose_pearl_point`'s `last_resort`; reads the
                        `decision` slot); off: the method's rule as written

The judges are looked up on the plugin host, so a plugin can swap either loss; they run
on the step's LM (the pipeline's `lm` role for this step). The budget counts the calls
and tokens of this step only (judging, backward passes, recombination); before each
schedule step it checks that the step's planned calls (backward calls + 1 recombination
+ 2 judges) fit, estimating tokens from the mean per call so far, and otherwise stops with
`stop_reason` "budget_calls" / "budget_tokens" and a detail saying what to raise. A step
in progress is finished, so retries can overrun the budget by a few calls.
"""

from __future__ import annotations

from typing import Callable

from pydantic import BaseModel, ConfigDict, Field

from pearl.csa import Chain, Decision, Draft, RiskAssessment
from pearl.host.hookspecs import hookimpl
from pearl.csa.refinement import Iteration, Mode, Refinement
from pearl.host.step import Step
from pearl.strategies.boundary import declines, withholds
from pearl.strategies.lingobp import Backward, Budget, LingoBP, RefineProgram
from pearl.types import Conversation

DEFAULT_SCHEDULE: tuple[Mode, ...] = ("both", "both", "both")


class RefineParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schedule: list[Mode] = Field(default_factory=lambda: list(DEFAULT_SCHEDULE))
    backward: Backward = Field(default="chain", description="LM calls per backward pass: one ('chain'), one per "
                                                            "depth level ('level') or one per node ('node')")
    max_calls: int | None = Field(default=60, gt=0)
    max_tokens: int | None = Field(default=None, gt=0)
    response_max_tokens: int | None = Field(default=None, gt=0)
    satisfaction_judge: str = "satisfaction"
    safety_judge: str = "safety"
    hold_back: bool = Field(default=False, description="when the decision declines a request that may be meant to "
                                                       "harm, a recombined reply that carries it out in full is "
                                                       "written again (reads `decision`; pearl.strategies.boundary)")
    refusal_last_resort: bool = Field(default=False, description="unless the decision is a strategy kept for "
                                      "malicious users, a sure full refusal is the Pearl Point only when no other "
                                      "iteration is judged at least mostly safe (reads `decision`)")


class RefineStep(Step):
    name = "refine"
    description = "Lingo-BP: judge, back-propagate critiques through the chain, recombine; answer at the Pearl Point"
    Params = RefineParams
    inputs = {"conversation": Conversation, "chain": Chain, "draft": Draft, "assessment": RiskAssessment}
    output = ("refined", Refinement)

    def __init__(self, params: RefineParams, context):
        super().__init__(params, context)
        self.program = RefineProgram()
        judges = context.host.registries["judges"]
        self.satisfaction = judges.get(params.satisfaction_judge)()
        self.safety = judges.get(params.safety_judge)()
        if params.hold_back or params.refusal_last_resort:
            self.inputs = {**RefineStep.inputs, "decision": Decision}

    def engine(self, last_resort: Callable[[Iteration], bool] | None = None) -> LingoBP:
        p: RefineParams = self.params  # type: ignore[assignment]
        return LingoBP(self.program, self.satisfaction, self.safety, schedule=p.schedule,
                       budget=Budget(max_calls=p.max_calls, max_tokens=p.max_tokens), step_id=self.context.step_id,
                       response_max_tokens=p.response_max_tokens, backward=p.backward, last_resort=last_resort)

    def run(self, state) -> Refinement:
        assessment: RiskAssessment = state.get("assessment")  # type: ignore[assignment]
        hold_back = self.params.hold_back and declines(state.get("decision"), assessment)
        last_resort = None
        if self.params.refusal_last_resort and not for_malicious_users(state.get("decision")):
            prompt = state.conversation.last_user_message
            last_resort = lambda it: withholds(it.response, prompt)  # noqa: E731
        return self.engine(last_resort).run(state.conversation, state.get("chain"), state.get("draft"),
                                            guideline=assessment.guideline, category=assessment.category,
                                            hold_back=hold_back)


def for_malicious_users(decision: Decision) -> bool:
    """The decision's strategy is one the library keeps for malicious users (the built-in `firm_refusal`)."""
    return decision.chosen is not None and decision.chosen.for_malicious_only


@hookimpl
def register_steps(register):
    register(RefineStep)
