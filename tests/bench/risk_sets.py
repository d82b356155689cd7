"""Labelled sets for the `risk` step, drawn from the human-labelled shared data, split by prompt.

    python tests/bench/risk_sets.py --data ../shared/data --out runs/risk-sets

writes three files in the `pearl optimize` format (`{"id", "messages", "labels"}` per line):

- `dev-train.jsonl` and `dev-val.jsonl`: prompts on the **dev** side of
  `pearl.host.dataset.split_of` (seed 0), for compiling and for choosing among compiled
  programs. `dev-train` holds only the groups whose labels pin the whole answer
  (`--compile-groups`: an ordinary request is category "unknown", level R0, severity 0; a
  flagged one has its accepted categories), so a bootstrapped demo cannot carry a wrong
  category that a `risky`-only label lets through;
- `test.jsonl`: prompts on the **test** side, for the figures reported.

Groups, and the labels each carries (only what people labelled, mapped, never guessed):

| group | source | labels |
|---|---|---|
| `xstest-safe` | XSTest prompts labelled safe (benign look-alikes) | `risky: false` |
| `xstest-unsafe` | XSTest prompts labelled unsafe | `risky: true` |
| `moderation-none` | OpenAI moderation texts with no flag | `risky: false` |
| `moderation-self-harm` | texts flagged SH (mostly first-person crisis messages) | `risky: true`, `category` |
| `moderation-harm` | flagged H, HR, V, H2 or V2 and not SH | `risky: true`, `category` |
| `moderation-sexual` | flagged S or S3 only (oyster has no such category) | `risky: true` |

`category` lists the oyster ids the human codes map to (`pearl.strategies.risk_judge.
MODERATION_TO_OYSTER`), separated by "|": any of them is right. Each group is drawn with
its own seeded generator (`--seed`), and the rows are interleaved group by group, so a
bootstrap optimizer that takes the first good runs as demos sees every group early.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from pathlib import Path

from pearl.host.dataset import split_of
from pearl.strategies.risk_judge import MODERATION_TO_OYSTER

MODERATION_CODES = ("S", "H", "V", "HR", "SH", "S3", "H2", "V2")
HARM_CODES = ("H", "HR", "V", "H2", "V2")
COMPILE_GROUPS = ("xstest-safe", "moderation-none", "moderation-self-harm", "moderation-harm")


def xstest_rows(data: Path):
    with open(data / "xstest" / "xstest_prompts.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            safe = row["label"].strip() == "safe"
            yield ("xstest-safe" if safe else "xstest-unsafe", f"xstest-{row['id']}", row["prompt"],
                   {"risky": not safe})


def moderation_rows(data: Path):
    with open(data / "labels" / "openai_moderation.jsonl", encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            row = json.loads(line)
            flags = [c for c in MODERATION_CODES if row.get(c) == 1]
            if not flags:
                yield "moderation-none", row["id"], row["prompt"], {"risky": False}
                continue
            mapped = sorted({cat for code in flags for cat in MODERATION_TO_OYSTER[code]})
            if "SH" in flags:
                group = "moderation-self-harm"
            elif any(c in HARM_CODES for c in flags):
                group = "moderation-harm"
            else:
                group = "moderation-sexual"
            labels = {"risky": True}
            if mapped:
                labels["category"] = "|".join(mapped)
            yield group, row["id"], row["prompt"], labels


def interleave(groups: dict[str, list]) -> list:
    """Round-robin over the groups (in their given order) until every group is used up."""
    out, queues = [], [list(rows) for rows in groups.values()]
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="the shared data folder")
    parser.add_argument("--out", type=Path, required=True, help="folder for dev-train / dev-val / test .jsonl")
    parser.add_argument("--train", type=int, default=8, help="dev rows per compile group for compiling")
    parser.add_argument("--val", type=int, default=3, help="other dev rows per group for choosing")
    parser.add_argument("--test", type=int, default=10, help="test rows per group for reporting")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compile-groups", default=",".join(COMPILE_GROUPS),
                        help="the groups dev-train draws from (comma-separated)")
    args = parser.parse_args()

    by_side: dict[str, dict[str, list]] = {"dev": {}, "test": {}}
    for group, row_id, prompt, labels in [*xstest_rows(args.data), *moderation_rows(args.data)]:
        side = split_of(prompt, args.seed)
        by_side[side].setdefault(group, []).append(
            {"id": row_id, "group": group, "messages": [{"role": "user", "content": prompt}], "labels": labels})
    sets: dict[str, dict[str, list]] = {"dev-train": {}, "dev-val": {}, "test": {}}
    for group in sorted(by_side["dev"]):
        rows = random.Random(f"{args.seed}:{group}").sample(by_side["dev"][group], len(by_side["dev"][group]))
        if group in args.compile_groups.split(","):
            sets["dev-train"][group] = rows[: args.train]
        sets["dev-val"][group] = rows[args.train: args.train + args.val]
    for group in sorted(by_side["test"]):
        rows = random.Random(f"{args.seed}:{group}").sample(by_side["test"][group], len(by_side["test"][group]))
        sets["test"][group] = rows[: args.test]
    args.out.mkdir(parents=True, exist_ok=True)
    for name, groups in sets.items():
        rows = interleave(groups)
        with open(args.out / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        sizes = ", ".join(f"{g} {len(r)}" for g, r in groups.items())
        print(f"{args.out / (name + '.jsonl')}: {len(rows)} rows ({sizes})")


if __name__ == "__main__":
    main()
