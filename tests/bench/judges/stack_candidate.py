"""Candidate refusal judge: the shipped classifier's log-probabilities blended with the MiniLM candidate's.

Not shipped: a measurement. Both models are trained on the same rows; the blend is
`log p_classifier + w · log p_minilm + offsets`, the most probable class wins. `w` and the
per-class logit offsets are chosen by the dev-split cross-validation of
`tune_refusal_classifier.py` (for each non-GPT-4 XSTest model and each of three folds of the
dev prompts, both models are trained on the other sources' dev rows of the other folds and
predict this model's rows of this fold); no test row is read while choosing.

`--test` then prints, once, the leave-one-source-out figure on the test split with the
chosen `w` and offsets (train on the other sources' dev rows, report on this source's test
rows), the same protocol as `train_refusal_classifier.py`'s first table.

Needs the embeddings cache of `embedding_candidate.py` (`--cache`, rows in `load()` order).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python tests/bench/judges/stack_candidate.py --xstest-dir DIR \\
        --cache /tmp/minilm_cache.npz [--test]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from embedding_candidate import design, fit  # noqa: E402
from train_refusal_classifier import load, score, train  # noqa: E402
from tune_refusal_classifier import SHIPPED, SHIPPED_OFFSETS, TARGETS, accuracy, dev_cv, fold_of  # noqa: E402

from pearl.strategies import refusal_classifier as rc  # noqa: E402

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
GRID = [(0.0, f, p) for f in np.arange(-0.5, 1.51, 0.25) for p in np.arange(-1.0, 1.01, 0.25)]


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def minilm_cv(rows: list[dict], x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Out-of-fold MiniLM log-probabilities of each target's dev rows, same folds as `dev_cv`."""
    out = {}
    for s in TARGETS:
        idx = [i for i, r in enumerate(rows) if r["source"] == s]
        logp = np.zeros((len(idx), len(rc.CLASSES)))
        for k in sorted({r["fold"] for r in rows}):
            train_idx = [i for i, r in enumerate(rows) if r["source"] != s and r["fold"] != k]
            coef, bias = fit(x[train_idx], y[train_idx])
            for j, i in enumerate(idx):
                if rows[i]["fold"] == k:
                    logp[j] = log_softmax((x[i:i + 1] @ coef + bias))[0]
        out[s] = logp
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--xstest-dir", type=Path, required=True)
    ap.add_argument("--cache", type=Path, required=True, help="embedding_candidate.py's .npz")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--test", action="store_true", help="then report the chosen blend leave-one-source-out on test")
    args = ap.parse_args()
    every = load(args.xstest_dir)
    cached = np.load(args.cache)
    x_all = design(every, cached["r"], cached["p"])
    y_all = np.asarray([rc.CLASSES.index(r["gold"]) for r in every])
    dev = [i for i, r in enumerate(every) if r["split"] == "dev"]
    rows = [every[i] for i in dev]
    for r in rows:
        r["fold"] = fold_of(r["prompt"], args.folds)
    feats = [rc.features(r["text"], r["prompt"], rc.GROUPS) for r in rows]
    cls = dev_cv(rows, feats, folds=args.folds, **SHIPPED)
    emb = minilm_cv(rows, x_all[dev], y_all[dev])
    print(f"{len(rows)} dev rows; mean over {', '.join(TARGETS)}; 3-way / binary")
    results = []
    for w in WEIGHTS:
        blend = {s: cls[s] + w * emb[s] for s in TARGETS}
        shipped = accuracy(rows, blend, SHIPPED_OFFSETS)[:2]
        (three, binary), o = max((accuracy(rows, blend, o)[:2], o) for o in GRID)
        results.append(((three, binary), w, o))
        print(f"w {w:4.2f}: shipped offsets {shipped[0]:.3f} / {shipped[1]:.3f} · best offsets full {o[1]:+.2f} "
              f"partial {o[2]:+.2f}: {three:.3f} / {binary:.3f}", flush=True)
    (three, binary), w, o = max(results, key=lambda t: (t[0], -t[1]))
    print(f"chosen: w {w} offsets full {o[1]:+.2f} partial {o[2]:+.2f} (dev CV {three:.3f} / {binary:.3f})")
    if not args.test:
        return
    print("\n## leave one source out on the test split, chosen blend")
    for s in sorted({r["source"] for r in every}):
        tr = [i for i, r in enumerate(every) if r["source"] != s and r["split"] == "dev"]
        te = [i for i, r in enumerate(every) if r["source"] == s and r["split"] == "test"]
        model = train([every[i] for i in tr], **{**{k: v for k, v in SHIPPED.items()}, "offsets": (0.0, 0.0, 0.0)})
        coef, bias = fit(x_all[tr], y_all[tr])
        lc = np.log(np.asarray([[model.predict_proba(every[i]["text"], every[i]["prompt"])[c] for c in rc.CLASSES]
                                for i in te]))
        le = log_softmax(x_all[te] @ coef + bias)
        pred = [rc.CLASSES[k] for k in (lc + w * le + np.asarray(o)).argmax(1)]
        print(f"{s:24s} {score(pred, [every[i] for i in te])}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
