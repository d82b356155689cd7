"""The answer a run would have given without Lingo-BP, rebuilt from its record.

A `refine` step keeps every iteration (`pearl.csa.Refinement`); its first is the recombined reply
before any refinement. `unrefined_record` makes the record's twin: the refinement's Pearl Point
moved to that first iteration, the steps after `refine` (in `csa`, the help-lines check; no LM)
run again on it exactly as the pipeline ran them, the judges' verdicts dropped so that the
caller judges the twin afresh, and the cost that of the steps before refinement. Judging both
with the same judges is then a paired measure of what refinement changed, for the judges' cost
only (`pearl bench quality --unrefined`). `rechosen_record` makes the same kind of twin for any
iteration, at the whole run's cost: what another Pearl-Point rule would have answered from the same
iterations (`tests/bench/pearl_point_replay.py --write`).

Contract: the record must come from the pipeline of `runner` (its steps' outputs are read back
with the types those steps declare); a record with no `Refinement` output, or whose refinement
holds no iteration, has no twin (None).
"""

from __future__ import annotations

import networkx as nx

from pearl.csa.refinement import Refinement
from pearl.evaluation.quality import Quality, compute
from pearl.host.step import RunState
from pearl.io.results import ResultRecord, Timings
from pearl.types import Usage, type_name

SUFFIX = "@0"  # the twin column's name: the pipeline's label plus this


def refine_step(record: ResultRecord) -> str | None:
    """The id of the record's step that wrote a `Refinement`, if any."""
    if record.result is None:
        return None
    wanted = (type_name(Refinement), Refinement.__name__)
    return next((sid for sid, rec in record.result.steps.items() if rec.type in wanted), None)


def unrefined_record(record: ResultRecord, runner) -> ResultRecord | None:
    """The twin of `record` answered by its refinement's first iteration (see the module docstring)."""
    return rechosen_record(record, runner, 0, refined=False)


def rechosen_record(record: ResultRecord, runner, index: int, *, refined: bool = True) -> ResultRecord | None:
    """The twin of `record` whose refinement answers with its iteration `index` instead of the Pearl Point it
    chose, the steps after `refine` run again on it and the judges' verdicts dropped. `refined`: the twin's cost
    is the whole run's (another choice among the same iterations); else that of the steps before refinement,
    and the twin is marked as the answer without refinement (`unrefined_record`)."""
    step_id = refine_step(record)
    if record.status != "ok" or step_id is None:
        return None
    result = record.result
    refinement = Refinement.model_validate(result.steps[step_id].output)
    point = next((it for it in refinement.iterations if it.index == index), None)
    if point is None:
        return None
    pipeline = runner.pipeline
    after = nx.descendants(pipeline.graph, step_id)
    kept = {sid: rec for sid, rec in result.steps.items() if sid != step_id and sid not in after}
    state = RunState(record.conversation)
    for sid, rec in kept.items():
        state.set(rec.slot, pipeline.steps[sid].output[1].model_validate(rec.output))
    detail = (f"answer moved from iteration {refinement.chosen} to {point.index} of {len(refinement.iterations)}"
              if refined else f"twin without refinement: iteration {point.index} of {len(refinement.iterations)}")
    twin_refinement = refinement.model_copy(update={
        "response": point.response, "reasoning": point.reasoning, "chosen": point.index, "stop_detail": detail})
    state.set(result.steps[step_id].slot, twin_refinement)
    rerun = runner.run_steps(state, after, run_id=f"{result.metadata.get('run_id', record.id)}{SUFFIX}")
    answer = state.get(pipeline.spec.answer)
    twin_step = result.steps[step_id].model_copy(update={"output": twin_refinement.model_dump(mode="json")})
    if not refined:
        twin_step = twin_step.model_copy(update={"usage": Usage(), "seconds": 0.0})
    spent = [*kept.values(), twin_step, *rerun.values()]
    usage = Usage()
    for rec in spent:
        usage = usage.add(rec.usage)
    seconds = sum(rec.seconds for rec in spent)
    steps = {sid: twin_step if sid == step_id else rec for sid, rec in result.steps.items() if sid not in after}
    steps.update(rerun)
    metadata = {**result.metadata, "rechosen_from" if refined else "unrefined_of":
                refinement.chosen if refined else record.pipeline}
    twin = result.model_copy(update={"response": getattr(answer, "response"),
                                     "reasoning": getattr(answer, "reasoning", None), "steps": steps,
                                     "usage": usage, "seconds": seconds, "metadata": metadata})
    return record.model_copy(update={"result": twin, "judgements": {}, "judge_errors": {}, "judge_category": None,
                                     "judge_category_source": None,
                                     "timings": Timings(pipeline_s=seconds, total_s=seconds)})


def refinement_effect(label: str, refined: list[ResultRecord], twins: list[ResultRecord], *, n_boot: int = 1000,
                      seed: int = 0) -> tuple[list[Quality], int]:
    """The figures of the twins (`label` + SUFFIX) and of the refined answers paired against them, and how
    many replies refinement changed, over the items both lists hold."""
    before = {t.id: t.result.response for t in twins if t.result is not None}
    changed = sum(r.result is not None and r.id in before and r.result.response != before[r.id] for r in refined)
    twin_label = f"{label}{SUFFIX}"
    pair = [compute(twin_label, twins, n_boot=n_boot, seed=seed),
            compute(label, refined, n_boot=n_boot, seed=seed, reference=(twin_label, twins))]
    return pair, changed
