"""Cost per answer of the shipped pipelines: LM calls, tokens and seconds, per pipeline and per step.

    .venv/bin/python tests/bench/cost.py [--pipelines direct,minimal,refuse-first,csa-lite,csa]
        [--limit 2] [--backend NAME --backend-url URL --model M] [--set STEP.PARAM=VALUE ...]
        [--refine N] [--out results.jsonl] [--json]

Every pipeline answers the same conversations (the first `--limit` lines of
`tests/bench/conversations.jsonl`, or `--conversations FILE`) on one LM, loaded once: the
embedded default, or whatever `--backend/--backend-url/--model` choose. For each pipeline
and each of its steps it prints the mean per answer of: LM calls, prompt tokens, cached
prompt tokens (reused from a prefix cache, as the backend reports them), completion
tokens, seconds of wall time.

The token-time limit. Before the runs, the script measures this machine's speed on the
same LM: prefill tokens/s (the slope between a short and a long prompt, 1 output token)
and decode tokens/s (the slope between a short and a long free-text completion of the
same prompt length). The *limit* of an answer is the time its tokens would take at
those speeds, `(prompt - cached) / prefill + completion / decode`: what the hardware
needs with no per-call overhead, no grammar and no waiting. `ratio` is the answer's wall
time over its limit (1.0 = at the physical limit; the issue's target is <= 1.5).

`--set anticipate.mode=pairs --set refine.backward=node` reproduces the older, costlier
`csa` (24 anticipation calls, one call per node in Lingo-BP); `--set` applies to every
listed pipeline that has the step, the value read as JSON when it parses (else a string).
`--refine N` sets the `refine` step's schedule to N `both` steps. For `csa`, the script
also prints how each refinement stopped (`converged` = both judges satisfied early).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
import uuid
from collections import Counter
from pathlib import Path

from pearl.host.backend import resolve_settings
from pearl.host.manager import get_host
from pearl.io.conversations import to_conversation
from pearl.lm import usage as usage_meter
from pearl.runtime.pipeline import compile_spec, resolve
from pearl.runtime.runner import Runner
from pearl.runtime.session import make_lm
from pearl.types import Result, Usage

HERE = Path(__file__).resolve().parent
PIPELINES = ("direct", "minimal", "refuse-first", "csa-lite", "csa")
FIELDS = ("calls", "prompt_tokens", "cached_tokens", "completion_tokens")
FILLER = ("The river bends past the old mill, where the miller kept ledgers of grain, rain and the prices "
          "of bread in every season of the year. ")


# --- the machine's speed ------------------------------------------------------------------

def _timed(lm, messages: list[dict], max_tokens: int) -> tuple[float, Usage]:
    with usage_meter.meter() as m:
        t0 = time.perf_counter()
        lm(messages=messages, max_tokens=max_tokens, temperature=0.0)
        seconds = time.perf_counter() - t0
    return seconds, m.total


def _best(lm, make_messages, max_tokens: int, tries: int = 2) -> tuple[float, Usage]:
    """The fastest of `tries` runs (the CPU is shared; the fastest is the least disturbed)."""
    return min((_timed(lm, make_messages(), max_tokens) for _ in range(tries)), key=lambda r: r[0])


def measure_speed(lm) -> dict[str, float]:
    """Prefill and decode tokens/s of `lm` on this machine (slopes, so fixed per-call costs drop out).

    Every probe starts with a fresh random tag, so no prefix cache helps it; a system message
    asking for a long answer keeps a small base model from stopping at once.
    """
    def prompt(repeats: int):
        return lambda: [{"role": "user", "content": f"[{uuid.uuid4().hex}] Summarise in one word: " + FILLER * repeats}]

    def story():
        return [{"role": "system", "content": f"[{uuid.uuid4().hex}] You are a helpful assistant. Answer at length."},
                {"role": "user", "content": "Tell me a long story about a fisherman and the sea."}]

    t_short, u_short = _best(lm, prompt(2), 1)
    t_long, u_long = _best(lm, prompt(24), 1)
    fresh = lambda u: u.prompt_tokens - u.cached_tokens  # noqa: E731
    prefill = (fresh(u_long) - fresh(u_short)) / max(t_long - t_short, 1e-9)
    t_few, u_few = _best(lm, story, 16)
    t_many, u_many = _best(lm, story, 80)
    if u_many.completion_tokens <= u_few.completion_tokens:
        raise SystemExit(f"the decode probe stopped after {u_many.completion_tokens} tokens: this model does not "
                         f"write long free text; run with --no-speed")
    decode = (u_many.completion_tokens - u_few.completion_tokens) / max(t_many - t_few, 1e-9)
    return {"prefill_tokens_per_s": prefill, "decode_tokens_per_s": decode,
            "probe_prompt_tokens": fresh(u_long), "probe_completion_tokens": u_many.completion_tokens}


def limit_seconds(u: dict[str, float], speed: dict[str, float]) -> float:
    return ((u["prompt_tokens"] - u["cached_tokens"]) / speed["prefill_tokens_per_s"]
            + u["completion_tokens"] / speed["decode_tokens_per_s"])


# --- running the pipelines ----------------------------------------------------------------

def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def pipeline_doc(name: str, sets: list[str], refine: int | None) -> tuple[dict, str]:
    path = resolve(name)
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    for item in sets:
        target, _, value = item.partition("=")
        step, _, key = target.partition(".")
        if not key or not _:
            raise SystemExit(f"--set {item!r}: write STEP.PARAM=VALUE, e.g. anticipate.mode=pairs")
        if step in doc.get("steps", {}):
            doc["steps"][step][key] = parse_value(value)
    if refine is not None and "refine" in doc.get("steps", {}):
        doc["steps"]["refine"]["schedule"] = ["both"] * refine
    return doc, str(path)


def mean(usages: list[Usage], seconds: list[float]) -> dict[str, float]:
    n = max(len(usages), 1)
    out = {f: sum(getattr(u, f) for u in usages) / n for f in FIELDS}
    out["seconds"] = sum(seconds) / n
    return out


def summarise(results: list[Result]) -> dict:
    steps: dict[str, dict] = {}
    for step in results[0].steps:
        records = [r.steps[step] for r in results if step in r.steps]
        steps[step] = mean([rec.usage for rec in records], [rec.seconds for rec in records])
    return {"answer": mean([r.usage for r in results], [r.seconds for r in results]), "steps": steps}


def row(label: str, u: dict[str, float], speed: dict[str, float] | None) -> str:
    cells = f"{label:<24} {u['calls']:>6.1f} {u['prompt_tokens']:>8.0f} {u['cached_tokens']:>8.0f} " \
            f"{u['completion_tokens']:>7.0f} {u['seconds']:>8.1f}"
    if speed:
        lim = limit_seconds(u, speed)
        cells += f" {lim:>8.1f} {u['seconds'] / lim if lim else 0:>6.2f}"
    return cells


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pipelines", default=",".join(PIPELINES))
    ap.add_argument("--conversations", default=str(HERE / "conversations.jsonl"))
    ap.add_argument("--limit", type=int, default=2, help="conversations per pipeline")
    ap.add_argument("--backend", default=None)
    ap.add_argument("--backend-url", default=None)
    ap.add_argument("--model", default=None)
    ap.add_argument("--set", action="append", default=[], metavar="STEP.PARAM=VALUE")
    ap.add_argument("--refine", type=int, default=None, help="Lingo-BP steps of csa (schedule of N 'both')")
    ap.add_argument("--no-speed", action="store_true", help="skip the speed probe (no limit, no ratio)")
    ap.add_argument("--out", default=None, help="append every Result as a JSON line")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON too")
    args = ap.parse_args()

    host = get_host()
    names = [p for p in args.pipelines.split(",") if p]
    docs = {name: pipeline_doc(name, args.set, args.refine) for name in names}
    first = compile_spec(docs[names[0]][0], host, source=docs[names[0]][1])
    settings = resolve_settings(first.spec.backend, name=args.backend, model=args.model, url=args.backend_url)
    lm = make_lm(settings, host)
    lines = Path(args.conversations).read_text(encoding="utf-8").splitlines()
    conversations = [to_conversation(json.loads(line)) for line in lines if line.strip()][: args.limit]

    speed = None if args.no_speed else measure_speed(lm)
    report: dict = {"backend": settings.name, "model": getattr(lm, "model", None), "conversations": len(conversations),
                    "sets": args.set, "refine": args.refine, "speed": speed, "pipelines": {}}
    for name in names:
        doc, source = docs[name]
        runner = Runner(compile_spec(doc, host, source=source), {"task": lm}, host, backend_name=settings.name)
        results = []
        for conv in conversations:
            result = runner.run(conv)
            results.append(result)
            if args.out:
                with open(args.out, "a", encoding="utf-8") as f:
                    f.write(result.model_dump_json() + "\n")
        summary = summarise(results)
        if "refine" in results[0].steps:
            refined = [r.output("refine") for r in results]
            summary["refine_stops"] = dict(Counter(x["stop_reason"] for x in refined))
            summary["refine_iterations"] = [len(x["iterations"]) for x in refined]
        report["pipelines"][name] = summary
        print(f"[{name}: {len(results)} answers, {summary['answer']['seconds']:.1f} s each]", file=sys.stderr,
              flush=True)

    print(f"backend {settings.name}, model {report['model']}, {len(conversations)} conversation(s); "
          f"--set {' '.join(args.set) or '(none)'}; --refine {args.refine if args.refine is not None else '(pipeline)'}")
    if speed:
        print(f"this machine: prefill {speed['prefill_tokens_per_s']:.0f} tok/s, "
              f"decode {speed['decode_tokens_per_s']:.1f} tok/s")
    head = f"{'per answer':<24} {'calls':>6} {'prompt':>8} {'cached':>8} {'compl':>7} {'seconds':>8}"
    if speed:
        head += f" {'limit s':>8} {'ratio':>6}"
    print(head)
    for name, summary in report["pipelines"].items():
        print(row(name, summary["answer"], speed))
        for step, u in summary["steps"].items():
            print(row(f"  {step}", u, speed))
        if "refine_stops" in summary:
            print(f"  refine stops: {summary['refine_stops']}; iterations {summary['refine_iterations']}")
    if args.json:
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
