"""The refusal classifier on Chinese replies: machine-translated labelled rows (translate_labelled.py).

Not shipped: a measurement (README, "Judges measured against people"). Rows are the cache of
`translate_labelled.py` less those its label-free checks flag (`row_problem`, re-run on reading). Two classifiers are compared:

- `shipped`: the package's weights with this checkout's features (run it with an older checkout on
  PYTHONPATH to get that checkout's figures; since the shipped weights were trained with the translated dev
  rows, their `--stage dev` line reads rows they saw);
- `retrained`: the shipped settings (`train_refusal_classifier.py`'s defaults) trained on the
  English dev rows plus the translated dev rows.

`--stage dev` reads dev rows only: the shipped weights on the translated dev rows; the retrained
model by cross-validation over three folds of the dev prompts (trained on every English dev row and
the translated dev rows of the other folds); and, to check that the translations do not cost
English accuracy, `tune_refusal_classifier.py`'s cross-validation (each non-GPT-4 XSTest model's
dev rows of one fold predicted by a model trained on the other sources' dev rows of the other
folds), without and with the translated rows of those sources and folds added to training.
`--stage test` reads the translated test rows: both classifiers, and the retrained one leave one
source out (neither the English nor the translated rows of the reported source in training).

    .venv/bin/python tests/bench/judges/chinese_refusal.py --xstest-dir DIR --translated zh0.jsonl zh1.jsonl \\
        --stage dev
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from train_refusal_classifier import PYRIT_WEIGHT, load, score  # noqa: E402
from translate_labelled import translated_rows  # noqa: E402
from tune_refusal_classifier import SHIPPED, SHIPPED_OFFSETS, accuracy, dev_cv, fold_of  # noqa: E402

from pearl.strategies import refusal_classifier as rc  # noqa: E402

FOLDS = 3


def fit(rows: list[dict], feats: list[set[str]]) -> rc.RefusalClassifier:
    """The shipped settings (groups, L2, min_count, offsets, pruning) trained on these rows."""
    model = rc.fit_features(feats, [r["gold"] for r in rows], groups=SHIPPED["groups"], l2=SHIPPED["l2"],
                            min_count=SHIPPED["min_count"],
                            weights=[1.0 if r["three_way"] else PYRIT_WEIGHT for r in rows])
    model.bias = model.bias + np.asarray(SHIPPED_OFFSETS)
    return model.pruned(SHIPPED["prune"])


def best(model: rc.RefusalClassifier, feats: set[str]) -> str:
    proba = model.proba_of(feats)
    return max(proba, key=proba.get)


def report(name: str, rows: list[dict], preds: list[str]) -> None:
    """Pooled over the XSTest sources (three-way) and over PyRIT (binary)."""
    for three_way in (True, False):
        idx = [i for i, r in enumerate(rows) if r["three_way"] == three_way]
        if idx:
            label = "XSTest" if three_way else "PyRIT"
            print(f"{name:34s} {label:7s} {score([preds[i] for i in idx], [rows[i] for i in idx])}")


def english_cv(english: list[dict], feats: list[set[str]], zh: list[dict], zh_feats: list[set[str]]) -> None:
    """Print the mean three-way and binary accuracy over the four target models' English dev rows, by
    `tune_refusal_classifier.py`'s cross-validation, without and with the translations in training."""
    for r in english + zh:
        r["fold"] = fold_of(r["group"], FOLDS)
    for extra in (None, (zh, zh_feats)):
        logp = dev_cv(english, feats, folds=FOLDS, extra=extra, **SHIPPED)
        three, binary, _ = accuracy(english, logp, SHIPPED_OFFSETS)
        print(f"English dev cross-validation, {'with' if extra else 'without'} the translations: "
              f"3-way {three:.3f} binary {binary:.3f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--xstest-dir", type=Path, required=True)
    ap.add_argument("--translated", type=Path, nargs="+", required=True, help="translate_labelled.py's caches")
    ap.add_argument("--stage", choices=("dev", "test"), required=True)
    ap.add_argument("--skip-english", action="store_true", help="--stage dev: skip the English cross-validation")
    args = ap.parse_args()
    english = [r for r in load(args.xstest_dir) if r["split"] == "dev"]
    zh_all, dropped = translated_rows(args.translated)
    zh_dev = [r for r in zh_all if r["split"] == "dev"]
    print(f"translated rows: {len(zh_all)} kept ({len(zh_dev)} dev), {dropped} dropped by the checks; "
          f"English dev rows {len(english)}")
    shipped = rc.RefusalClassifier.load()
    eng_feats = [rc.features(r["text"], r["prompt"]) for r in english]
    dev_feats = [rc.features(r["text"], r["prompt"]) for r in zh_dev]
    rows = zh_dev if args.stage == "dev" else [r for r in zh_all if r["split"] == "test"]
    feats = dev_feats if args.stage == "dev" else [rc.features(r["text"], r["prompt"]) for r in rows]
    report("shipped weights", rows, [best(shipped, f) for f in feats])
    if args.stage == "dev":
        folds = [fold_of(r["group"], FOLDS) for r in rows]
        preds = [""] * len(rows)
        for k in range(FOLDS):
            keep = [i for i in range(len(rows)) if folds[i] != k]
            model = fit(english + [rows[i] for i in keep], eng_feats + [feats[i] for i in keep])
            for i in range(len(rows)):
                if folds[i] == k:
                    preds[i] = best(model, feats[i])
        report(f"retrained, {FOLDS}-fold cross-validation", rows, preds)
        if not args.skip_english:
            english_cv(english, eng_feats, zh_dev, dev_feats)
        return
    model = fit(english + zh_dev, eng_feats + dev_feats)
    report("retrained on all dev rows", rows, [best(model, f) for f in feats])
    for s in sorted({r["source"] for r in rows}):
        keep = [i for i, r in enumerate(english) if r["source"] != s]
        keep_zh = [i for i, r in enumerate(zh_dev) if r["source"] != s]
        model = fit([english[i] for i in keep] + [zh_dev[i] for i in keep_zh],
                    [eng_feats[i] for i in keep] + [dev_feats[i] for i in keep_zh])
        test = [i for i, r in enumerate(rows) if r["source"] == s]
        print(f"{'leave ' + s + ' out':34s} {score([best(model, feats[i]) for i in test], [rows[i] for i in test])}",
              flush=True)


if __name__ == "__main__":
    main()
