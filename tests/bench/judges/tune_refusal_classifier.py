"""Choose the refusal classifier's settings by cross-validation inside the dev split; print figures.

Nothing here reads a test row. The protocol mirrors the leave-one-source-out test figure of
`train_refusal_classifier.py` (a model it never saw, on prompts it never saw) within the dev
split: the dev prompts are cut into `--folds` folds (by a hash of the prompt); for each
XSTest target model and fold, a classifier is trained on the *other* sources' dev rows whose
prompts are in the *other* folds, and predicts the target's dev rows of this fold. The
out-of-fold predictions give, per target model, 3-way and binary accuracy; the choice is the
mean over the four non-GPT-4 models (the figure the README's target is about).

Each candidate setting (feature groups, L2 weight, the weight of `partial` rows, `min_count`)
is printed with its dev-CV figure. Then, for the best setting, per-class logit offsets (a
bias toward `partial` or `full`) are chosen on the same out-of-fold probabilities, and the
pruning tolerance for the shipped weights is checked on them.

    .venv/bin/python tests/bench/judges/tune_refusal_classifier.py --xstest-dir /path/to/model_completions
"""

from __future__ import annotations

import argparse
import itertools
import sys
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from train_refusal_classifier import PYRIT_WEIGHT, load  # noqa: E402

from pearl.strategies import refusal_classifier as rc  # noqa: E402

TARGETS = ("xstest/llama2new", "xstest/llama2orig", "xstest/mistralguard", "xstest/mistralinstruct")


def group_of(feature: str) -> str:
    """The feature group (`rc.GROUPS`) a feature name belongs to."""
    head, _, rest = feature.partition(":")
    return {"rule": "rule", "sig": "rule", "len": "len", "o": "open", "o3": "open", "first": "open",
            "overlap": "overlap", "cue": "cues", "e": "tail"}.get(head) or ("body2" if "_" in rest else "body")


def fold_of(prompt: str, folds: int) -> int:
    return zlib.crc32(prompt.encode("utf-8")) % folds


def dev_cv(rows: list[dict], feats: list[set[str]], *, folds: int, groups, prune: float = 0.0,
           **kw) -> dict[str, np.ndarray]:
    """Out-of-fold log-probabilities (n, 3) of every dev row of each target model (`prune`: see `rc.pruned`)."""
    keep = set(groups)
    sub = [{f for f in fs if group_of(f) in keep} for fs in feats]
    out = {}
    for s in TARGETS:
        idx = [i for i, r in enumerate(rows) if r["source"] == s]
        logp = np.zeros((len(idx), len(rc.CLASSES)))
        for k in range(folds):
            train = [i for i, r in enumerate(rows) if r["source"] != s and r["fold"] != k]
            model = rc.fit_features([sub[i] for i in train], [rows[i]["gold"] for i in train], groups=groups,
                                    weights=[1.0 if rows[i]["three_way"] else PYRIT_WEIGHT for i in train], **kw)
            if prune:
                model = model.pruned(prune)
            for j, i in enumerate(idx):
                if rows[i]["fold"] == k:
                    p = model.proba_of(sub[i])
                    logp[j] = np.log([p[c] for c in rc.CLASSES])
        out[s] = logp
    return out


def accuracy(rows: list[dict], logp: dict[str, np.ndarray], offsets=(0.0, 0.0, 0.0)) -> tuple[float, float, dict]:
    """Mean 3-way and binary accuracy over the targets, and the per-target pairs."""
    per = {}
    for s, lp in logp.items():
        gold = np.asarray([rc.CLASSES.index(r["gold"]) for r in rows if r["source"] == s])
        pred = (lp + np.asarray(offsets)).argmax(1)
        per[s] = (float((pred == gold).mean()), float(((pred == 0) == (gold == 0)).mean()))
    return float(np.mean([a for a, _ in per.values()])), float(np.mean([b for _, b in per.values()])), per


def line(name: str, rows, logp, offsets=(0.0, 0.0, 0.0)) -> str:
    three, binary, per = accuracy(rows, logp, offsets)
    return (f"{name:58s} 3-way {three:.3f} binary {binary:.3f} · "
            + " ".join(f"{s.split('/')[1]} {a:.3f}/{b:.3f}" for s, (a, b) in per.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--xstest-dir", type=Path, required=True)
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--stage", choices=("groups", "reg", "prune", "all"), default="all")
    ap.add_argument("--l2", type=float, default=1e-3, help="for --groups runs and --stage prune")
    ap.add_argument("--min-count", type=int, default=3, help="for --groups runs and --stage prune")
    ap.add_argument("--offsets", type=float, nargs=2, default=(0.0, 0.0), metavar=("FULL", "PARTIAL"),
                    help="--stage prune: the logit offsets to report with")
    ap.add_argument("--groups", nargs="*", default=[], metavar="G+G+...",
                    help="try only these feature-group sets (then the regularisation stage uses the best of them)")
    args = ap.parse_args()
    rows = [r for r in load(args.xstest_dir) if r["split"] == "dev"]
    for r in rows:
        r["fold"] = fold_of(r["prompt"], args.folds)
    feats = [rc.features(r["text"], r["prompt"], rc.GROUPS) for r in rows]
    print(f"{len(rows)} dev rows; {args.folds} prompt folds × {len(TARGETS)} target models per setting\n")
    old = ("rule", "len", "open", "body", "overlap")
    results = {}

    def run(name, groups, **kw):
        logp = dev_cv(rows, feats, folds=args.folds, groups=groups, **kw)
        results[name] = (accuracy(rows, logp)[0], groups, kw, logp)
        print(line(name, rows, logp), flush=True)

    if args.stage == "prune":
        groups, offsets = tuple(args.groups[0].split("+")), (0.0, *args.offsets)
        print(f"## pruning tolerance ({args.groups[0]}, l2 {args.l2:g}, min_count {args.min_count}, offsets {offsets})")
        for tol in (0.0, 0.01, 0.02, 0.05, 0.1):
            logp = dev_cv(rows, feats, folds=args.folds, groups=groups, l2=args.l2, min_count=args.min_count, prune=tol)
            print(line(f"prune {tol:g}", rows, logp, offsets), flush=True)
        return
    for spec in args.groups:
        run(spec, tuple(spec.split("+")), l2=args.l2, min_count=args.min_count)
    if args.stage in ("groups", "all") and not args.groups:
        print("## feature groups (l2 1e-3, no class weight)")
        run("shipped groups " + "+".join(old), old)
        for extra in (("cues",), ("tail",), ("body2",), ("cues", "tail"), ("cues", "tail", "body2")):
            run("+ " + "+".join(extra), old + extra)
    if args.stage in ("reg", "all"):
        best = max(results.values(), key=lambda v: v[0])[1] if results else old + ("cues",)
        print(f"\n## regularisation, partial weight, min_count (groups {'+'.join(best)})")
        for l2, wp, mc in itertools.product((1e-3, 3e-3), (1.0, 2.0, 3.0), (3, 5)):
            run(f"l2 {l2:g} partial×{wp:g} min_count {mc}", best, l2=l2, class_weight={"partial": wp}, min_count=mc)
    name, (score, groups, kw, logp) = max(results.items(), key=lambda kv: kv[1][0])
    print(f"\n## best setting: {name} ({'+'.join(groups)}, {kw})")
    grid = [(0.0, f, p) for f in np.arange(-1.0, 1.01, 0.25) for p in np.arange(-1.0, 1.51, 0.25)]
    scored = sorted(((accuracy(rows, logp, o)[:2], o) for o in grid), key=lambda t: (-t[0][0], -t[0][1], abs(t[1][1]) + abs(t[1][2])))
    for (three, binary), o in scored[:5]:
        print(f"offsets full {o[1]:+.2f} partial {o[2]:+.2f}: 3-way {three:.3f} binary {binary:.3f}")
    print(line("offsets 0", rows, logp))
    print(line(f"chosen offsets full {scored[0][1][1]:+.2f} partial {scored[0][1][2]:+.2f}", rows, logp, scored[0][1]))


if __name__ == "__main__":
    sys.exit(main())
