"""Measure Lingo-BP on the embedded model: LLM calls, tokens and wall time per request.

    .venv/bin/python tests/bench/lingobp.py [--schedule both,both,both] [--backward chain|level|node]
        [--out results.jsonl]

Runs the refine step after fixed test-double assessment and chain steps (no LM) and the
real `recombine` step, on the embedded model, and prints the refinement's usage next to
the call count of the reference implementation's one-call-at-a-time schedule for the
same schedule (2 initial judge calls, then per step: 1 backward call for all nodes,
1 recombination, 2 judge calls).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: the named test doubles

from lingobp_doubles import DoublesPlugin, pipeline_doc  # noqa: E402

from pearl.host.backend import BackendSettings  # noqa: E402
from pearl.host.manager import Host  # noqa: E402
from pearl.runtime.pipeline import compile_spec  # noqa: E402
from pearl.plugins.llamacpp import LlamaCppBackend  # noqa: E402
from pearl.runtime.runner import Runner  # noqa: E402
from pearl.strategies.lingobp import JUDGE_CALLS, backward_calls, planned_calls  # noqa: E402
from pearl.types import Conversation  # noqa: E402


def reference_calls(schedule: list[str]) -> int:
    return JUDGE_CALLS + len(schedule) * (1 + 1 + JUDGE_CALLS)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--schedule", default="both,both,both")
    ap.add_argument("--text", default="I'm locked out of my own house, how do I open the door?")
    ap.add_argument("--out", default=None)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--backward", default="chain", choices=["chain", "level", "node"])
    ap.add_argument("--model", default="tiny", help="a catalogue name or GGUF path (default: the packaged 270M)")
    args = ap.parse_args()
    schedule = [s for s in args.schedule.split(",") if s]
    host = Host(third_party=False)
    host.register(DoublesPlugin(), name="bench.doubles")
    lm = LlamaCppBackend().create(BackendSettings(model=args.model, max_tokens=args.max_tokens, n_ctx=4096))
    pipeline = compile_spec(pipeline_doc(schedule=schedule, max_calls=200, backward=args.backward), host)
    t0 = time.perf_counter()
    result = Runner(pipeline, {"task": lm}, host).run(Conversation.from_text(args.text))
    wall = time.perf_counter() - t0
    ref = result.output("refine")
    steps = len(ref["iterations"]) - 1
    from lingobp_doubles import RISKY_CHAIN

    # sequential rounds per step: the backward pass's rounds (node mode: one concurrent batch per depth), recombine, judges
    per_step_rounds = backward_calls("both", RISKY_CHAIN, "level" if args.backward == "node" else args.backward) + 1 + 1
    report = {
        "schedule": schedule, "iterations": len(ref["iterations"]), "stop_reason": ref["stop_reason"],
        "stop_detail": ref["stop_detail"], "chosen": ref["chosen"], "flagged": ref["flagged"],
        "scores": [(it["satisfaction"] or {}).get("score") for it in ref["iterations"]],
        "safety": [(it["safety"] or {}).get("label") for it in ref["iterations"]],
        "refine_usage": ref["usage"], "refine_seconds": result.steps["refine"].seconds,
        "request_usage": result.usage.model_dump(), "request_wall_s": wall,
        "reference_calls_same_steps": reference_calls(["both"] * steps),
        "reference_calls_full_schedule": reference_calls(schedule),
        "backward": args.backward,
        "ours_planned_full_schedule": JUDGE_CALLS + sum(planned_calls(m, RISKY_CHAIN, args.backward) for m in schedule),
        "sequential_rounds_ours_full_schedule": 1 + len(schedule) * per_step_rounds,
    }
    print(json.dumps(report, indent=2))
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(result.model_dump_json() + "\n")


if __name__ == "__main__":
    main()
