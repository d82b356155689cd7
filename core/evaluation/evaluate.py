"""Running a pipeline over a dataset: concurrent, judged, resumable.

`evaluate(items, evaluator, writer, concurrency=K)` runs `evaluator` (an `ItemEvaluator`:
the session's pipeline, then the judges) on every item, K at a time
(`pearl.runtime.drain.DrainingMap`: a first Ctrl-C finishes and writes the items
already running), and appends one `ResultRecord` per item
the moment it is done (see `pearl.io.results`). An item whose pipeline raises is
recorded with `status = "error"` and its message; a judge that fails is recorded in
`judge_errors`; neither stops the run. Resuming is the caller's choice of `items`
(`pearl.io.results.done_ids` says which are finished).

Judges run on the session's `judge` LM (the evaluated model unless another was given).
The safety judge gets a risk category and its guideline: from a judge-side
`Categoriser` when one is given (the same rules for every pipeline, as Strata-Sword's
protocol asks), else from the pipeline's own risk assessment when the result has one
(a step output of type `RiskAssessment`), else none.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable

import dspy

from pearl.csa import RiskAssessment
from pearl.errors import InputError, PearlError
from pearl.host.dataset import Item
from pearl.host.judge import Judge
from pearl.io.jsonl import JsonlAppender
from pearl.io.results import ResultRecord, Timings
from pearl.runtime.drain import DrainingMap
from pearl.types import Result

ALWAYS_JUDGES = ("refusal",)
#: A safety judge by preference (the first registered one), then `satisfaction`. `safety-screened`
#: settles full refusals with the refusal classifier before the LLM judge: on PyRIT's objective-
#: achieved labels (test split, 40 rows, 1.5B) κ 0.27 against the LLM judge alone's −0.34.
SAFETY_DEFAULTS = ("safety-screened", "safety")
OPTIONAL_JUDGES = ("satisfaction",)


def default_judges(host) -> list[str]:
    """`refusal`, the first registered of `SAFETY_DEFAULTS`, and `satisfaction` when registered."""
    registry = host.registries["judges"]
    safety = [n for n in SAFETY_DEFAULTS if n in registry][:1]
    return [n for n in (*ALWAYS_JUDGES, *safety, *OPTIONAL_JUDGES) if n in registry]


def chosen_judges(judges: str | None, host) -> list[str]:
    """The judges a `--judges` value names (comma-separated), or `default_judges` when it is not given."""
    if judges is None:
        return default_judges(host)
    names = [j.strip() for j in judges.split(",") if j.strip()]
    if not names:
        raise InputError(f"--judges {judges!r} names no judge: give a comma-separated list such as refusal,safety, "
                         f"or leave it out for the default judges")
    return names


def build_judges(host, names: Iterable[str]) -> dict[str, Judge]:
    return {name: host.get("judges", name)() for name in names}


DEFAULT_TAXONOMY = "oyster"


def wants_category(judges: Iterable[str]) -> bool:
    """True when a safety judge (`safety`, `safety-screened`, ...) is among `judges`: it reads the prompt's
    category and guideline."""
    return any(name.startswith("safety") for name in judges)


def judge_categoriser(host, judges: Iterable[str], taxonomy: str | None = None):
    """The categoriser that gives the safety judge each prompt's category and guideline.

    `taxonomy` names a registered taxonomy; None means the default one when it is
    installed; "none" turns categorisation off (the judge then reads the pipeline's own
    assessment). Returns None when there is no safety judge or no taxonomy.
    """
    from pearl.csa.categorise import Categoriser
    from pearl.csa.taxonomy import get_taxonomy

    name = taxonomy or (DEFAULT_TAXONOMY if DEFAULT_TAXONOMY in host.registries["taxonomies"] else None)
    if not wants_category(judges) or not name or name == "none":
        return None
    return Categoriser(get_taxonomy(host, name))


class RememberingCategoriser:
    """A categoriser that answers each conversation once: several pipelines judged on the same
    items (`pearl bench quality`) give the safety judge the same category for a prompt, at
    the cost of one categorisation."""

    def __init__(self, categoriser):
        self.categoriser = categoriser
        self.seen: dict[str, tuple] = {}

    def __call__(self, conversation):
        key = conversation.model_dump_json()
        if key not in self.seen:
            self.seen[key] = self.categoriser(conversation)
        return self.seen[key]


def risk_context(result: Result) -> tuple[str | None, list[str] | None]:
    """Category and guideline from the result's risk assessment, if the pipeline made one."""
    assessment = result.output_of(RiskAssessment)
    if assessment is None:
        return None, None
    return assessment.category, list(assessment.guideline) or None


class ItemEvaluator:
    """Runs one item through the pipeline and the judges; never raises for item-level faults."""

    def __init__(self, session, judges: dict[str, Judge], *, dataset: str, total: int | None = None,
                 categoriser=None):
        self.session = session
        self.categoriser = categoriser
        self.judges = judges
        self.dataset = dataset
        self.total = total
        self.judge_lm = session.runner.lms.get("judge") or session.runner.lms["task"]
        self.run = session.identity()

    def __call__(self, item: Item) -> ResultRecord:
        t0 = time.perf_counter()
        base = dict(id=item.id, dataset=self.dataset, pipeline=self.session.pipeline.name, run=self.run,
                    labels=item.labels, conversation=item.conversation, total_items=self.total)
        try:
            result = self.session.run(item.conversation)
        except Exception as exc:  # a crashed item is data, not the end of the run
            message = str(exc) if isinstance(exc, PearlError) else f"{exc.__class__.__name__}: {exc}"
            seconds = time.perf_counter() - t0
            return ResultRecord(status="error", error=message, timings=Timings(pipeline_s=seconds, total_s=seconds), **base)
        pipeline_s = time.perf_counter() - t0
        judgements, errors, judge_s, category, source = self.judge(item.conversation, result, self.judges)
        return ResultRecord(
            status="ok", result=result, judgements=judgements, judge_errors=errors,
            judge_category=category, judge_category_source=source,
            timings=Timings(pipeline_s=pipeline_s, judges_s=judge_s, total_s=time.perf_counter() - t0), **base,
        )

    def judge(self, conversation, result: Result, judges: dict[str, Judge]):
        """Every judge's verdict on `result.response`: (judgements, errors, seconds, category, its source)."""
        judgements: dict[str, dict[str, Any]] = {}
        errors: dict[str, str] = {}
        judge_s: dict[str, float] = {}
        category, guideline = risk_context(result)
        source = "pipeline" if category else None
        if self.categoriser is not None and wants_category(judges):
            j0 = time.perf_counter()
            try:
                with dspy.context(lm=self.judge_lm, adapter=dspy.JSONAdapter()):
                    category, guideline = self.categoriser(conversation)
                source = "judge"
            except Exception as exc:
                errors["categorise"] = str(exc) if isinstance(exc, PearlError) else f"{exc.__class__.__name__}: {exc}"
            judge_s["categorise"] = time.perf_counter() - j0
        for name, judge in judges.items():
            j0 = time.perf_counter()
            try:
                with dspy.context(lm=self.judge_lm, adapter=dspy.JSONAdapter()):
                    verdict = judge.judge(conversation, result.response, guideline=guideline, category=category)
                judgements[name] = verdict.model_dump(mode="json")
            except Exception as exc:
                errors[name] = str(exc) if isinstance(exc, PearlError) else f"{exc.__class__.__name__}: {exc}"
            judge_s[name] = time.perf_counter() - j0
        return judgements, errors, judge_s, category, source

    def add_judges(self, record: ResultRecord) -> ResultRecord | None:
        """`record` (an answered item) with the verdicts of this evaluator's judges it lacks; None when it
        lacks none. The answer is not regenerated: a judge added to a finished run judges the same replies."""
        missing = {n: j for n, j in self.judges.items() if n not in record.judgements}
        if record.status != "ok" or record.result is None or not missing:
            return None
        t0 = time.perf_counter()
        judgements, errors, judge_s, category, source = self.judge(record.conversation, record.result, missing)
        timings = record.timings.model_copy(update={
            "judges_s": {**record.timings.judges_s, **judge_s},
            "total_s": record.timings.total_s + time.perf_counter() - t0})
        return record.model_copy(update={
            "judgements": {**record.judgements, **judgements},
            "judge_errors": {**{k: v for k, v in record.judge_errors.items() if k not in missing}, **errors},
            "judge_category": record.judge_category or category,
            "judge_category_source": record.judge_category_source or source, "timings": timings})


def evaluate(items: list[Item], evaluator: Callable[[Item], ResultRecord], writer: JsonlAppender, *,
             concurrency: int = 1, on_done: Callable[[ResultRecord], None] | None = None,
             on_interrupt: Callable[[int], None] | None = None) -> int:
    """Evaluate `items` with up to `concurrency` in flight; append each record when done; return how many.

    Ctrl-C (`pearl.runtime.drain.DrainingMap`): the first press starts no new item and
    writes every item already running as it finishes, then returns (fewer than
    `len(items)` records; `on_interrupt(running)` is told how many are being finished);
    a second press raises `KeyboardInterrupt` at once. Every record written is whole.
    """
    runs = DrainingMap(evaluator, items, max(1, concurrency), name="pearl-eval", on_interrupt=on_interrupt)
    written = 0
    for record in runs:
        writer.append(record)
        written += 1
        if on_done is not None:
            on_done(record)
    return written
