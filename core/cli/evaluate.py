"""CLI commands of evaluation: `pearl eval`, `pearl eval-judge`, `pearl report`, `pearl datasets`.

Registered in `pearl.cli` with one line each (`app.command(...)(fn)`).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.table import Table

from pearl.errors import InputError

console = Console()
err_console = Console(stderr=True)


def eval_command(
    dataset: str = typer.Argument(..., help="DATASET[:PATH], e.g. xstest:data/xstest_prompts.csv or strata-sword:folder/"),
    out: Path = typer.Option(..., "--out", "-o", help="Results JSONL; an existing file is resumed."),
    pipeline: Optional[str] = typer.Option(None, "--pipeline", "-p", help="Shipped pipeline name or .toml path."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Evaluate only the first N selected items."),
    sample: Optional[int] = typer.Option(None, "--sample", help="Draw N items at random (see --seed)."),
    seed: int = typer.Option(0, "--seed", help="Seed of --sample."),
    where: List[str] = typer.Option([], "--where", help="Label filter KEY=V1,V2 (repeatable)."),
    label: Optional[str] = typer.Option(None, "--label", help="Shorthand for --where label=..."),
    level: Optional[str] = typer.Option(None, "--level", help="Shorthand for --where level=..."),
    item_type: Optional[str] = typer.Option(None, "--type", help="Shorthand for --where type=..."),
    judges: Optional[str] = typer.Option(None, "--judges", help="Comma list of judges; default refusal (+ safety-screened, else safety, and satisfaction when installed)."),
    taxonomy: Optional[str] = typer.Option(None, "--taxonomy", help="Taxonomy the safety judge's categories come from (default: oyster when installed; 'none' to use the pipeline's own assessment)."),
    concurrency: int = typer.Option(2, "--concurrency", "-c", min=1, help="Items in flight at once."),
    retry_errors: bool = typer.Option(False, "--retry-errors", help="On resume, run again the items that crashed."),
    backend: Optional[str] = typer.Option(None, "--backend", "-b", help="Backend of the evaluated model."),
    backend_url: Optional[str] = typer.Option(None, "--backend-url", help="Server URL of the evaluated model."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Evaluated model (GGUF path or id)."),
    judge_backend: Optional[str] = typer.Option(None, "--judge-backend", help="Backend of the judge model (default: the evaluated one)."),
    judge_url: Optional[str] = typer.Option(None, "--judge-url", help="Server URL of the judge model."),
    judge_model: Optional[str] = typer.Option(None, "--judge-model", help="Judge model (GGUF path or id)."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", help="Tokens per LM call for free text; structured calls get room for their whole JSON answer."),
    n_ctx: Optional[int] = typer.Option(None, "--n-ctx", help="Context length for the embedded model."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for the embedded model."),
    compiled: Optional[str] = typer.Option(None, "--compiled", help="A `pearl optimize` folder to load; 'none' for the uncompiled programs (default: the pipeline's programs compiled for the model, if any)."),
    sets: Optional[List[str]] = typer.Option(None, "--set", help="STEP.PARAM=VALUE set on the pipeline's step before it runs (repeatable), e.g. refine.schedule=[]; recorded in every result."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Seconds an HTTP backend waits for each answer "
                                            "before it gives up (default: the backend option timeout, else 120)."),
    api_key_env: Optional[str] = typer.Option(None, "--api-key-env", help="The environment variable holding the "
                                              "API key (default PEARL_API_KEY, then OPENAI_API_KEY)."),
):
    """Run a pipeline on a dataset, judge every response, append results as they finish (resumable)."""
    from pearl.runtime.session import open_session
    from pearl.cli import DEFAULT_PIPELINE
    from pearl.host.dataset import load_dataset, parse_filters, select
    from pearl.evaluation.evaluate import ItemEvaluator, build_judges, chosen_judges, judge_categoriser
    from pearl.host.manager import get_host
    from pearl.io.results import done_ids

    from pearl.cli import checked_overrides, connection_options
    from pearl.host.dataset import parse_ref
    from pearl.io.paths import refuse_overwrite

    host = get_host()
    dataset_path = parse_ref(dataset)[1]
    refuse_overwrite(out, [Path(dataset_path).expanduser()] if dataset_path else [], flag="--out")
    filters = parse_filters([*where, *(f"{k}={v}" for k, v in (("label", label), ("level", level), ("type", item_type)) if v)])
    name, items = load_dataset(dataset, host)
    items = select(items, filters=filters, sample=sample, seed=seed, limit=limit)
    judge_names = chosen_judges(judges, host)
    judge_objs = build_judges(host, judge_names)
    overrides = checked_overrides(pipeline or DEFAULT_PIPELINE, sets or [])

    # The judge's choices resolve against the evaluated model's settings (`open_session`).
    judge_choice = {"name": judge_backend, "model": judge_model, "url": judge_url}
    session = open_session(pipeline or DEFAULT_PIPELINE, backend=backend, url=backend_url, model=model,
                           max_tokens=max_tokens, n_ctx=n_ctx, threads=threads, host=host, compiled=compiled,
                           overrides=overrides, **connection_options(timeout, api_key_env),
                           judge=judge_choice if any(judge_choice.values()) else None)
    finished = done_ids(out, dataset=name, pipeline=session.pipeline.name, retry_errors=retry_errors,
                        run=session.identity(), asked={item.id: item.conversation for item in items})
    todo = [item for item in items if item.id not in finished]
    err_console.print(f"[bold]{name}[/]: {len(items)} items selected, {len(items) - len(todo)} already in {out}, "
                      f"{len(todo)} to run · pipeline [bold]{session.pipeline.name}[/] · judges {', '.join(judge_names)}")
    categoriser = judge_categoriser(host, judge_objs, taxonomy)
    evaluator = ItemEvaluator(session, judge_objs, dataset=name, total=len(items), categoriser=categoriser)
    written, counts = run_items(todo, evaluator, out, concurrency=concurrency, progress=progress,
                                description=session.pipeline.name)
    err_console.print(f"done: {counts['ok']} ok, {counts['error']} errors written to {out}")
    if written < len(todo):  # a first Ctrl-C: the items already running were finished and written
        err_console.print(f"[yellow]interrupted: {len(todo) - written} item(s) not started; "
                          f"run the same command again to resume[/]")
        raise typer.Exit(130)
    add_missing_judges(out, {item.id for item in items}, evaluator, session.pipeline.name, progress=progress)


def run_items(todo: list, evaluator, out: Path, *, concurrency: int, progress: bool,
              description: str) -> tuple[int, dict[str, int]]:
    """Evaluate `todo`, appending each record to `out` as it finishes, with a progress bar.

    Returns how many records were written (fewer than `len(todo)` after a first Ctrl-C)
    and the count of `ok` and `error` records.
    """
    from pearl.cli import tell_draining
    from pearl.evaluation.evaluate import evaluate
    from pearl.io.jsonl import JsonlAppender

    counts = {"ok": 0, "error": 0}
    with JsonlAppender(out) as writer:
        if not progress or not todo:
            written = evaluate(todo, evaluator, writer, concurrency=concurrency, on_interrupt=tell_draining,
                               on_done=lambda r: counts.__setitem__(r.status, counts[r.status] + 1))
            return written, counts
        columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
        with Progress(*columns, console=err_console, transient=False) as bar:
            task = bar.add_task(description, total=len(todo), status="")

            def on_done(record) -> None:
                counts[record.status] += 1
                bar.update(task, advance=1, status=f"{counts['ok']} ok · {counts['error']} errors")

            written = evaluate(todo, evaluator, writer, concurrency=concurrency, on_done=on_done,
                               on_interrupt=tell_draining)
    return written, counts


def add_missing_judges(path: Path, wanted: set[str], evaluator, label: str, *, progress: bool) -> int:
    """Judge the answers already in `path` (the items in `wanted`) with the judges they lack, appending each
    updated record (the latest record of an item counts); return how many were judged. A judge added to a
    finished run thus judges the same replies instead of regenerating them."""
    from rich.progress import track

    from pearl.io.jsonl import JsonlAppender
    from pearl.io.results import latest_by_id, read_records

    def untried(record) -> set[str]:  # a judge that failed on the answer was tried: not asked again
        return set(evaluator.judges) - set(record.judgements) - set(record.judge_errors)

    records, _ = read_records(path)
    stale = [r for r in latest_by_id(records).values() if r.id in wanted and r.status == "ok" and untried(r)]
    if not stale:
        return 0
    err_console.print(f"[bold]{label}[/]: {len(stale)} earlier answers lack a verdict of "
                      f"{', '.join(sorted(set.union(*(untried(r) for r in stale))))}: judging them (the answers are kept)")
    with JsonlAppender(path) as writer:
        for record in track(stale, description=f"{label} judges", console=err_console, disable=not progress):
            updated = evaluator.add_judges(record)
            if updated is not None:
                writer.append(updated)
    return len(stale)


def eval_judge_command(
    judge: str = typer.Argument("refusal", help="The judge to measure: refusal, refusal-rules, refusal-llm, refusal-likelihood, refusal-escalate, safety, ..."),
    labels: str = typer.Option(..., "--labels", "-l", help="Labelled set SET:PATH: xstest (completions csv), xstest-help (its safe prompts, graded help, for satisfaction), xstest-harm (the same files: did the reply give real help toward harm?), pyrit-refusal, pyrit-objective, pyrit-harm, openai-moderation, labels-jsonl."),
    split: str = typer.Option("all", "--split", help="all, dev or test: the seeded split by prompt (tune on dev, report on test)."),
    split_seed: int = typer.Option(0, "--split-seed", help="Seed of --split."),
    backend: Optional[str] = typer.Option(None, "--backend", "-b", help="Backend for an LLM judge."),
    backend_url: Optional[str] = typer.Option(None, "--backend-url", help="Server URL for an LLM judge."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model for an LLM judge (GGUF path or id)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for an embedded judge model (default: the CPUs this process may run on)."),
    sample: Optional[int] = typer.Option(None, "--sample", help="A seeded random sample of N rows (for slow LLM judges)."),
    seed: int = typer.Option(0, "--seed", help="Seed of --sample and of the bootstrap."),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=100, help="Bootstrap resamples for the 95% intervals."),
    as_json: bool = typer.Option(False, "--json", help="Print the measurement as JSON."),
    save: bool = typer.Option(False, "--save", help="Write a judge card (read by `pearl report`) into --cards."),
    cards: Path = typer.Option(Path("judge-cards"), "--cards", help="Folder of judge cards."),
    verdicts: Optional[Path] = typer.Option(None, "--verdicts", help="JSONL file: each verdict is appended as it is made; run again with the same file to resume."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar (for judges that use an LM)."),
):
    """Measure a judge against human labels: accuracy, per-class P/R/F1, kappa, confusion, 95% CIs, cost per item."""
    import json as _json

    from pearl.cli import checked_bootstrap
    from pearl.evaluation.judge_cards import cards_folder, save_card
    from pearl.evaluation.judge_quality import ALIASES, measure, rows_from_items, select_split
    from pearl.evaluation.judge_view import render_measurement
    from pearl.host.dataset import load_dataset, parse_ref
    from pearl.host.manager import get_host

    if sample is not None and sample < 1:
        raise InputError(f"--sample {sample}: give a positive number of completions")
    checked_bootstrap(bootstrap)
    if save:
        cards_folder(cards)
    host = get_host()
    name, path = parse_ref(labels)
    name = ALIASES.get(name, name)
    name, items = load_dataset(f"{name}:{path}" if path is not None else name, host)
    rows = select_split(rows_from_items(items, name), split, split_seed)
    if sample is not None and sample < len(rows):
        import random

        rows = [rows[i] for i in sorted(random.Random(seed).sample(range(len(rows)), sample))]
    judge_obj = host.get("judges", judge)()
    lm = None
    model_name = ""
    if judge_obj.uses_lm:
        from pearl.host.backend import BackendSettings, resolve_settings
        from pearl.runtime.session import make_lm

        overrides = {"threads": threads} if threads is not None else {}
        lm = make_lm(resolve_settings(BackendSettings(), name=backend, url=backend_url, model=model, **overrides), host)
        model_name = str(getattr(lm, "model", "") or "")
    if verdicts is not None:
        from pearl.io.paths import refuse_overwrite

        refuse_overwrite(verdicts, [Path(path).expanduser()] if path else [], flag="--verdicts")
    run = dict(lm=lm, labels=f"{name}:{Path(path).name if path else ''}", split=split, seed=seed, n_boot=bootstrap,
               model=model_name, verdicts=verdicts)
    if progress and judge_obj.uses_lm and rows:
        columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("ETA"), TimeRemainingColumn())
        with Progress(*columns, console=err_console, transient=False) as bar:
            task = bar.add_task(f"{judge} on {name}", total=len(rows))
            result = measure(judge_obj, rows, on_verdict=lambda _: bar.update(task, advance=1), **run)
    else:
        result = measure(judge_obj, rows, **run)
    if as_json:
        console.print_json(_json.dumps(result.as_dict()))
    else:
        render_measurement(result, console)
    if save:
        err_console.print(f"judge card written to {save_card(result, cards)}")


def report_command(
    results: Path = typer.Argument(..., help="Results JSONL from `pearl eval`."),
    out: Path = typer.Option(Path("report"), "--out", "-o", help="Folder for report.md and the PNG plots."),
    baseline: List[Path] = typer.Option([], "--baseline", help="Other results file(s) to compare with (repeatable)."),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=100, help="Bootstrap resamples for the 95% intervals."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    cards: Path = typer.Option(Path("judge-cards"), "--cards", help="Folder of judge cards (`pearl eval-judge --save`)."),
):
    """Metrics, bootstrap CIs, a markdown report and PNG plots from one or more results files."""
    from pearl.cli import checked_bootstrap
    from pearl.evaluation.report import write_report
    from pearl.io.paths import refuse_overwrite

    if seed < 0:
        raise InputError(f"--seed {seed}: give a whole number of at least 0")
    checked_bootstrap(bootstrap)
    refuse_overwrite(out, [results, *baseline], flag="--out", folder_ok=True)  # the report's folder
    refuse_overwrite(out / "report.md", [results, *baseline], flag="the report file")
    path = write_report([results, *baseline], out, n_boot=bootstrap, seed=seed, cards=cards)
    console.print(path.read_text(encoding="utf-8"), markup=False, highlight=False)
    err_console.print(f"report written to {path} (plots beside it)")


def datasets_command():
    """List the registered datasets."""
    from pearl.host.manager import get_host

    table = Table("name", "description", "plugin")
    for entry in sorted(get_host().registries["datasets"].entries.values(), key=lambda e: e.name):
        table.add_row(entry.name, entry.value.description, entry.plugin)
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the evaluation commands to the `pearl` app."""
    app.command("eval")(eval_command)
    app.command("eval-judge")(eval_judge_command)
    app.command("report")(report_command)
    app.command("datasets")(datasets_command)
