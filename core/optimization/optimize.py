"""Compiling pipeline steps with DSPy optimizers (the engine behind `pearl optimize`).

`PipelineProgram` is the optimizable view of a pipeline: a `dspy.Module` whose only
parameters are the programs of the target steps (`self.programs[step_id]`), and whose
`forward(conversation)` runs those steps as the pipeline would. Steps upstream of the
targets run once per conversation with their current programs and are cached (they
do not depend on what is being optimized); steps after the targets run live when the
metric judges the final answer. The prediction carries every run-state slot by name
plus the fields of the scored output (the target's, or the answer's).

`optimize(...)` evaluates the uncompiled program on the valset, compiles it with
BootstrapFewShot, MIPROv2 or GEPA under a budget, evaluates the result, and writes the
compiled folder (`pearl.runtime.compiled`). Scores (`score_program`) are written as they go
to `<out>/<name>.<before|after>.jsonl` and resumed from there (rows are tied to a hash of
the program state, so a changed program is scored again).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import dspy
import networkx as nx

from pearl.runtime.compiled import (
    CompiledManifest,
    CompiledStep,
    ProgramStamp,
    count_demos,
    dependency_versions,
    read_manifest,
    save_program,
    signature_fingerprint,
    write_manifest,
)
from pearl.io.conversations import to_conversation
from pearl.io.jsonl import JsonlAppender, latest_by, parsed
from pearl.errors import InputError, PearlError, PipelineError
from pearl.optimization.metrics import Metric, as_gepa_metric
from pearl.runtime.pipeline import Pipeline
from pearl.host.step import RunState
from pearl.runtime.runner import Runner

OPTIMIZERS: tuple[str, ...] = ("bootstrap", "mipro", "gepa")
AUTO_LEVELS = ("light", "medium", "heavy")


class _Shared:
    """Held by reference through DSPy's deep copies of a module (pipeline, caches, LMs)."""

    def __init__(self, **values: Any):
        self.__dict__.update(values)

    def __deepcopy__(self, memo):
        return self


def _key(conversation) -> str:
    return conversation.model_dump_json()


class PipelineProgram(dspy.Module):
    """The target steps of `pipeline` as one optimizable module (see the module docstring).

    Steps run through `pearl.runtime.runner.Runner.run_steps`, the pipeline's one
    executor: observer hooks, spans and `StepError` wrapping apply as in `pearl run`.
    `host` is the plugin host the pipeline was loaded with (default: its steps' host).
    """

    def __init__(self, pipeline: Pipeline, targets: list[str], lms: dict[str, Any], *, score_answer: bool,
                 host=None):
        super().__init__()
        order = pipeline.order()
        unknown = [t for t in targets if t not in pipeline.steps]
        if unknown:
            raise InputError(
                f"pipeline '{pipeline.name}' has no step '{unknown[0]}': its steps are {', '.join(order)} (or --step all)"
            )
        for t in targets:
            if getattr(pipeline.steps[t], "program", None) is None:
                raise InputError(f"step '{t}' ({pipeline.steps[t].name}) has no DSPy program to optimize: pick an LM step")
        graph = pipeline.graph
        needed = set(targets)
        for t in targets:
            needed |= nx.ancestors(graph, t)
        downstream = set(targets)
        for t in targets:
            downstream |= nx.descendants(graph, t)
        answer_writer = next(s for s, st in pipeline.steps.items() if st.output_slot == pipeline.spec.answer)
        if score_answer:
            if answer_writer not in downstream:
                raise InputError(
                    f"the answer of pipeline '{pipeline.name}' (step '{answer_writer}') does not depend on "
                    f"{', '.join(targets)}: judging it cannot guide this optimization; use a step metric (--metric)"
                )
            needed |= {answer_writer} | nx.ancestors(graph, answer_writer)
        self.programs = {t: pipeline.steps[t].program for t in targets}
        primary = pipeline.steps[answer_writer if score_answer else targets[-1]].output_slot
        if host is None:
            host = next(iter(pipeline.steps.values())).context.host
        self._shared = _Shared(
            runner=Runner(pipeline, lms, host),
            targets=list(targets),
            before=[s for s in order if s in needed and s not in downstream],
            live=[s for s in order if s in needed and s in downstream],
            primary=primary,
            cache={},
        )

    # -- upstream cache ---------------------------------------------------------------
    def prepare(self, conversations, advance: Callable[[], None] = lambda: None) -> None:
        """Run the cached upstream steps once for each conversation (outside any optimizer trace)."""
        for conversation in conversations:
            self._upstream(to_conversation(conversation))
            advance()

    def _upstream(self, conversation) -> RunState:
        shared = self._shared
        key = _key(conversation)
        if key not in shared.cache:
            state = RunState(conversation)
            with dspy.context(trace=None):
                shared.runner.run_steps(state, shared.before)
            shared.cache[key] = state
        cached = shared.cache[key]
        state = RunState(conversation)
        for slot in cached.slots():
            if slot != "conversation":
                state.set(slot, cached.get(slot))
        return state

    # -- forward ------------------------------------------------------------------------
    def forward(self, conversation, **_ignored) -> dspy.Prediction:
        shared = self._shared
        state = self._upstream(to_conversation(conversation))
        # the optimizer decides the LM of the programs it optimizes (teacher, rollouts)
        shared.runner.run_steps(state, shared.live, programs=self.programs)
        values: dict[str, Any] = {s: state.get(s) for s in state.slots() if s != "conversation"}
        primary = state.get(shared.primary)
        values.update({name: getattr(primary, name) for name in type(primary).model_fields})
        return dspy.Prediction(**values)


# --- budgets and optimizers ----------------------------------------------------------------

@dataclass
class Budget:
    """How much an optimizer may spend.

    max_metric_calls: GEPA's budget as is; for bootstrap, at most this many training
      examples are tried; for MIPROv2, trials = max(1, calls // len(valset) - 1).
    auto: the optimizer's own level (MIPROv2, GEPA); excludes max_metric_calls for GEPA.
    """

    max_metric_calls: int | None = None
    auto: str | None = None
    max_demos: int = 2
    num_candidates: int = 2
    num_trials: int | None = None
    threshold: float | None = None
    seed: int = 0

    def check(self, optimizer: str) -> None:
        if self.auto is not None and self.auto not in AUTO_LEVELS:
            raise InputError(f"--auto {self.auto}: choose one of {', '.join(AUTO_LEVELS)}")
        if self.max_metric_calls is not None and self.max_metric_calls < 1:
            raise InputError("--max-metric-calls must be at least 1")
        if self.max_demos < 0:
            raise InputError(f"--max-demos {self.max_demos}: give 0 or more demos per predictor")
        if self.num_candidates < 1:
            raise InputError(f"--num-candidates {self.num_candidates}: give at least 1 candidate")
        if self.num_trials is not None and self.num_trials < 1:
            raise InputError(f"--num-trials {self.num_trials}: give at least 1 trial")
        if self.threshold is not None and not math.isfinite(self.threshold):
            raise InputError(f"--threshold {self.threshold}: give a finite metric score")
        if not 0 <= self.seed < 2**32:
            raise InputError(f"--seed {self.seed}: give a whole number from 0 to {2**32 - 1}")
        if optimizer == "gepa" and self.auto is None and self.max_metric_calls is None:
            raise InputError("GEPA needs a budget: pass --max-metric-calls N or --auto light|medium|heavy")
        if optimizer == "gepa" and self.auto is not None and self.max_metric_calls is not None:
            raise InputError("GEPA takes one budget: --max-metric-calls or --auto, not both")
        if optimizer == "bootstrap" and self.auto is not None:
            raise InputError("bootstrap has no --auto levels: cap it with --max-metric-calls")


def _counting(metric: Metric, advance: Callable[[], None]) -> Metric:
    """The same metric, calling `advance()` after every score (drives the progress bar)."""

    class Counting(Metric):
        name, low, high, threshold, labels = metric.name, metric.low, metric.high, metric.threshold, metric.labels

        def score(self, gold, pred):
            try:
                return metric.score(gold, pred)
            finally:
                advance()

        def __call__(self, gold, pred, trace=None):  # the metric's own float form (it may read `trace`)
            try:
                return metric(gold, pred, trace)
            finally:
                advance()

    return Counting()


def expected_metric_calls(optimizer: str, budget: Budget, n_train: int, n_val: int) -> int | None:
    """A progress-bar total for the compile phase (None when the optimizer decides)."""
    if optimizer == "bootstrap":
        return min(n_train, budget.max_metric_calls or n_train)
    if optimizer == "gepa":
        return budget.max_metric_calls
    if optimizer == "mipro" and budget.auto is None:
        return n_train + (_mipro_trials(budget, n_val) + 2) * n_val
    return None


def _mipro_trials(budget: Budget, n_val: int) -> int:
    if budget.num_trials is not None:
        return budget.num_trials
    if budget.max_metric_calls is not None:
        return max(1, budget.max_metric_calls // max(1, n_val) - 1)
    return 2


def run_optimizer(optimizer: str, student: PipelineProgram, metric: Metric, trainset: list, valset: list,
                  budget: Budget, *, task_lm, judge_lm) -> tuple[dspy.Module, dict[str, Any]]:
    """Compile `student`; returns the compiled module and the settings used (for the manifest)."""
    budget.check(optimizer)
    threshold = metric.threshold if budget.threshold is None else budget.threshold
    if optimizer == "bootstrap":
        train = trainset[: budget.max_metric_calls] if budget.max_metric_calls else trainset
        settings = {"max_bootstrapped_demos": budget.max_demos, "max_labeled_demos": 0,
                    "metric_threshold": threshold, "examples_tried": len(train)}
        opt = dspy.BootstrapFewShot(metric=metric, metric_threshold=threshold,
                                    max_bootstrapped_demos=budget.max_demos, max_labeled_demos=0, max_rounds=1)
        return opt.compile(student, trainset=train), settings
    if optimizer == "mipro":
        try:
            import optuna  # noqa: F401
        except ImportError:
            raise PearlError("MIPROv2 needs optuna: pip install 'pearlpoint[optimize]'") from None
        if budget.auto is not None:
            opt = dspy.MIPROv2(metric=metric, prompt_model=judge_lm, task_model=task_lm, auto=budget.auto,
                               max_bootstrapped_demos=budget.max_demos, max_labeled_demos=0,
                               num_threads=1, seed=budget.seed, metric_threshold=threshold, verbose=False)
            trials = None
        else:
            trials = _mipro_trials(budget, len(valset))
            opt = dspy.MIPROv2(metric=metric, prompt_model=judge_lm, task_model=task_lm, auto=None,
                               num_candidates=budget.num_candidates, max_bootstrapped_demos=budget.max_demos,
                               max_labeled_demos=0, num_threads=1, seed=budget.seed, metric_threshold=threshold,
                               verbose=False)
        settings = {"auto": budget.auto, "num_candidates": budget.num_candidates if budget.auto is None else None,
                    "num_trials": trials, "max_bootstrapped_demos": budget.max_demos, "max_labeled_demos": 0}
        compiled = opt.compile(student, trainset=trainset, valset=valset, num_trials=trials, minibatch=False,
                               program_aware_proposer=False, data_aware_proposer=False)
        return compiled, settings
    if optimizer == "gepa":
        opt = dspy.GEPA(metric=as_gepa_metric(metric), auto=budget.auto, max_metric_calls=budget.max_metric_calls,
                        reflection_lm=judge_lm, reflection_minibatch_size=min(3, len(trainset)),
                        failure_score=metric.low, perfect_score=metric.high, use_merge=False,
                        num_threads=1, track_stats=False, seed=budget.seed, warn_on_score_mismatch=False)
        settings = {"auto": budget.auto, "max_metric_calls": budget.max_metric_calls,
                    "reflection_minibatch_size": min(3, len(trainset))}
        return opt.compile(student, trainset=trainset, valset=valset), settings
    raise InputError(f"unknown optimizer '{optimizer}': choose {', '.join(OPTIMIZERS)}")


# --- evaluation --------------------------------------------------------------------------

def program_hash(module: dspy.Module) -> str:
    blob = json.dumps(module.dump_state(), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


@dataclass
class Evaluation:
    score: float
    rows: list[dict[str, Any]]
    errors: int


def score_program(module: PipelineProgram, examples: list, metric: Metric, results: Path,
                  advance: Callable[[], None] = lambda: None) -> Evaluation:
    """Mean metric over `examples`, one JSONL row per example appended as it is scored.

    `results` is written by `pearl.io.jsonl.JsonlAppender`, and resumed by its rule (the
    last row of an example wins), among the rows of the same program state: a changed
    program is scored again. A failed run or metric scores `metric.low` and records the error.
    """
    digest = program_hash(module)
    done: dict[Any, dict[str, Any]] = {}
    if results.is_file():
        rows_here = (row for _, row in parsed(results)
                     if isinstance(row, dict) and row.get("program") == digest and "id" in row)
        done = latest_by(rows_here, lambda row: row["id"])
    rows, errors = [], 0
    with JsonlAppender(results) as sink:
        for example in examples:
            row = done.get(example.id)
            if row is None:
                row = {"id": example.id, "program": digest}
                try:
                    pred = module(**example.inputs())
                    scored = metric.score(example, pred)
                    row.update(score=scored.score, feedback=scored.feedback, parts=scored.parts,
                               output={k: _jsonable(v) for k, v in pred.items()})
                except Exception as exc:  # noqa: BLE001 - any failure is a scored, recorded miss
                    row.update(score=metric.low, error=f"{exc.__class__.__name__}: {exc}")
                sink.append(row)
            errors += "error" in row
            rows.append(row)
            advance()
    score = sum(r["score"] for r in rows) / len(rows) if rows else float("nan")
    return Evaluation(score=score, rows=rows, errors=errors)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    try:
        json.dumps(value)
        return value
    except TypeError:
        return str(value)


# --- the whole run -------------------------------------------------------------------------

@dataclass
class OptimizeReport:
    pipeline: str
    steps: list[str]
    optimizer: str
    metric: str
    score_before: float
    score_after: float
    errors_before: int
    errors_after: int
    seconds: float
    out: Path
    demos: dict[str, int] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)


class Reporter:
    """Progress callbacks of `optimize` (the CLI draws rich bars; the default draws nothing).

    `phase(name, total)` starts a phase and returns its `advance()` callable.
    """

    def phase(self, name: str, total: int | None) -> Callable[[], None]:
        return lambda: None


def optimize(pipeline: Pipeline, targets: list[str], optimizer: str, metric: Metric, trainset: list,
             valset: list, out: Path, *, task_lm, judge_lm=None, budget: Budget | None = None,
             score_answer: bool = False, reporter: Reporter | None = None,
             dataset_names: tuple[str | None, str | None] = (None, None)) -> OptimizeReport:
    """Evaluate, compile and save `targets` of `pipeline` (see the module docstring)."""
    budget = budget or Budget()
    reporter = reporter or Reporter()
    judge_lm = judge_lm or task_lm
    budget.check(optimizer)
    if optimizer not in OPTIMIZERS:
        raise InputError(f"unknown optimizer '{optimizer}': choose {', '.join(OPTIMIZERS)}")
    for example in list(trainset) + list(valset):
        metric.check_example(example)
    out = Path(out)
    manifest = _open_manifest(out, pipeline)
    student = PipelineProgram(pipeline, targets, {"task": task_lm, "judge": judge_lm}, score_answer=score_answer)
    name = "+".join(targets) if len(targets) > 1 else targets[0]

    with dspy.context(lm=task_lm, adapter=dspy.JSONAdapter()):
        if student._shared.before:
            student.prepare([e.conversation for e in trainset + valset],
                            reporter.phase(f"upstream ({', '.join(student._shared.before)})", len(trainset) + len(valset)))
        before = score_program(student, valset, metric, out / f"{name}.before.jsonl", reporter.phase("score before", len(valset)))
        advance = reporter.phase(f"compile ({optimizer})", expected_metric_calls(optimizer, budget, len(trainset), len(valset)))
        t0 = time.perf_counter()
        compiled, settings = run_optimizer(optimizer, student, _counting(metric, advance), trainset, valset, budget,
                                           task_lm=task_lm, judge_lm=judge_lm)
        seconds = time.perf_counter() - t0
        after = score_program(compiled, valset, metric, out / f"{name}.after.jsonl", reporter.phase("score after", len(valset)))

    demos = {}
    for step_id in targets:
        step = pipeline.steps[step_id]
        program = compiled.programs[step_id]
        stamp = ProgramStamp(step=step_id, use=step.name, fingerprint=signature_fingerprint(step.program))
        save_program(program, out / f"{step_id}.json", stamp)
        demos[step_id] = count_demos(program)
        manifest.steps[step_id] = CompiledStep(
            step=step_id, use=step.name, file=f"{step_id}.json", fingerprint=stamp.fingerprint,
            optimizer=optimizer, metric=metric.name, score_before=before.score, score_after=after.score,
            demos=demos[step_id], seconds=seconds, settings=settings,
        )
    manifest.task_model = getattr(task_lm, "model", None)
    manifest.judge_model = getattr(judge_lm, "model", None)
    manifest.trainset, manifest.valset = dataset_names
    manifest.overrides = [str(o) for o in pipeline.overrides]
    manifest.versions = dependency_versions()
    write_manifest(out, manifest)
    return OptimizeReport(pipeline=pipeline.name, steps=list(targets), optimizer=optimizer, metric=metric.name,
                          score_before=before.score, score_after=after.score, errors_before=before.errors,
                          errors_after=after.errors, seconds=seconds, out=out, demos=demos, settings=settings)


def _open_manifest(out: Path, pipeline: Pipeline) -> CompiledManifest:
    """The folder's manifest to add to (same pipeline only), or a fresh one."""
    source = str(Path(pipeline.source).resolve()) if Path(pipeline.source).is_file() else pipeline.source
    if (out / "manifest.json").is_file():
        existing = read_manifest(out)
        if existing.pipeline != pipeline.name:
            raise PipelineError(
                f"'{out}' holds programs compiled for pipeline '{existing.pipeline}', not '{pipeline.name}': "
                f"choose another --out folder"
            )
        existing.pipeline_source = source
        return existing
    return CompiledManifest(pipeline=pipeline.name, pipeline_source=source)
