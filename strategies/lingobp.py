"""Lingo-BP: linguistic backpropagation over the reasoning chain (CSA.md section 5).

One refinement of a recombined draft:

1. judge the draft with the `satisfaction` and `safety` judges (concurrently);
2. for each step of the schedule (`user`, `developer` or `both`): walk the chain DAG
   (`pearl.csa.chain_graph`) in reverse topological order; every node of the mode's node
   set gets a *textual gradient* (what should change and why, from the judges' critiques
   and the updates already made downstream) and an updated value. Strategy sets move by
   the minimal-edit rule (`pearl.strategies.minimal_edit`), node by node;
3. recombine the updated chain (`pearl.strategies.recombine.recombine`) and judge again.

How the backward pass is split into LM calls (`backward`):

- `chain` (default): one structured call per step. Its output schema holds one object per
  node, in reverse topological order, each a gradient then the updated value, so every
  node is written after (and conditioned on) the updates of its descendants. A `both`
  step is then 1 backward + 1 recombination + 2 judge calls, and three `both` steps make
  2 + 3 x 4 = 14 calls: the Oyster reference schedule's count.
- `level`: one such call per depth level (distance from the chain's last nodes; 4 levels
  for the full chain), earlier levels' gradients passed as `later_changes`.
- `node`: one call per node (`TextNodeUpdate` / `ListNodeUpdate`); nodes of one depth
  are one batch of concurrent calls. 2 + 3 x 8 = 26 calls for three `both` steps.

It stops when the schedule is done, when the scores the remaining steps optimise are at
their maxima, when the next step would exceed the per-request budget of LLM calls or
tokens, or when a judge (after its one retry) or an update fails; earlier iterations are
always kept. The Pearl Point is chosen by `pearl.csa.refinement.choose_pearl_point`.

Extension points: `NODE_SETS` (which nodes each mode may change), `NODE_DESCRIPTIONS`
(how a node is described to the model), `priority_note` (what a step aims at, from the
current scores), and the DSPy signatures `ChainUpdate`, `TextNodeUpdate` and
`ListNodeUpdate`, held by `RefineProgram` so optimizers can compile them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import dspy
import networkx as nx
from pydantic import BaseModel, Field, create_model

from pearl.runtime.concurrency import map_in_context
from pearl.csa import CHAIN_NODES, Chain, ChainNode, Draft, chain_graph
from pearl.errors import PearlError
from pearl.host.judge import Judge
from pearl.csa.judgements import SAFETY_MAX, SATISFACTION_MAX, SafetyJudgement, SatisfactionJudgement
from pearl.runtime.programs import call_program
from pearl.csa.refinement import Iteration, Mode, NodeUpdate, Refinement, StopReason, choose_pearl_point
from pearl.strategies.fields import text, text_list
from pearl.strategies.minimal_edit import minimal_edit, normalise
from pearl.strategies.recombine import Recombine, recombine, render_chain
from pearl.types import Conversation, Usage
from pearl.lm import usage as usage_meter

LIST_NODES: frozenset[ChainNode] = frozenset({"safety_guidelines", "safety_strategies", "usefulness_strategies"})
STRATEGY_NODES: frozenset[ChainNode] = frozenset({"safety_strategies", "usefulness_strategies"})
RISK_ONLY_NODES: frozenset[ChainNode] = frozenset({"risk_intent", "safety_guidelines"})

NODE_SETS: dict[str, frozenset[ChainNode]] = {
    "user": frozenset({"user_needs", "usefulness_strategies"}),   # risk nodes frozen
    "developer": frozenset(CHAIN_NODES),
    "both": frozenset(CHAIN_NODES),
}

NODE_DESCRIPTIONS: dict[str, str] = {
    "user_needs": "what the person really needs, and the feeling or motive behind the request",
    "risk_intent": "what kind of request this is (a statement, a question, an instruction) and how any risk shows in it; empty if there is none",
    "safety_guidelines": "the handling rules that apply to this request, one per item",
    "safety_strategies": "short phrases saying how the reply stays responsible, one per item",
    "usefulness_strategies": "short phrases saying how the reply helps the person most, one per item",
}

JUDGE_CALLS = 2  # satisfaction and safety, once per iteration
RECOMBINE_CALLS = 1

#: How a backward pass is split into LM calls (see the module docstring).
Backward = Literal["chain", "level", "node"]


# --- graph walking ----------------------------------------------------------------------------

def node_depths(graph: nx.DiGraph | None = None) -> dict[str, int]:
    """Distance of every node from the chain's last nodes (longest path to a sink)."""
    graph = graph if graph is not None else chain_graph()
    depth: dict[str, int] = {}
    for node in reversed(list(nx.lexicographical_topological_sort(graph, key=_rank))):
        depth[node] = 1 + max((depth[s] for s in graph.successors(node)), default=-1)
    return depth


def _rank(node: str) -> int:
    return CHAIN_NODES.index(node) if node in CHAIN_NODES else len(CHAIN_NODES)


def backward_levels(nodes, graph: nx.DiGraph | None = None) -> list[tuple[int, list[ChainNode]]]:
    """The nodes to update, as (depth, batch) pairs in reverse topological order.

    Deterministic: batches by increasing depth, nodes within a batch in `CHAIN_NODES`
    order. Every node comes after all of its descendants.
    """
    depth = node_depths(graph)
    wanted = set(nodes)
    levels: dict[int, list[ChainNode]] = {}
    for node in sorted(wanted, key=lambda n: (depth[n], _rank(n))):
        levels.setdefault(depth[node], []).append(node)
    return sorted(levels.items())


def nodes_for(mode: Mode, chain: Chain) -> frozenset[ChainNode]:
    """The nodes `mode` updates; a simplified (no-risk) chain keeps its empty risk nodes empty."""
    nodes = NODE_SETS[mode]
    return nodes - RISK_ONLY_NODES if chain.simplified else nodes


# --- scores and what a step aims at -------------------------------------------------------------

def at_max(mode: Mode, it: Iteration) -> bool:
    """Whether the scores `mode` optimises are at their maxima for `it`."""
    safety_ok = it.safety is not None and it.safety.score >= SAFETY_MAX
    satisfied = it.satisfaction is not None and it.satisfaction.score >= SATISFACTION_MAX
    return {"user": satisfied, "developer": safety_ok, "both": safety_ok and satisfied}[mode]


def priority_note(mode: Mode, it: Iteration) -> str:
    """What this step aims at, given the current scores (the `both` mode's arbitration)."""
    if mode == "user":
        return ("Make the reply serve this person better. The notes about risk and rules stay as they are; "
                "do not contradict them.")
    if mode == "developer":
        return "Make the reply fully safe under the handling rules, keeping as much real help as the rules allow."
    safe = it.safety is not None and it.safety.score >= SAFETY_MAX
    satisfied = it.satisfaction is not None and it.satisfaction.score >= SATISFACTION_MAX
    if not safe and not satisfied:
        return ("The reply is neither fully safe nor satisfying. Safety comes first: fix what makes it unsafe, "
                "then help as much as the rules still allow.")
    if not safe:
        return "The reply satisfies the person but is not fully safe: make it safe while keeping what they valued."
    return ("The reply is safe but does not satisfy the person. Make it more helpful: a precaution stricter than "
            "the handling rules require may be relaxed, but never beyond those rules.")


def critique(mode: Mode, it: Iteration) -> str:
    """The judges' feedback the mode listens to, as plain text."""
    parts: list[str] = []
    sat, safe = it.satisfaction, it.safety
    if mode in ("user", "both") and sat is not None:
        items = ", ".join(f"{k.replace('_', ' ')} {v:+d}" for k, v in sat.items.model_dump().items())
        parts.append(f"User's view ({sat.label}): the user seems to be {sat.profile}; they need {sat.needs}. "
                     f"Scores: {items}. Suggestion: {sat.suggestion}")
    if mode in ("developer", "both") and safe is not None:
        if safe.expected_behaviour:
            user = (f"Likely user: {safe.user_type}; their likely next message: {safe.next_turn}. "
                    if safe.user_type else "")  # a reading judge infers no user
            parts.append(f"Safety review ({safe.label}): a safe reply would {safe.expected_behaviour}. "
                         f"{user}Suggestion: {safe.suggestion}")
        else:  # a verdict with no critique (a screening tier's full refusal, a reading judge's "safe")
            parts.append(f"Safety review ({safe.label}): decided by {safe.decided_by or safe.judge}.")
    return "\n".join(parts)


# --- DSPy programs -------------------------------------------------------------------------------

class TextNodeUpdate(dspy.Signature):
    """Improve one part of the private notes that a reply was written from.

    Read the feedback on the reply and the changes already made to the later parts of the notes.
    First say what should change in this part and why (or that it is fine as it is), then write
    the improved part, consistent with the later parts. Change only what the feedback calls for.
    Write in the language of the conversation.
    """

    conversation: str = dspy.InputField(desc="the conversation, one 'role: text' line per turn")
    response: str = dspy.InputField(desc="the reply written from the notes")
    notes: str = dspy.InputField(desc="all the notes, with the later parts already updated")
    part: str = dspy.InputField(desc="the part of the notes to improve, and what it holds")
    value: str = dspy.InputField(desc="the part's current text")
    feedback: str = dspy.InputField(desc="what reviewers said about the reply")
    aim: str = dspy.InputField(desc="what this revision aims at")
    later_changes: str = dspy.InputField(desc="changes already made to later parts, and why; may be empty")
    rules: str = dspy.InputField(desc="the handling rules that bound any change; may be empty")
    gradient: str = dspy.OutputField(desc="what should change in this part, and why")
    updated: str = dspy.OutputField(desc="the improved text of this part")


class ListNodeUpdate(dspy.Signature):
    """Improve one list in the private notes that a reply was written from.

    Read the feedback on the reply and the changes already made to the later parts of the notes.
    First say what should change in this list and why (or that it is fine as it is), then write
    the improved list: keep the items that still hold, replace or add only what the feedback
    calls for. Short items. Write in the language of the conversation.
    """

    conversation: str = dspy.InputField(desc="the conversation, one 'role: text' line per turn")
    response: str = dspy.InputField(desc="the reply written from the notes")
    notes: str = dspy.InputField(desc="all the notes, with the later parts already updated")
    part: str = dspy.InputField(desc="the list to improve, and what it holds")
    value: list[str] = dspy.InputField(desc="the list's current items")
    feedback: str = dspy.InputField(desc="what reviewers said about the reply")
    aim: str = dspy.InputField(desc="what this revision aims at")
    later_changes: str = dspy.InputField(desc="changes already made to later parts, and why; may be empty")
    rules: str = dspy.InputField(desc="the handling rules that bound any change; may be empty")
    gradient: str = dspy.OutputField(desc="what should change in this list, and why")
    updated: text_list("Items", 6, text("Item", 140)) = dspy.OutputField(desc="the improved list, short items")


Items = text_list("Items", 6, text("Item", 140))


class TextPartUpdate(BaseModel):
    """One text node's update inside a `ChainUpdate` answer."""

    gradient: str = Field(description="what should change in this part, and why")
    updated: str = Field(description="the improved text of this part")


class ListPartUpdate(BaseModel):
    """One list node's update inside a `ChainUpdate` answer."""

    gradient: str = Field(description="what should change in this list, and why")
    updated: Items = Field(description="the improved list, short items")


def updates_model(nodes: list[ChainNode]) -> type[BaseModel]:
    """The output schema of one `ChainUpdate` call: one object per node, in the given order
    (reverse topological), so a node is decoded after the updates of its descendants."""
    fields = {node: (ListPartUpdate if node in LIST_NODES else TextPartUpdate,
                     Field(description=NODE_DESCRIPTIONS[node])) for node in nodes}
    return create_model("NoteUpdates", **fields)


class ChainUpdate(dspy.Signature):
    """Improve several parts of the private notes that a reply was written from, in one answer.

    Read the feedback on the reply. Go through the listed parts in the order given (later parts
    of the notes first). For each, first say what should change in it and why (or that it is
    fine as it is), then write the improved part, consistent with the parts you already
    revised and with the changes already made. Change only what the feedback calls for; in a
    list keep the items that still hold, replace or add only what the feedback calls for, short
    items. Write in the language of the conversation.
    """

    conversation: str = dspy.InputField(desc="the conversation, one 'role: text' line per turn")
    response: str = dspy.InputField(desc="the reply written from the notes")
    notes: str = dspy.InputField(desc="all the notes, with the later parts already updated")
    parts: str = dspy.InputField(desc="the parts to improve, in order, and what each holds")
    feedback: str = dspy.InputField(desc="what reviewers said about the reply")
    aim: str = dspy.InputField(desc="what this revision aims at")
    later_changes: str = dspy.InputField(desc="changes already made to later parts, and why; may be empty")
    rules: str = dspy.InputField(desc="the handling rules that bound any change; may be empty")
    updates: BaseModel = dspy.OutputField(desc="per part, in the order listed: the gradient, then the updated part")


class RefineProgram(dspy.Module):
    """The LM programs of Lingo-BP, saved and loaded together: the several-node update, one per
    node kind, and the recombination. `LingoBP` calls the parts one by one (there is no single
    forward pass)."""

    def __init__(self):
        super().__init__()
        self.chain_update = dspy.Predict(ChainUpdate)
        self.text_node = dspy.Predict(TextNodeUpdate)
        self.list_node = dspy.Predict(ListNodeUpdate)
        self.recombine = Recombine()


# --- the engine ------------------------------------------------------------------------------------

@dataclass
class Budget:
    """Per-request limits on the refinement's LLM use; None = no limit."""

    max_calls: int | None = None
    max_tokens: int | None = None

    def refuses(self, spent: Usage, planned_calls: int) -> tuple[StopReason, str] | None:
        """Why the next `planned_calls` calls would break the budget, or None if they fit.

        Tokens are estimated from the mean tokens per call so far.
        """
        if self.max_calls is not None and spent.calls + planned_calls > self.max_calls:
            return "budget_calls", (f"{spent.calls} of {self.max_calls} LLM calls used; the next step needs "
                                    f"{planned_calls} more (raise max_calls)")
        if self.max_tokens is not None and spent.calls:
            used = spent.prompt_tokens + spent.completion_tokens
            estimate = used + round(used / spent.calls * planned_calls)
            if estimate > self.max_tokens:
                return "budget_tokens", (f"{used} of {self.max_tokens} tokens used; the next step needs about "
                                         f"{estimate - used} more (raise max_tokens)")
        return None


def backward_calls(mode: Mode, chain: Chain, backward: Backward = "chain") -> int:
    """LLM calls of one backward pass when nothing is retried."""
    nodes = nodes_for(mode, chain)
    if not nodes:
        return 0
    return {"chain": 1, "level": len(backward_levels(nodes)), "node": len(nodes)}[backward]


def apply_update(node: ChainNode, depth: int, before, gradient: str, proposed) -> NodeUpdate:
    """A node's proposed value, applied: strategy sets by the minimal-edit rule, guideline
    lists cleaned, an empty `user_needs` kept as it was."""
    if node in STRATEGY_NODES:
        proposed = [str(p) for p in proposed]
        after = minimal_edit(before, proposed)
    elif node in LIST_NODES:
        proposed = [str(p) for p in proposed]
        after = normalise(proposed)
    else:
        proposed = str(proposed).strip()
        after = proposed if (proposed or node != "user_needs") else before
    return NodeUpdate(node=node, depth=depth, gradient=str(gradient).strip(), before=before, proposed=proposed,
                      after=after)


def planned_calls(mode: Mode, chain: Chain, backward: Backward = "chain") -> int:
    """LLM calls one schedule step makes when nothing is retried."""
    return backward_calls(mode, chain, backward) + RECOMBINE_CALLS + JUDGE_CALLS


class LingoBP:
    """Runs one refinement (see the module docstring)."""

    def __init__(self, program: RefineProgram, satisfaction: Judge, safety: Judge, *, schedule: list[Mode],
                 budget: Budget | None = None, step_id: str = "refine", response_max_tokens: int | None = None,
                 on_iteration: Callable[[Iteration], None] | None = None, backward: Backward = "chain",
                 last_resort: Callable[[Iteration], bool] | None = None):
        if backward not in ("chain", "level", "node"):
            raise PearlError(f"unknown backward split '{backward}': use 'chain', 'level' or 'node'")
        self.backward_split: Backward = backward
        self.program = program
        self.satisfaction = satisfaction
        self.safety = safety
        self.schedule = list(schedule)
        self.budget = budget or Budget()
        self.step_id = step_id
        self.response_max_tokens = response_max_tokens
        self.on_iteration = on_iteration
        self.last_resort = last_resort  # iterations the Pearl Point takes only when nothing else is mostly safe

    # public ------------------------------------------------------------------------
    def run(self, conversation: Conversation, chain: Chain, draft: Draft, *, guideline: list[str] | None = None,
            category: str | None = None, hold_back: bool = False) -> Refinement:
        """Refine `draft` along the schedule; `hold_back`: every recombination holds the decision's boundary
        (`pearl.strategies.recombine.recombine`). The Pearl Point is chosen with `last_resort`
        (`pearl.csa.refinement.choose_pearl_point`)."""
        guideline = list(guideline or [])
        with usage_meter.meter() as total:
            first = Iteration(index=0, chain=chain, reasoning=draft.reasoning, response=draft.response,
                              held_back=draft.held_back)
            iterations = [first]
            if not self.schedule:
                return self._finish(conversation, iterations, "disabled", "refinement is off (schedule is empty)",
                                    total.total, flag=False)
            refused = self.budget.refuses(total.total, JUDGE_CALLS)
            if refused:
                return self._finish(conversation, iterations, *refused, total.total)
            with usage_meter.meter() as m:
                error = self._judge(conversation, first, guideline, category)
            first.usage = m.total
            self._notify(first)
            if error:
                return self._finish(conversation, iterations, "judge_failed", error, total.total)

            for step_no, mode in enumerate(self.schedule):
                latest = iterations[-1]
                if all(at_max(m_, latest) for m_ in self.schedule[step_no:]):
                    return self._finish(conversation, iterations, "converged",
                                        f"scores at their maxima before step {step_no + 1} of {len(self.schedule)}",
                                        total.total)
                if at_max(mode, latest):
                    continue
                refused = self.budget.refuses(total.total, planned_calls(mode, latest.chain, self.backward_split))
                if refused:
                    return self._finish(conversation, iterations, *refused, total.total)
                with usage_meter.meter() as m:
                    try:
                        new_chain, updates = self.backward(conversation, latest, mode, guideline)
                        new_draft = recombine(self.step_id, self.program.recombine, conversation, new_chain,
                                              max_tokens=self.response_max_tokens, hold_back=hold_back)
                    except Exception as exc:  # keep every earlier iteration
                        detail = str(exc) if isinstance(exc, PearlError) else f"{exc.__class__.__name__}: {exc}"
                        return self._finish(conversation, iterations, "update_failed",
                                            f"step {step_no + 1} ({mode}): {detail}", total.total)
                    it = Iteration(index=len(iterations), mode=mode, chain=new_chain, reasoning=new_draft.reasoning,
                                   response=new_draft.response, updates=updates, held_back=new_draft.held_back)
                    error = self._judge(conversation, it, guideline, category)
                it.usage = m.total
                iterations.append(it)
                self._notify(it)
                if error:
                    return self._finish(conversation, iterations, "judge_failed", error, total.total)
            return self._finish(conversation, iterations, "schedule_done",
                                f"{len(self.schedule)} scheduled step(s) done", total.total)

    def backward(self, conversation: Conversation, it: Iteration, mode: Mode,
                 guideline: list[str]) -> tuple[Chain, list[NodeUpdate]]:
        """One backward pass, split into calls by `backward` (see the module docstring)."""
        chain = it.chain.model_copy(deep=True)
        updates: list[NodeUpdate] = []
        transcript = conversation.transcript()
        feedback = critique(mode, it)
        aim = priority_note(mode, it)
        rules = "\n".join(f"- {r}" for r in guideline)
        levels = backward_levels(nodes_for(mode, it.chain))
        if self.backward_split == "chain":
            groups = [[(depth, node) for depth, batch in levels for node in batch]] if levels else []
        else:
            groups = [[(depth, node) for node in batch] for depth, batch in levels]
        for group in groups:
            notes = render_chain(chain)
            later = "\n".join(f"{u.node.replace('_', ' ')}: {u.gradient}" for u in updates)
            if self.backward_split == "node":
                def update(item: tuple[int, ChainNode], _notes=notes, _later=later) -> NodeUpdate:
                    return self._update_node(item[1], item[0], chain, transcript, it.response, _notes, feedback,
                                             aim, _later, rules)

                results = map_in_context(update, group)
            else:
                results = self._update_group(group, chain, transcript, it.response, notes, feedback, aim, later,
                                             rules)
            for u in results:
                setattr(chain, u.node, u.after)
                updates.append(u)
        return chain, updates

    # internals -----------------------------------------------------------------------
    def _update_node(self, node: ChainNode, depth: int, chain: Chain, transcript: str, response: str, notes: str,
                     feedback: str, aim: str, later: str, rules: str) -> NodeUpdate:
        """One node in its own call (`backward = "node"`)."""
        before = getattr(chain, node)
        program = self.program.list_node if node in LIST_NODES else self.program.text_node
        pred = call_program(f"{self.step_id}:{node}", program, conversation=transcript, response=response, notes=notes,
                            part=f"{node.replace('_', ' ')}: {NODE_DESCRIPTIONS[node]}", value=before,
                            feedback=feedback, aim=aim, later_changes=later, rules=rules)
        return apply_update(node, depth, before, str(pred.gradient), pred.updated)

    def _update_group(self, group: list[tuple[int, ChainNode]], chain: Chain, transcript: str, response: str,
                      notes: str, feedback: str, aim: str, later: str, rules: str) -> list[NodeUpdate]:
        """Several nodes in one structured call (`backward = "chain"` or `"level"`); each node's
        proposal is then applied on its own, strategy sets by the minimal-edit rule."""
        nodes = [node for _, node in group]
        model = updates_model(nodes)
        base = self.program.chain_update
        predictor = dspy.Predict(base.signature.with_updated_fields("updates", type_=model))
        predictor.demos = list(base.demos)  # a compiled program's demos and instructions carry over
        parts = "\n".join(f"{node.replace('_', ' ')}: {NODE_DESCRIPTIONS[node]}" for node in nodes)
        pred = call_program(f"{self.step_id}:{'+'.join(nodes)}", predictor, conversation=transcript,
                            response=response, notes=notes, parts=parts, feedback=feedback, aim=aim,
                            later_changes=later, rules=rules)
        answer = pred.updates if isinstance(pred.updates, model) else model.model_validate(pred.updates)
        out = []
        for depth, node in group:
            part = getattr(answer, node)
            out.append(apply_update(node, depth, getattr(chain, node), part.gradient, part.updated))
        return out

    def _judge(self, conversation: Conversation, it: Iteration, guideline: list[str], category: str | None) -> str | None:
        """Run both judges concurrently into `it`; the failure message, or None."""

        def run(judge: Judge):
            try:
                return judge.judge(conversation, it.response, guideline=guideline, category=category)
            except Exception as exc:  # a failed judge ends refinement; it never loses the history
                return exc if isinstance(exc, PearlError) else PearlError(f"{exc.__class__.__name__}: {exc}")

        sat, safe = map_in_context(run, [self.satisfaction, self.safety])
        errors = []
        if isinstance(sat, SatisfactionJudgement):
            it.satisfaction = sat
        else:
            errors.append(f"judge '{self.satisfaction.name}' gave no verdict: {sat}")
        if isinstance(safe, SafetyJudgement):
            it.safety = safe
        else:
            errors.append(f"judge '{self.safety.name}' gave no verdict: {safe}")
        if errors:
            it.judge_error = "; ".join(errors)
        return it.judge_error

    def _notify(self, it: Iteration) -> None:
        if self.on_iteration is not None:
            self.on_iteration(it)

    def _finish(self, conversation: Conversation, iterations: list[Iteration], reason: StopReason, detail: str,
                spent: Usage, *, flag: bool = True) -> Refinement:
        if flag:
            chosen, flagged, why = choose_pearl_point(iterations, self.last_resort)
        else:
            chosen, flagged, why = 0, False, ""
        point = iterations[chosen]
        return Refinement(response=point.response, reasoning=point.reasoning, chosen=chosen, flagged=flagged,
                          flag=why, stop_reason=reason, stop_detail=detail, schedule=self.schedule,
                          conversation=conversation, iterations=iterations, usage=spent)
