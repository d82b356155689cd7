"""`pearl bench`: benchmarks that print figures. The kernel adds `pearl bench quality`;
plugins add theirs to the group (`cli.command(fn, group="bench")`, e.g. `pearl bench cost`).

`pearl bench quality` answers one fixed, seeded mix of prompts (a dataset, by default
`quality-mix` over the shared data folder) with several pipelines on the same model,
judges every answer with the same judges, and prints the side-by-side figures of
`pearl.evaluation.quality`. Each pipeline's records go to `OUT/<label>.jsonl` as they
finish (the `pearl eval` results format: `pearl report` reads them too), so a run that
stops is resumed by the same command; the table is written to `OUT/quality.md` and
`OUT/quality.json`. `--set STEP.PARAM=VALUE` changes a step parameter of every listed
pipeline that has that step (e.g. `--set refine.schedule=[]` turns Lingo-BP off); a
pipeline run with a `--set` gets its own label and file, so results never mix.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import List, Optional

import typer

from pearl.errors import InputError


def add_unrefined(records: list, twins_path: Path, evaluator, runner, label: str, *, progress: bool) -> list | None:
    """The twins of `records` answered by their refinement's first iteration (`pearl.evaluation.unrefined`),
    judged by `evaluator`'s judges. Twins already in `twins_path` are kept (and given the verdicts they lack);
    the others are appended as they are judged, so an interrupted run resumes. A crashed item's twin is its
    own record; one whose reply before refinement cannot be rebuilt is a crash of the twin column. None when
    no record holds a refinement (the pipeline does not refine)."""
    from rich.progress import track

    from pearl.cli.evaluate import err_console
    from pearl.evaluation.unrefined import SUFFIX, refine_step, unrefined_record
    from pearl.io.jsonl import JsonlAppender
    from pearl.io.results import latest_by_id, read_records

    if not any(refine_step(r) for r in records):
        return None
    twins = latest_by_id(read_records(twins_path)[0]) if twins_path.exists() else {}
    todo = [r for r in records if r.id not in twins or set(evaluator.judges) - set(twins[r.id].judgements)]
    if todo:
        err_console.print(f"[bold]{label}{SUFFIX}[/]: judging the reply before refinement of {len(todo)} answers "
                          f"(no new answer is generated)")

    def twin_of(record):
        if record.id in twins:
            return evaluator.add_judges(twins[record.id]) or twins[record.id]
        try:
            twin = unrefined_record(record, runner) if record.status == "ok" else None
        except Exception as exc:  # a record from another version, or a step after refine that fails
            return record.model_copy(update={"status": "error", "result": None, "judgements": {},
                                             "error": f"no reply before refinement: {exc}"})
        if twin is None:  # crashed, or not refined: the same answer either way
            return record
        return evaluator.add_judges(twin) or twin

    with JsonlAppender(twins_path) as writer:
        for record in track(todo, description=f"{label}{SUFFIX} judges", console=err_console, disable=not progress):
            twins[record.id] = twin_of(record)
            writer.append(twins[record.id])
    return [twins[r.id] for r in records if r.id in twins]


bench_app = typer.Typer(help="Benchmarks of the shipped pipelines on this machine: quality side by side, cost.",
                        no_args_is_help=True)

QUALITY_PIPELINES = "direct,refuse-first,csa-lite,csa"


def parse_shard(text: str) -> tuple[int, int]:
    """`--shard K/N` as (K, N), 0 <= K < N; `InputError` naming the fix otherwise."""
    k, slash, n = text.partition("/")
    if not (slash and k.strip().isdigit() and n.strip().isdigit() and int(k) < int(n)):
        raise InputError(f"--shard {text}: write K/N with 0 <= K < N, e.g. 0/2 and 1/2 for two processes")
    return int(k), int(n)


def run_label(pipeline: str, applied: list[str]) -> str:
    """The pipeline's column and file name: its name, plus a short tag of the `--set`s applied to it."""
    if not applied:
        return pipeline
    return f"{pipeline}+{hashlib.sha256(' '.join(applied).encode()).hexdigest()[:6]}"


def quality_command(
    data: Path = typer.Option(Path("../shared/data"), "--data", help="The shared data folder (xstest/, strata_sword/, labels/) the mix is drawn from."),
    out: Path = typer.Option(Path("bench-quality"), "--out", "-o", help="Folder for the results (one JSONL per pipeline, resumed), quality.md and quality.json."),
    pipelines: str = typer.Option(QUALITY_PIPELINES, "--pipelines", help="Comma-separated pipeline names or .toml files."),
    per_group: int = typer.Option(4, "--per-group", help="Prompts per group: XSTest safe, XSTest unsafe, Strata-Sword L1 en, cn, crisis."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sample."),
    groups: Optional[str] = typer.Option(None, "--groups", help="Comma-separated groups of the mix to answer (xstest-safe, xstest-unsafe, strata-en, strata-cn, crisis); each keeps the items it has in the whole mix."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Answer only the first N items of the mix (it takes the groups in turn, so every group is covered)."),
    shard: Optional[str] = typer.Option(None, "--shard", metavar="K/N", help="Answer only every N-th item, from item K (0-based), of what --limit leaves: one process per core, each with its own --out. Then put the shards' files together in one folder (cat) and run the same command there without --shard: every item is found answered and the table covers them all."),
    split: str = typer.Option("test", "--split", help="test (never tuned on), dev or all: the seeded split by prompt."),
    other: Optional[str] = typer.Option(None, "--dataset", help="Use DATASET:PATH instead of the mix: any dataset whose items carry an 'expect' label (safe, unsafe or crisis), e.g. jsonl:items.jsonl."),
    sets: Optional[List[str]] = typer.Option(None, "--set", help="STEP.PARAM=VALUE for every listed pipeline with that step (repeatable)."),
    judges: Optional[str] = typer.Option(None, "--judges", help="Comma list of judges; default refusal, safety-screened (else safety), satisfaction; refusal-rules is always added."),
    taxonomy: Optional[str] = typer.Option(None, "--taxonomy", help="Taxonomy the safety judge's categories come from (default: oyster when installed; 'none' to use each pipeline's own assessment)."),
    concurrency: int = typer.Option(1, "--concurrency", "-c", min=1, help="Items in flight at once (1 for the embedded model)."),
    backend: Optional[str] = typer.Option(None, "--backend", "-b", help="Backend of the evaluated model."),
    backend_url: Optional[str] = typer.Option(None, "--backend-url", help="Server URL of the evaluated model."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Evaluated model: catalogue name or GGUF path (`pearl models`)."),
    judge_backend: Optional[str] = typer.Option(None, "--judge-backend", help="Backend of the judge model (default: the evaluated one)."),
    judge_url: Optional[str] = typer.Option(None, "--judge-url", help="Server URL of the judge model."),
    judge_model: Optional[str] = typer.Option(None, "--judge-model", help="Judge model (default: the evaluated one)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for the embedded model."),
    compiled: Optional[str] = typer.Option(None, "--compiled", help="A `pearl optimize` folder loaded into every listed pipeline; 'none' for the uncompiled programs (default: each pipeline's programs compiled for the model, if any)."),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=100, help="Bootstrap resamples for the 95% intervals."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar per pipeline."),
    unrefined: bool = typer.Option(False, "--unrefined", help="For a pipeline that refines (csa), also judge each answer's reply before refinement (Lingo-BP's first iteration, through the steps after it) as a column LABEL@0, and print refinement's paired effect. No answer is generated again: the judges' cost only."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
):
    """Answer the same seeded mix with several pipelines; print constructive score, over-refusal, harmful
    compliance, supportive rate and cost per answer side by side, with 95% intervals."""
    from pearl.cli.evaluate import add_missing_judges, err_console, run_items
    from pearl.evaluation.evaluate import (ItemEvaluator, RememberingCategoriser, build_judges, chosen_judges,
                                           judge_categoriser)
    from pearl.evaluation.quality import EXPECTS, compute, render
    from pearl.evaluation.unrefined import SUFFIX, refinement_effect
    from pearl.host.dataset import load_dataset
    from pearl.host.manager import get_host
    from pearl.io.results import done_ids, latest_by_id, read_records
    from pearl.cli import checked_bootstrap, checked_overrides
    from pearl.runtime.session import open_session

    names = [p.strip() for p in pipelines.split(",") if p.strip()]
    if not names:
        raise InputError("--pipelines: name at least one pipeline, e.g. direct,csa")
    if len(set(names)) < len(names):
        raise InputError(f"--pipelines {pipelines}: a pipeline is named twice; name each once")
    if per_group < 1:
        raise InputError(f"--per-group {per_group}: give 1 or more prompts per group")
    if limit is not None and limit < 1:
        raise InputError(f"--limit {limit}: give 1 or more items")
    if groups is not None and not [g for g in groups.split(",") if g.strip()]:
        raise InputError("--groups: name at least one group of the mix (xstest-safe, xstest-unsafe, strata-en, "
                         "strata-cn, crisis), or leave --groups out for all of them")
    checked_bootstrap(bootstrap)
    part = parse_shard(shard) if shard is not None else None
    if groups and other:
        raise InputError("--groups picks groups of the quality mix; with --dataset, put only the items you want in it")
    parsed = checked_overrides(names, sets or [])
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: is a file; give a folder (it is created when missing)")
    host = get_host()
    if other:
        dataset, items = load_dataset(other, host)
        if not any(item.labels.get("expect") in EXPECTS for item in items):
            raise InputError(f"--dataset {other}: no item has an 'expect' label (safe, unsafe or crisis): add one per "
                             f"item, or leave --dataset out to use the quality mix")
        described = other
    else:
        if not data.is_dir():
            raise InputError(f"--data {data}: {'is not a folder' if data.exists() else 'no such folder'}: pass --data "
                             f"PATH to the shared data folder (it holds xstest/, strata_sword/ and labels/)")
        options = {"per_group": per_group, "seed": seed, "split": split, "groups": groups}
        dataset, items = load_dataset(f"quality-mix:{data}", host, options)
        described = (f"quality-mix ({per_group} per group{f' of {groups}' if groups else ''}, split {split}, "
                     f"seed {seed})")
    items = items[:limit] if limit is not None else items
    if part is not None:
        items = items[part[0]::part[1]]
        described += f", shard {part[0]}/{part[1]}"
    judge_names = chosen_judges(judges, host)
    if "refusal-rules" not in judge_names and "refusal-rules" in host.registries["judges"]:
        judge_names.append("refusal-rules")  # free; the supportive rate reads it (pearl.evaluation.quality)
    judge_objs = build_judges(host, judge_names)
    categoriser = judge_categoriser(host, judge_objs, taxonomy)
    categoriser = RememberingCategoriser(categoriser) if categoriser is not None else None
    judge_choice = {"name": judge_backend, "model": judge_model, "url": judge_url}
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    refined: list[str] = []  # the labels that got a twin column (--unrefined)
    for name in names:
        session = open_session(name, backend=backend, url=backend_url, model=model, threads=threads, host=host,
                               overrides=parsed, compiled=compiled,
                               judge=judge_choice if any(judge_choice.values()) else None)
        label = run_label(session.pipeline.name, [str(o) for o in session.pipeline.overrides])
        path = out / f"{label}.jsonl"
        finished = done_ids(path, dataset=dataset, pipeline=session.pipeline.name, retry_errors=False,
                            run=session.identity(), asked={item.id: item.conversation for item in items})
        todo = [item for item in items if item.id not in finished]
        err_console.print(f"[bold]{label}[/]: {len(items)} items, {len(items) - len(todo)} already in {path}, "
                          f"{len(todo)} to run · model {session.settings.model or '(pipeline default)'} · "
                          f"judges {', '.join(judge_names)}")
        evaluator = ItemEvaluator(session, judge_objs, dataset=dataset, total=len(items), categoriser=categoriser)
        written, _ = run_items(todo, evaluator, path, concurrency=concurrency, progress=progress, description=label)
        if written < len(todo):
            err_console.print("[yellow]interrupted: run the same command again to resume[/]")
            raise typer.Exit(130)
        wanted = {item.id for item in items}
        add_missing_judges(path, wanted, evaluator, label, progress=progress)
        records, _ = read_records(path)
        answered = [r for r in latest_by_id(records).values() if r.id in wanted]
        if unrefined:
            twins = add_unrefined(answered, out / f"{label}{SUFFIX}.jsonl", evaluator, session.runner, label,
                                  progress=progress)
            if twins is None:
                err_console.print(f"[yellow]{label} does not refine: --unrefined adds no column for it[/]")
            else:
                rows.append((f"{label}{SUFFIX}", twins))
                refined.append(label)
        rows.append((label, answered))
    # Compare like with like: only the items every pipeline has a record of (one that crashed counts).
    common = set.intersection(*({r.id for r in recs} for _, recs in rows))
    # The first pipeline (by default `direct`, the model alone) is the reference of the paired differences.
    reference = (rows[0][0], [r for r in rows[0][1] if r.id in common]) if len(rows) > 1 else None
    figures_of = [compute(label, [r for r in recs if r.id in common], n_boot=bootstrap, seed=seed, reference=reference)
                  for label, recs in rows]
    title = (f"{described}{f', first {limit}' if limit else ''}, model {session.settings.model or '(pipeline default)'}, "
             f"judges {', '.join(judge_names)}")
    if len(common) < len(items):
        title += f"; on the {len(common)} of {len(items)} items every pipeline answered"
    table = render(figures_of, title=title)
    effects = []
    by_label = dict(rows)
    for label in refined:
        answered, twins = ([r for r in by_label[name] if r.id in common] for name in (label, f"{label}{SUFFIX}"))
        pair, changed = refinement_effect(label, answered, twins, n_boot=bootstrap, seed=seed)
        effects.append({"pipeline": label, "before": pair[0].pipeline, "changed_replies": changed,
                        "figures": [q.as_dict() for q in pair]})
        heading = (f"what refinement changed in {label}, paired by item: {pair[0].pipeline} is its reply before "
                   f"refinement; {changed} of {len(answered)} replies differ")
        # with the pair alone, the table above is already this one, paired against the twin
        table += "\n\n" + (render(pair, title=heading) if len(rows) > 2 else f"{heading} (the table above)")
    (out / "quality.md").write_text(table + (f"\n--set {' '.join(sets)} (pipelines with a + in their name)\n"
                                             if sets else ""), encoding="utf-8")
    figures = {"title": title, "sets": list(sets or []), "items": len(common), "pipelines": [q.as_dict() for q in figures_of]}
    if effects:
        figures["refinement"] = effects
    (out / "quality.json").write_text(json.dumps(figures, indent=2), encoding="utf-8")
    typer.echo(json.dumps(figures, indent=2) if as_json else table)
