"""Do user types read from token probabilities change the decisions, and which way?

    .venv/bin/python tests/bench/user_readings.py --data ../shared/data [--split test] [--per-group 12]
        [--model qwen2.5-coder-1.5b --threads 1] [--out readings.jsonl] [--records csa.jsonl]

For each item of the quality mix (`pearl bench quality`'s seeded sample) it reads the two questions of
`pearl.strategies.user_readings` about the person's words (two one-token calls) and prints, per label
(safe, unsafe, crisis), the mean readings, the AUC of `danger` for the harmful requests and of
`distress` for the crisis messages, and the user type the read posterior judges most probable.

With `--records` (a `pearl bench quality` / `pearl eval` output of a `csa` run, which stores each step's
output), it decides every stored item again, with no model call: the stored reaction table and decision
parameters, the read posterior in place of the written one (`pearl.strategies.decide.solve`). It prints
the written and the read decision per label and the ids whose decision changes: the items a `risk.user_types
= "read"` run has to answer again. `--out` appends one line per item and resumes.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import dspy

from pearl.csa import Decision, ReactionTable
from pearl.evaluation.quality import outputs_of
from pearl.host.backend import BackendSettings, resolve_settings
from pearl.host.dataset import load_dataset
from pearl.host.manager import get_host
from pearl.io.results import ResultRecord, latest_by_id, read_records
from pearl.runtime.session import make_lm
from pearl.strategies.decide import judged_user, solve
from pearl.strategies.user_readings import posterior_from_readings, read_user

LABELS = ("safe", "unsafe", "crisis")


def auc(pos: list[float], neg: list[float]) -> float:
    if not pos or not neg:
        return float("nan")
    return sum((a > b) + 0.5 * (a == b) for a in pos for b in neg) / (len(pos) * len(neg))


def redecide(record: ResultRecord, readings: dict[str, float]) -> tuple[str, str] | None:
    """(written decision, read decision) of a stored csa record, or None when it stores no table."""
    tables, decisions = outputs_of(record, ReactionTable), outputs_of(record, Decision)
    if not tables or not decisions:
        return None
    table = ReactionTable.model_validate(tables[0])
    written = Decision.model_validate(decisions[0])
    costs = {s.name: s.cost for s in table.library}
    read = solve(table, posterior_from_readings(readings), costs, alpha=written.alpha, beta=written.beta,
                 gamma=written.gamma, tau=written.tau, epsilon=written.epsilon)
    return written.strategy, read.strategy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="the shared data folder (the quality mix's sources)")
    ap.add_argument("--split", default="dev", help="dev (default), test or all")
    ap.add_argument("--per-group", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None, help="append one JSON line per item; resumed")
    ap.add_argument("--records", default=None, help="stored csa records to decide again with the read posterior")
    args = ap.parse_args()

    host = get_host()
    options = {"per_group": args.per_group, "seed": args.seed, "split": args.split}
    _, items = load_dataset(f"quality-mix:{args.data}", host, options)
    done: dict[str, dict] = {}
    if args.out and Path(args.out).exists():
        done = {r["id"]: r for r in map(json.loads, Path(args.out).read_text(encoding="utf-8").splitlines())}
    lm = None
    rows = []
    for item in items:
        if item.id not in done:
            if lm is None:
                overrides = {"threads": args.threads} if args.threads else {}
                lm = make_lm(resolve_settings(BackendSettings(), model=args.model, **overrides), host)
            with dspy.context(lm=lm):
                readings = read_user(lm, item.conversation.user_words)
            done[item.id] = {"id": item.id, "expect": item.labels.get("expect"), "readings": readings}
            if args.out:
                with open(args.out, "a", encoding="utf-8") as f:
                    f.write(json.dumps(done[item.id]) + "\n")
        rows.append(done[item.id])
        r = rows[-1]
        print(item.id, r["expect"], judged_user(posterior_from_readings(r["readings"])),
              " ".join(f"{k} {v:.2f}" for k, v in r["readings"].items()), flush=True)
    report(rows)
    if args.records:
        report_decisions(rows, args.records)


def report(rows: list[dict]) -> None:
    print(f"\n{len(rows)} items")
    print(f"{'label':<8} {'n':>3} {'danger':>7} {'distress':>9}   judged user (read posterior)")
    for e in LABELS:
        sel = [r for r in rows if r["expect"] == e]
        mean = lambda k: sum(r["readings"][k] for r in sel) / max(1, len(sel))  # noqa: E731
        judged = Counter(judged_user(posterior_from_readings(r["readings"])) for r in sel)
        print(f"{e:<8} {len(sel):>3} {mean('danger'):>7.2f} {mean('distress'):>9.2f}   {dict(judged.most_common())}")
    for k, e in (("danger", "unsafe"), ("distress", "crisis")):
        print(f"AUC of {k} for {e}: {auc([r['readings'][k] for r in rows if r['expect'] == e], [r['readings'][k] for r in rows if r['expect'] != e]):.2f}")


def report_decisions(rows: list[dict], path: str) -> None:
    readings = {r["id"]: r["readings"] for r in rows}
    changed: list[str] = []
    per_label: dict[str, tuple[Counter, Counter]] = {e: (Counter(), Counter()) for e in LABELS}
    for record in latest_by_id(read_records(Path(path))[0]).values():
        if record.id not in readings:
            continue
        pair = redecide(record, readings[record.id])
        if pair is None:
            continue
        expect = record.labels.get("expect")
        if expect in per_label:
            per_label[expect][0][pair[0]] += 1
            per_label[expect][1][pair[1]] += 1
        if pair[0] != pair[1]:
            changed.append(record.id)
    print(f"\ndecisions, written posterior -> read posterior ({path}):")
    for e, (written, read) in per_label.items():
        print(f"  {e}: {dict(written.most_common())}  ->  {dict(read.most_common())}")
    print(f"{len(changed)} decisions change: {','.join(changed)}")


if __name__ == "__main__":
    main()
