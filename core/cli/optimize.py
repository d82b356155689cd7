"""`pearl optimize`: compile pipeline steps with a DSPy optimizer and write a compiled folder.

Registered in `pearl.cli` with one line; the work is done by `pearl.optimization.optimize.optimize`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from pearl.errors import InputError

console = Console(stderr=True)
out_console = Console()


class RichReporter:
    """Draws one progress bar per phase of `pearl.optimization.optimize.optimize`."""

    def __init__(self, progress: Progress):
        self.progress = progress

    def phase(self, name: str, total: int | None):
        task = self.progress.add_task(name, total=total)

        def advance() -> None:
            self.progress.advance(task)

        return advance


def lm_settings(base, *, task_backend=None, task_model=None, backend_url=None, judge_backend=None, judge_model=None,
                judge_url=None, **overrides):
    """(task settings, judge settings or None) of `pearl optimize`, both from `resolve_settings`.

    The task LM resolves against the pipeline file's `[backend]` table (`base`) and the
    environment; the judge / reflection LM, when any judge option is given, against the
    task's settings without the environment, so `--judge-backend` never inherits the
    task's model path or URL.
    """
    from pearl.host.backend import resolve_settings

    task = resolve_settings(base, name=task_backend, model=task_model, url=backend_url, **overrides)
    if not (judge_backend or judge_model or judge_url):
        return task, None
    return task, resolve_settings(task, name=judge_backend, model=judge_model, url=judge_url, environment=False)


def _default_metric(pipeline, targets: list[str], host) -> str:
    if len(targets) > 1:
        return "constructive"
    fields = pipeline.steps[targets[0]].output_type.model_fields
    if "category" in fields or "level" in fields:
        return "risk"
    if "response" in fields and "satisfaction" in host.registries["judges"] and "safety" in host.registries["judges"]:
        return "constructive"
    return "match"


def optimize_command(
    step: str = typer.Option(..., "--step", "-s", help="The step id to optimize, or 'all' for every LM step (judged on the final answer)."),
    trainset: str = typer.Option(..., "--trainset", help="JSONL of conversations with optional labels, or a shipped set (risk-train)."),
    valset: Optional[str] = typer.Option(None, "--valset", help="JSONL scored before and after (default: the trainset; for risk-train, risk-val)."),
    pipeline: Optional[str] = typer.Option(None, "--pipeline", "-p", help="A shipped pipeline name or a .toml path (default: pearl run's)."),
    sets: Optional[List[str]] = typer.Option(None, "--set", help="STEP.PARAM=VALUE set on the pipeline before compiling (repeatable); the manifest records them."),
    optimizer: str = typer.Option("bootstrap", "--optimizer", "-O", help="bootstrap (BootstrapFewShot), mipro (MIPROv2) or gepa (GEPA)."),
    metric: Optional[str] = typer.Option(None, "--metric", help="risk, match or constructive (default: by the step's output)."),
    out: Path = typer.Option(Path("compiled"), "--out", "-o", help="Folder for the compiled programs and manifest."),
    task_backend: Optional[str] = typer.Option(None, "--task-backend", help="Backend of the optimized program (env PEARL_BACKEND)."),
    task_model: Optional[str] = typer.Option(None, "--task-model", "--model", help="Model of the optimized program (env PEARL_MODEL)."),
    backend_url: Optional[str] = typer.Option(None, "--backend-url", help="Server URL of the task backend."),
    judge_backend: Optional[str] = typer.Option(None, "--judge-backend", help="Backend of the judges and of the optimizer's reflection/proposal model (default: the task LM)."),
    judge_model: Optional[str] = typer.Option(None, "--judge-model", help="Model of the judges / reflection (default: the task model)."),
    judge_url: Optional[str] = typer.Option(None, "--judge-url", help="Server URL of the judge backend."),
    max_metric_calls: Optional[int] = typer.Option(None, "--max-metric-calls", help="Budget: metric calls (GEPA), examples tried (bootstrap), trials x valset (MIPROv2)."),
    auto: Optional[str] = typer.Option(None, "--auto", help="The optimizer's own budget level: light, medium or heavy (mipro, gepa)."),
    max_demos: int = typer.Option(2, "--max-demos", help="Most bootstrapped few-shot demos per predictor."),
    num_candidates: int = typer.Option(2, "--num-candidates", help="MIPROv2 instruction/demo candidates (without --auto)."),
    num_trials: Optional[int] = typer.Option(None, "--num-trials", help="MIPROv2 trials (without --auto)."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Metric score a bootstrapped demo must reach (default: the metric's)."),
    beta: float = typer.Option(2.0, "--beta", help="Weight of risk in the constructive score (CSA headline: 2)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Use only the first N examples of each set."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", help="Tokens per LM call for free text; structured calls get room for their whole JSON answer."),
    n_ctx: Optional[int] = typer.Option(None, "--n-ctx", help="Context length for the embedded model."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for the embedded model."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Sampling and optimizer seed."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show the optimizers' own log lines."),
):
    """Compile a pipeline step with a DSPy optimizer; print the valset score before and after."""
    from pearl.runtime.session import make_lm
    from pearl.cli import DEFAULT_PIPELINE
    from pearl.host.manager import get_host
    from pearl.optimization.labelled import load_examples
    from pearl.optimization.metrics import make_metric
    from pearl.optimization.optimize import OPTIMIZERS, Budget
    from pearl.optimization.optimize import optimize as run_optimize
    from pearl.cli import checked_overrides
    from pearl.runtime.pipeline import load

    if optimizer not in OPTIMIZERS:
        raise InputError(f"--optimizer {optimizer}: choose one of {', '.join(OPTIMIZERS)}")
    if limit is not None and limit < 1:
        raise InputError("--limit must be at least 1")
    if not (math.isfinite(beta) and beta >= 0):
        raise InputError(f"--beta {beta}: give the risk weight as a finite number of at least 0 (the CSA headline: 2)")
    host = get_host()
    pipe = load(pipeline or DEFAULT_PIPELINE, host, checked_overrides(pipeline or DEFAULT_PIPELINE, sets or []))
    if step == "all":
        targets = [sid for sid in pipe.order() if getattr(pipe.steps[sid], "program", None) is not None]
        if not targets:
            raise InputError(f"pipeline '{pipe.name}' has no LM steps to optimize")
    else:
        targets = [step]
    if step != "all" and step not in pipe.steps:
        raise InputError(f"pipeline '{pipe.name}' has no step '{step}': its steps are {', '.join(pipe.order())} (or all)")
    if valset is None and trainset == "risk-train":
        valset = "risk-val"
    train = load_examples(trainset, limit=limit)
    val = load_examples(valset, limit=limit) if valset else train
    if valset is None:
        console.print("[yellow]no --valset: scoring on the trainset, which flatters the compiled program[/]")
    budget = Budget(max_metric_calls=max_metric_calls, auto=auto, max_demos=max_demos, num_candidates=num_candidates,
                    num_trials=num_trials, threshold=threshold, seed=seed or 0)
    budget.check(optimizer)

    task_settings, judge_settings = lm_settings(
        pipe.spec.backend, task_backend=task_backend, task_model=task_model, backend_url=backend_url,
        judge_backend=judge_backend, judge_model=judge_model, judge_url=judge_url,
        max_tokens=max_tokens, n_ctx=n_ctx, threads=threads, seed=seed)
    task_lm = make_lm(task_settings, host)
    judge_lm = make_lm(judge_settings, host) if judge_settings is not None else task_lm
    metric_name = metric or _default_metric(pipe, targets, host)
    chosen = make_metric(metric_name, host=host, judge_lm=judge_lm, beta=beta)

    if not verbose:
        import logging

        for name in ("dspy", "optuna", "gepa"):
            logging.getLogger(name).setLevel(logging.WARNING)
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console, transient=False)
    with progress:
        report = run_optimize(pipe, targets, optimizer, chosen, train, val, out, task_lm=task_lm, judge_lm=judge_lm,
                              budget=budget, score_answer=metric_name == "constructive",
                              reporter=RichReporter(progress), dataset_names=(trainset, valset or trainset))

    table = Table(title=f"pearl optimize · {report.pipeline} · {report.optimizer} · metric {report.metric} "
                        f"· valset {len(val)}")
    for column in ("step", "before", "after", "change", "demos", "compile s", "errors before/after"):
        table.add_column(column, justify="right" if column != "step" else "left")
    table.add_row(
        ", ".join(report.steps), f"{report.score_before:.3f}", f"{report.score_after:.3f}",
        f"{report.score_after - report.score_before:+.3f}", str(sum(report.demos.values())),
        f"{report.seconds:.1f}", f"{report.errors_before}/{report.errors_after}",
    )
    out_console.print(table)
    out_console.print(f"compiled → {report.out}/manifest.json · use it with: pearl run --compiled {report.out} \"...\"")
