"""Train and measure the refusal classifier (`pearl.strategies.refusal_classifier`); print figures.

Data (never copied into the project; read where they lie):

- XSTest completions with human labels (Röttger et al.; annotations CC-BY-4.0, completions
  under their model providers' terms): the gpt4 file from ../shared/data/xstest/, and the
  llama2new, llama2orig, mistralguard and mistralinstruct files of the XSTest repository's
  `model_completions/` folder, passed with --xstest-dir;
- PyRIT refusal-scorer rows (Azure/PyRIT 1.1.0, MIT): ../shared/data/labels/pyrit_refusal.jsonl;
- with --translated, the Chinese translations of a seeded sample of those rows that
  `translate_labelled.py` makes with the 1.5B default (same labels, same split; the shipped
  weights were trained with them).

Protocol. Rows are split dev / test by prompt with `pearl.evaluation.judge_quality.split_of`
(seed 0). Only dev rows are ever trained on. Printed:

1. leave-one-source-out: for each source, train on the *other* sources' dev rows (English and
   translated) and report on this source's test rows (a model whose completions it never saw, on
   prompts it never saw), and on their translations;
2. the shipped model: trained on every source's dev rows, reported on every test row;
3. the rule judge alone on the same test rows, for comparison.

`--save` writes the shipped model to strategies/data/refusal_classifier.json. The settings'
defaults (feature groups, L2, min_count, the `full` / `partial` logit offsets, the pruning
tolerance) are those `tune_refusal_classifier.py` chose by cross-validation inside the dev split.

    .venv/bin/python tests/bench/judges/train_refusal_classifier.py --xstest-dir /path/to/model_completions \
        --translated zh0.jsonl zh1.jsonl [--save]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from pearl.evaluation.agreement import categorical_report
from pearl.evaluation.judge_quality import BINARY, split_of
from pearl.plugins.labelled_sets import PyritRefusal, XSTestCompletions
from pearl.strategies import refusal_classifier as rc
from pearl.strategies.refusal_rules import classify_refusal

ROOT = Path(__file__).resolve().parents[3]
SHARED = ROOT.parent / "shared" / "data"
PYRIT_WEIGHT = 1.0  # a binary PyRIT row: refuse -> full, comply -> none


def xstest_files(xstest_dir: Path | None) -> list[Path]:
    """The GPT-4 completions of the shared data, then the other models' files of `xstest_dir` (if given)."""
    files = [SHARED / "xstest" / "xstest_v2_completions_gpt4.csv"]
    if xstest_dir:
        files += sorted(p for p in xstest_dir.glob("xstest_v2_completions_*.csv") if not p.stem.endswith("gpt4"))
    return files


def load(xstest_dir: Path | None) -> list[dict]:
    rows = []
    for f in xstest_files(xstest_dir):
        for item in XSTestCompletions().load(f, {}):
            rows.append(dict(text=item.labels["response"], gold=item.labels["human"], prompt=item.labels["group"], source=item.labels["source"],
                             group=item.labels["group"], three_way=True))
    for item in PyritRefusal().load(SHARED / "labels" / "pyrit_refusal.jsonl", {}):
        rows.append(dict(text=item.labels["response"], prompt=item.labels["group"], gold="full" if item.labels["human"] == "refuse" else "none",
                         source="pyrit/refusal", group=item.labels["group"], three_way=False))
    for r in rows:
        r["split"] = split_of(r["group"], 0)
    return rows


def train(rows: list[dict], *, offsets: tuple[float, float, float] = (0.0, 0.0, 0.0), prune: float = 0.0,
          **kw) -> rc.RefusalClassifier:
    """Fit on `rows`; add the per-class logit `offsets` (none, full, partial) to the bias; drop weights below `prune`."""
    model = rc.fit([r["text"] for r in rows], [r["gold"] for r in rows], prompts=[r["prompt"] for r in rows],
                   weights=[1.0 if r["three_way"] else PYRIT_WEIGHT for r in rows], **kw)
    model.bias = model.bias + np.asarray(offsets)
    return model.pruned(prune) if prune else model


def best(model: rc.RefusalClassifier, text: tuple[str, str]) -> str:
    """The most probable class (no abstention: the classifier alone must answer)."""
    proba = model.predict_proba(*text)
    return max(proba, key=proba.get)


def score(pred: list[str], rows: list[dict]) -> str:
    gold = [r["gold"] for r in rows]
    if rows[0]["three_way"]:
        rep = categorical_report(gold, pred, rc.CLASSES, n_boot=200, binary=BINARY["refusal3"])
        part = rep.per_class["partial"]
        return (f"3-way {rep.accuracy.value:.3f} κ {rep.kappa.value:.3f} · binary {rep.binary.accuracy.value:.3f} "
                f"κ {rep.binary.kappa.value:.3f} · partial P/R {part.precision:.2f}/{part.recall:.2f} (n={len(rows)})")
    b = [BINARY["refusal3"](p) for p in pred]
    rep = categorical_report([BINARY["refusal3"](g) for g in gold], b, ("comply", "refuse"), n_boot=200)
    return f"binary {rep.accuracy.value:.3f} κ {rep.kappa.value:.3f} (n={len(rows)})"


def print_translated(model: rc.RefusalClassifier, zh: list[dict], source: str, label: str) -> None:
    """The figures on `source`'s translated test rows, if there are any."""
    test = [r for r in zh if r["source"] == source and r["split"] == "test"]
    if test:
        print(f"{'':24s} {label} {score([best(model, (r['text'], r['prompt'])) for r in test], test)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--xstest-dir", type=Path, help="folder with the XSTest repository's xstest_v2_completions_*.csv")
    ap.add_argument("--save", action="store_true", help="write the model trained on all dev rows into the package")
    ap.add_argument("--threshold", type=float, default=0.6)
    # The defaults below were chosen by tune_refusal_classifier.py (cross-validation inside the dev split).
    ap.add_argument("--l2", type=float, default=3e-3)
    ap.add_argument("--groups", default="+".join(rc.DEFAULT_GROUPS), help="feature groups, '+'-joined (rc.GROUPS)")
    ap.add_argument("--partial-weight", type=float, default=1.0, help="weight of a `partial` training row")
    ap.add_argument("--min-count", type=int, default=5)
    ap.add_argument("--offset-full", type=float, default=0.75, help="added to the `full` logit")
    ap.add_argument("--offset-partial", type=float, default=-0.25, help="added to the `partial` logit")
    ap.add_argument("--prune", type=float, default=0.02, help="drop features whose centred weights are all below this")
    ap.add_argument("--skip-loso", action="store_true", help="skip the leave-one-source-out runs (1.5 min each)")
    ap.add_argument("--translated", type=Path, nargs="*", default=[],
                    help="translate_labelled.py caches: their dev rows are trained on too, their test rows reported")
    args = ap.parse_args()
    rows = load(args.xstest_dir)
    sources = sorted({r["source"] for r in rows})
    zh: list[dict] = []
    if args.translated:
        from translate_labelled import translated_rows

        zh, dropped = translated_rows(args.translated)
        print(f"translated rows: {len(zh)} ({sum(r['split'] == 'dev' for r in zh)} dev; {dropped} failed translations left out)")
    kw = dict(l2=args.l2, threshold=args.threshold, groups=tuple(args.groups.split("+")), min_count=args.min_count,
              class_weight={"partial": args.partial_weight}, offsets=(0.0, args.offset_full, args.offset_partial),
              prune=args.prune)
    print("settings:", kw)
    print(f"{len(rows)} rows from {len(sources)} sources; dev {sum(r['split'] == 'dev' for r in rows)}")
    print("\n## leave one source out (train: other sources' dev rows; report: this source's test rows)")
    for s in [] if args.skip_loso else sources:
        model = train([r for r in rows + zh if r["source"] != s and r["split"] == "dev"], **kw)
        test = [r for r in rows if r["source"] == s and r["split"] == "test"]
        print(f"{s:24s} classifier {score([best(model, (r['text'], r['prompt'])) for r in test], test)}")
        print(f"{'':24s} rules      {score([classify_refusal(r['text']).kind for r in test], test)}")
        print_translated(model, zh, s, "Chinese   ")
    model = train([r for r in rows + zh if r["split"] == "dev"], **kw)
    print("\n## trained on every source's dev rows; reported on each source's test rows")
    for s in sources:
        test = [r for r in rows if r["source"] == s and r["split"] == "test"]
        preds = [model.classify(r["text"], r["prompt"]) for r in test]
        unsure = sum(k == "unsure" for k, _ in preds)
        print(f"{s:24s} {score([best(model, (r['text'], r['prompt'])) for r in test], test)}"
              f" · unsure {unsure}")
        print_translated(model, zh, s, "Chinese")
    for kind in rc.CLASSES:
        print(kind, ", ".join(f"{f} {w:+.2f}" for f, w in rc.top_features(model, kind, 10)))
    if args.save:
        model.meta = {"trained_on": "dev split (split_of seed 0) of: " + ", ".join(sources)
                      + (" and their machine translations into Chinese (translate_labelled.py)" if zh else ""),
                      "rows": sum(r["split"] == "dev" for r in rows + zh),
                      "licences": {"xstest": "annotations CC-BY-4.0 (Röttger et al., XSTest); completions under their "
                                             "model providers' terms", "pyrit": "MIT (Azure/PyRIT 1.1.0)"},
                      "script": "tests/bench/judges/train_refusal_classifier.py",
                      "settings": {k: v for k, v in kw.items() if k != "threshold"}}
        model.save()
        print(f"saved {rc.WEIGHTS} ({rc.WEIGHTS.stat().st_size // 1024} KiB, {len(model.vocabulary)} features)")


if __name__ == "__main__":
    sys.exit(main())
