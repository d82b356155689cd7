"""Cost per answer of the shipped pipelines: the script form of `pearl bench cost`.

    .venv/bin/python tests/bench/cost.py [--pipelines direct,minimal,refuse-first,csa-lite,csa]
        [--limit 2] [--backend NAME --backend-url URL --model M] [--set STEP.PARAM=VALUE ...]
        [--refine N] [--no-speed] [--out results.jsonl] [--json]

What it measures and how (the token-time limit, the ratio): `pearl.plugins.bench_cost`.
The conversations are the first `--limit` lines of tests/bench/conversations.jsonl
(`--conversations FILE` for others). Before/after of issue 14 on the embedded model:

    tests/bench/cost.py --model tiny --limit 1 --pipelines csa \
        --set anticipate.mode=pairs --set refine.backward=node --set refine.max_calls=60   # before
    tests/bench/cost.py --model tiny --limit 1                                              # after
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pearl.plugins.bench_cost import PIPELINES, load_conversations, render, run_cost

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pipelines", default=",".join(PIPELINES))
    ap.add_argument("--conversations", default=str(HERE / "conversations.jsonl"))
    ap.add_argument("--limit", type=int, default=2, help="conversations per pipeline")
    ap.add_argument("--backend", default=None)
    ap.add_argument("--backend-url", default=None)
    ap.add_argument("--model", default=None)
    ap.add_argument("--set", action="append", default=[], metavar="STEP.PARAM=VALUE")
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="backend option")
    ap.add_argument("--refine", type=int, default=None, help="Lingo-BP steps of csa (schedule of N 'both')")
    ap.add_argument("--no-speed", action="store_true", help="skip the speed probe (no limit, no ratio)")
    ap.add_argument("--out", default=None, help="append every Result as a JSON line")
    ap.add_argument("--json", action="store_true", help="print the report as JSON too")
    args = ap.parse_args()
    report = run_cost([p for p in args.pipelines.split(",") if p], load_conversations(args.conversations, args.limit),
                      backend=args.backend, url=args.backend_url, model=args.model, sets=args.set,
                      refine=args.refine, speed=not args.no_speed, out=args.out, options=args.option,
                      progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(render(report))
    if args.json:
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
