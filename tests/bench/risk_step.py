"""The `risk` step, compiled or not, scored on a labelled set: risk metric, risky flag, category.

    python tests/bench/risk_step.py --labels runs/risk-sets/test.jsonl --model qwen2.5-coder-1.5b \
        --out runs/risk-test.before.jsonl
    python tests/bench/risk_step.py --labels runs/risk-sets/test.jsonl --model qwen2.5-coder-1.5b \
        --compiled pipelines/compiled/qwen2.5-coder-1.5b --out runs/risk-test.after.jsonl

The sets come from `tests/bench/risk_sets.py`. The step runs as `pearl optimize` scores it
(`pearl.optimization.optimize.PipelineProgram` over `tests/bench/risk_classify.toml`: the
csa risk step without its guideline call, one LM call per conversation), and each row is
appended to `--out` as it is scored, so an interrupted run resumes. Printed: the risk
metric's mean, the risky flag's accuracy and Cohen's κ against the human label, category
accuracy where the set names accepted categories, each with a bootstrap 95% interval,
and the same per group.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def summarise(rows: list[dict], labels: dict[str, dict], groups: dict[str, str]) -> list[str]:
    from pearl.evaluation.agreement import cohen_kappa
    from pearl.evaluation.metrics import bootstrap
    from pearl.optimization.metrics import predicted_risky, truth_of

    def line(name: str, subset: list[dict]) -> str:
        flags = [(truth_of(labels[r["id"]]["risky"]), bool(predicted_risky((r.get("output") or {}).get("assessment"))))
                 for r in subset if "risky" in labels[r["id"]]]
        cats = [r["parts"]["category"] for r in subset if "category" in (r.get("parts") or {})]
        text = f"{name:<22} n={len(subset):<3} metric {bootstrap([r['score'] for r in subset]).fmt(digits=3)}"
        if flags:
            text += f" · risky flag {bootstrap([float(a == b) for a, b in flags]).fmt(digits=3)}"
            if len({a for a, _ in flags}) > 1:
                text += f" κ {cohen_kappa([a for a, _ in flags], [b for _, b in flags], (True, False)):.2f}"
            text += f" (called risky {sum(b for _, b in flags)}/{len(flags)})"
        if cats:
            text += f" · category {bootstrap(cats).fmt(digits=3)}"
        errors = sum("error" in r for r in subset)
        return text + (f" · {errors} errors" if errors else "")

    out = [line("all", rows)]
    for group in sorted(set(groups.values())):
        out.append(line(group, [r for r in rows if groups[r["id"]] == group]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", required=True, help="a labelled JSONL file (tests/bench/risk_sets.py)")
    parser.add_argument("--model", default="qwen2.5-coder-1.5b", help="a catalogue name or a GGUF path")
    parser.add_argument("--compiled", default=None, help="a compiled folder whose manifest has a `risk` step")
    parser.add_argument("--out", required=True, help="JSONL rows, appended as scored (resumable)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--set", dest="sets", action="append", default=[],
                        help="STEP.PARAM=VALUE on tests/bench/risk_classify.toml, e.g. risk.catalogue=described")
    args = parser.parse_args()

    from pearl.host.manager import get_host
    from pearl.optimization.labelled import load_examples
    from pearl.optimization.metrics import RiskMetric
    from pearl.optimization.optimize import PipelineProgram, score_program
    from pearl.runtime.compiled import apply_compiled
    from pearl.runtime.overrides import parse_overrides
    from pearl.runtime.pipeline import load
    from pearl.runtime.session import make_lm, resolve_settings

    host = get_host()
    pipeline = load(str(BENCH / "risk_classify.toml"), host, parse_overrides(args.sets))
    if args.compiled:
        print(f"loaded {', '.join(apply_compiled(pipeline, args.compiled))} from {args.compiled}", flush=True)
    lm = make_lm(resolve_settings(pipeline.spec.backend, model=args.model, threads=args.threads), host)
    program = PipelineProgram(pipeline, ["risk"], {"task": lm}, score_answer=False, host=host)
    examples = load_examples(args.labels)
    raw = [json.loads(line) for line in open(args.labels, encoding="utf-8") if line.strip()]
    labels = {r["id"]: r["labels"] for r in raw}
    groups = {r["id"]: r.get("group", "all") for r in raw}
    start, done = time.perf_counter(), [0]

    def advance() -> None:
        done[0] += 1
        print(f"\r{done[0]}/{len(examples)} scored, {time.perf_counter() - start:.0f} s", end="", flush=True)

    result = score_program(program, examples, RiskMetric(), Path(args.out), advance)
    print(f"\n{args.labels} · model {args.model} · compiled {args.compiled or 'no'} · {' '.join(args.sets) or 'no --set'} "
          f"· program {result.rows[0]['program']}")
    for text in summarise(result.rows, labels, groups):
        print(text)


if __name__ == "__main__":
    main()
