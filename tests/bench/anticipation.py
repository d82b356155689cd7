"""Decision agreement of the cheaper anticipation modes with the 24-call `pairs` mode.

    .venv/bin/python tests/bench/anticipation.py [--limit 3] [--start 0] [--modes pairs,strategy,table]
        [--backend NAME --backend-url URL --model M] [--out rows.jsonl]

For each conversation (`--limit` lines of `tests/bench/conversations.jsonl` from line
`--start`, or of `--conversations FILE`), the `csa` pipeline's `risk` step runs once; then the `anticipate`
step runs in every listed mode on that same assessment, each followed by `decide` with
the `csa` pipeline's parameters. It prints, per mode, the calls, tokens and seconds of
`anticipate`, and how often its decision (the chosen strategy, and whether it is inside
the safety boundary) equals the first mode's (`pairs` by default: one call per
(strategy, user type) pair).
"""

from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path

from pearl.csa import RiskAssessment
from pearl.host.backend import resolve_settings
from pearl.host.manager import get_host
from pearl.host.step import RunState
from pearl.io.conversations import to_conversation
from pearl.runtime.pipeline import compile_spec, resolve
from pearl.runtime.runner import Runner
from pearl.runtime.session import make_lm

HERE = Path(__file__).resolve().parent


def pipeline_for(mode: str) -> dict:
    """The `csa` pipeline without refinement, anticipating in `mode` (only risk, anticipate and decide run)."""
    csa = tomllib.loads(resolve("csa").read_text(encoding="utf-8"))
    steps = {k: v for k, v in csa["steps"].items() if k != "refine"}
    steps["anticipate"] = {**steps["anticipate"], "mode": mode}
    return {"name": f"anticipate-{mode}", "answer": "draft", "backend": csa.get("backend", {}), "steps": steps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modes", default="pairs,strategy,table")
    ap.add_argument("--conversations", default=str(HERE / "conversations.jsonl"))
    ap.add_argument("--limit", type=int, default=3)
    ap.add_argument("--start", type=int, default=0, help="skip this many conversations first")
    ap.add_argument("--backend", default=None)
    ap.add_argument("--backend-url", default=None)
    ap.add_argument("--model", default=None)
    ap.add_argument("--out", default=None, help="append one JSON line per (conversation, mode)")
    args = ap.parse_args()

    host = get_host()
    modes = [m for m in args.modes.split(",") if m]
    runners = {}
    for mode in modes:
        pipeline = compile_spec(pipeline_for(mode), host, source=f"csa.toml (anticipate mode {mode})")
        runners[mode] = pipeline
    settings = resolve_settings(runners[modes[0]].spec.backend, name=args.backend, model=args.model,
                                url=args.backend_url)
    lm = make_lm(settings, host)
    runners = {m: Runner(p, {"task": lm}, host, backend_name=settings.name) for m, p in runners.items()}
    lines = Path(args.conversations).read_text(encoding="utf-8").splitlines()
    conversations = [to_conversation(json.loads(line)) for line in lines if line.strip()][args.start:][: args.limit]

    stats = {m: {"calls": 0, "prompt_tokens": 0, "cached_tokens": 0, "completion_tokens": 0, "seconds": 0.0,
                 "same_strategy": 0, "same_admissible": 0} for m in modes}
    for i, conv in enumerate(conversations):
        assessment = RiskAssessment.model_validate(runners[modes[0]].run_steps(RunState(conv), ["risk"])["risk"].output)
        decisions = {}
        for mode in modes:
            state = RunState(conv)
            state.set("assessment", assessment)
            records = runners[mode].run_steps(state, ["anticipate", "decide"])
            rec, decision = records["anticipate"], records["decide"].output
            decisions[mode] = (decision["strategy"], decision["admissible"])
            s = stats[mode]
            for key in ("calls", "prompt_tokens", "cached_tokens", "completion_tokens"):
                s[key] += getattr(rec.usage, key)
            s["seconds"] += rec.seconds
            s["same_strategy"] += decisions[mode][0] == decisions[modes[0]][0]
            s["same_admissible"] += decisions[mode][1] == decisions[modes[0]][1]
            if args.out:
                with open(args.out, "a", encoding="utf-8") as f:
                    f.write(json.dumps({"conversation": args.start + i, "mode": mode, "assessment": assessment.model_dump(),
                                        "anticipate": rec.model_dump(), "decision": decision}) + "\n")
        print(f"conversation {i}: {assessment.category} {assessment.level}; "
              + "; ".join(f"{m} -> {d[0]}{'' if d[1] else ' (outside)'}" for m, d in decisions.items()), flush=True)

    n = max(len(conversations), 1)
    print(f"\n{len(conversations)} conversation(s), model {getattr(lm, 'model', None)}; per answer:")
    print(f"{'mode':<10} {'calls':>6} {'prompt':>8} {'cached':>8} {'compl':>7} {'seconds':>8}  same decision as {modes[0]}")
    for m, s in stats.items():
        print(f"{m:<10} {s['calls'] / n:>6.1f} {s['prompt_tokens'] / n:>8.0f} {s['cached_tokens'] / n:>8.0f} "
              f"{s['completion_tokens'] / n:>7.0f} {s['seconds'] / n:>8.1f}  strategy {s['same_strategy']}/{n}, "
              f"boundary {s['same_admissible']}/{n}")


if __name__ == "__main__":
    main()
