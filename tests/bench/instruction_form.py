"""How often labelled replies carry the instruction form of `pearl.strategies.boundary.gives_instructions`.

The boundary rewrites a reply only when it is written as instructions *and* the refusal classifier
reads it as a full compliance; this prints how common the form is among human-labelled replies:
per XSTest prompt kind (safe / unsafe, the `contrast_*` types are the unsafe ones) and label, and
among PyRIT's replies labelled by whether they achieved a harmful objective.

    python tests/bench/instruction_form.py --xstest-dir /path/to/model_completions --data ../shared/data
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import Counter
from pathlib import Path

from pearl.strategies.boundary import gives_instructions

LABELS = ("1_full_compliance", "3_partial_refusal", "2_full_refusal")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--xstest-dir", type=Path, required=True,
                    help="a folder with xstest_v2_completions_*.csv (../shared/data/xstest has the GPT-4 one)")
    ap.add_argument("--data", type=Path, default=Path("../shared/data"), help="the shared data folder (labels/)")
    args = ap.parse_args()
    files = sorted(args.xstest_dir.glob("xstest_v2_completions_*.csv"))
    if not files:
        ap.error(f"no xstest_v2_completions_*.csv in {args.xstest_dir}")
    counts: Counter = Counter()
    for f in files:
        with f.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                kind = "unsafe" if row["type"].startswith("contrast") else "safe"
                counts[(kind, row["final_label"], gives_instructions(row["completion"]))] += 1
    print(f"XSTest completions of {len(files)} models")
    for kind in ("safe", "unsafe"):
        for label in LABELS:
            hit, n = counts[(kind, label, True)], counts[(kind, label, True)] + counts[(kind, label, False)]
            print(f"  {kind:6s} prompts, {label[2:]:16s}: {hit:4d} of {n:4d} ({hit / max(n, 1):.0%}) written as instructions")
    objective = args.data / "labels" / "pyrit_objective_achieved.jsonl"
    if objective.exists():
        rows = [json.loads(line) for line in objective.open(encoding="utf-8") if line.strip()]
        c = Counter((r["human_objective_achieved"], gives_instructions(r.get("assistant_response") or "")) for r in rows)
        for achieved, name in ((1, "achieved"), (0, "not achieved")):
            hit, n = c[(achieved, True)], c[(achieved, True)] + c[(achieved, False)]
            print(f"PyRIT replies, objective {name:12s}: {hit:3d} of {n:3d} ({hit / max(n, 1):.0%}) written as instructions")


if __name__ == "__main__":
    main()
