"""Executes a compiled pipeline on one conversation.

Steps whose dependencies are done run concurrently on a thread pool; each runs in a
copy of the caller's context with its LM role bound through `dspy.context`, a usage
meter, and the `step_started` / `step_finished` observer hooks around it. The run and
each step are OpenTelemetry spans (`pearl.traces.spans`); workers inherit the span.
"""

from __future__ import annotations

import copy
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Iterable, Mapping

import dspy

from pearl.lm import usage
from pearl.lm.metered import instrument
from pearl.runtime.concurrency import submit_in_context
from pearl.errors import InputError, PearlError, StepError, StepInputError
from pearl.runtime.pipeline import Pipeline
from pearl.host.step import RunState
from pearl.traces import spans as tracing
from pearl.types import Conversation, Result, StepRecord, type_name


class Runner:
    """Runs `pipeline` with the LMs given per role (`task`, and optionally `judge`).

    Each `dspy.BaseLM` is wrapped once in `pearl.lm.metered.MeteredLM` (`instrument`), so
    every LM call is metered and traced; `lms` holds the wrapped ones (anything else, such
    as a placeholder for a pipeline whose steps call no LM, is kept as given).
    """

    def __init__(self, pipeline: Pipeline, lms: dict[str, Any], host, *, max_workers: int | None = None,
                 backend_name: str | None = None):
        if "task" not in lms:
            raise ValueError("Runner needs at least the 'task' LM")
        self.pipeline = pipeline
        self.lms = {role: instrument(lm) if isinstance(lm, dspy.BaseLM) else lm for role, lm in lms.items()}
        self.lms.setdefault("judge", self.lms["task"])
        self.host = host
        self.max_workers = max_workers or max(1, min(8, len(pipeline.steps)))
        self.backend_name = backend_name
        self.adapter = dspy.JSONAdapter()

    def run(self, conversation: Conversation, *, run_id: str | None = None) -> Result:
        run_id = run_id or uuid.uuid4().hex
        with tracing.run_span(self.pipeline.name, run_id, conversation, backend=self.backend_name,
                              model=getattr(self.lms["task"], "model", None)) as span:
            result = self._run(conversation, run_id)
            tracing.record_run(span, result)
            return result

    def _run(self, conversation: Conversation, run_id: str) -> Result:
        state = RunState(conversation)
        records: dict[str, StepRecord] = {}
        start = time.perf_counter()
        graph = self.pipeline.graph
        remaining = {n: set(graph.predecessors(n)) for n in graph.nodes}
        running: dict[Future, str] = {}

        with usage.meter() as run_meter, ThreadPoolExecutor(self.max_workers, thread_name_prefix="pearl-step") as pool:
            def launch_ready() -> None:
                ready = sorted(n for n, deps in remaining.items() if not deps and n not in running.values())
                for step_id in ready:
                    del remaining[step_id]
                    running[submit_in_context(pool, self._run_step, run_id, step_id, state, start)] = step_id

            launch_ready()
            while running:
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: running[f]):
                    step_id = running.pop(future)
                    try:
                        record, output = future.result()
                    except BaseException:
                        for other in running:
                            other.cancel()
                        raise
                    state.set(record.slot, output)
                    records[step_id] = record
                    for deps in remaining.values():
                        deps.discard(step_id)
                launch_ready()

        answer = state.get(self.pipeline.spec.answer)
        ordered = {sid: records[sid] for sid in self.pipeline.order()}
        return Result(
            pipeline=self.pipeline.name,
            response=getattr(answer, "response"),
            reasoning=getattr(answer, "reasoning", None),
            steps=ordered,
            usage=run_meter.total,
            seconds=time.perf_counter() - start,
            backend=self.backend_name,
            model=getattr(self.lms["task"], "model", None),
            metadata={"run_id": run_id},
        )

    def run_steps(self, state: RunState, step_ids: Iterable[str], *, run_id: str | None = None,
                  programs: Mapping[str, Any] | None = None) -> dict[str, StepRecord]:
        """Run a sub-graph of the pipeline on `state`; the executor optimizers reuse.

        `step_ids` run in pipeline order, one after another in the calling thread (so an
        optimizer's DSPy trace sees every call), each exactly as in `run`: observer hooks,
        step span, usage meter, `StepError` wrapping. `state` must already hold the inputs
        they read from steps outside the sub-graph; their outputs are written into it.
        `programs` swaps the DSPy program of the named steps for this call (an optimizer's
        candidate); those steps run on the caller's LM (`dspy.settings.lm`, which the
        optimizer chooses), the others on their role's LM. Returns the step records.
        """
        run_id = run_id or uuid.uuid4().hex
        wanted, programs = set(step_ids), dict(programs or {})
        start = time.perf_counter()
        records: dict[str, StepRecord] = {}
        for step_id in self.pipeline.order():
            if step_id not in wanted:
                continue
            step, lm = self.pipeline.steps[step_id], None
            if step_id in programs:
                step = copy.copy(step)
                step.program, lm = programs[step_id], dspy.settings.lm
                if isinstance(lm, dspy.BaseLM):
                    lm = instrument(lm)  # metered like the roles' LMs, whoever made it
            record, output = self._run_step(run_id, step_id, state, start, step=step, lm=lm)
            state.set(record.slot, output)
            records[step_id] = record
        return records

    def _run_step(self, run_id: str, step_id: str, state: RunState, run_start: float, *,
                  step: Any = None, lm: Any = None):
        step = step or self.pipeline.steps[step_id]
        spec = self.pipeline.spec.steps[step_id]
        entry = self.host.registries["steps"].entries.get(spec.use)
        with tracing.step_span(step_id, spec.use, run_id=run_id, plugin=entry.plugin if entry else None,
                               params=step.params, program=step.compiled_from, output_type=step.output_type,
                               inputs={slot: state.get(slot) for slot in step.inputs if slot in state}) as span:
            record, output = self._run_step_body(run_id, step_id, state, run_start, step=step, lm=lm)
            tracing.record_step(span, output, record.usage)
            return record, output

    def _run_step_body(self, run_id: str, step_id: str, state: RunState, run_start: float, *,
                       step: Any = None, lm: Any = None):
        step = step or self.pipeline.steps[step_id]
        spec = self.pipeline.spec.steps[step_id]
        notify = self.host.notify  # observers: each isolated, never masking the step's result or error
        notify("step_started", run_id=run_id, step_id=step_id, use=spec.use)
        t0 = time.perf_counter()
        output = None
        error: BaseException | None = None
        try:
            with usage.meter() as step_meter, dspy.context(lm=lm or self.lms[spec.lm], adapter=self.adapter):
                output = step.run(state)
            if not isinstance(output, step.output_type):
                raise StepError(step_id, f"returned {type(output).__name__}, expected {step.output_type.__name__}")
        except StepError as exc:
            error = exc
            raise
        except InputError as exc:  # the step's input (a prompt too long for the model): named, still an InputError
            error = StepInputError(step_id, str(exc))
            raise error from exc
        except PearlError as exc:
            error = StepError(step_id, str(exc))
            raise error from exc
        except Exception as exc:
            error = StepError(step_id, f"{exc.__class__.__name__}: {exc}")
            raise error from exc
        finally:
            seconds = time.perf_counter() - t0
            notify("step_finished", run_id=run_id, step_id=step_id, use=spec.use, output=output, seconds=seconds,
                   error=error)
        record = StepRecord(
            step=step_id,
            use=spec.use,
            slot=step.output_slot,
            type=type_name(step.output_type),
            output=output.model_dump(mode="json"),
            started=t0 - run_start,
            seconds=seconds,
            usage=step_meter.total,
            program=step.compiled_from,
        )
        return record, output
