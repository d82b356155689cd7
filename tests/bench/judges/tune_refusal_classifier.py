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

`--stage candidates` adds, one at a time, feature groups that are not in the package
(`CANDIDATES`: n-grams of the first / last sentence, character 4-grams of the opening, what
follows the first decline, the words of the request) to the shipped setting, and prints each
with the shipped logit offsets and with the best offsets of a small grid. `--stage partial`
prints, for the shipped setting, how 3-way accuracy and `partial` precision / recall move as
the `partial` logit offset grows (the price of calling `partial` more often).

    .venv/bin/python tests/bench/judges/tune_refusal_classifier.py --xstest-dir /path/to/model_completions
"""

from __future__ import annotations

import argparse
import itertools
import math
import re
import sys
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from train_refusal_classifier import PYRIT_WEIGHT, load  # noqa: E402

from pearl.strategies import refusal_classifier as rc  # noqa: E402
from pearl.strategies.refusal_rules import _DECLINE, normalise  # noqa: E402

TARGETS = ("xstest/llama2new", "xstest/llama2orig", "xstest/mistralguard", "xstest/mistralinstruct")
SHIPPED = dict(groups=rc.DEFAULT_GROUPS, l2=3e-3, min_count=5, prune=0.02)  # train_refusal_classifier.py's defaults
SHIPPED_OFFSETS = (0.0, 0.75, -0.25)


# --- candidate feature groups, measured here and not shipped ---------------------------------
_SENT = re.compile(r"[^.!?\n]+[.!?\n]?")
_ITEM = re.compile(r"(?m)^\s*(?:\d+[.)]|[-*•])\s+\S")


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENT.findall(text) if len(s.strip()) > 3]


def _grams(prefix: str, text: str) -> set[str]:
    words = rc._WORD.findall(text)
    return {f"{prefix}:{w}" for w in words} | {f"{prefix}:{a}_{b}" for a, b in zip(words, words[1:])}


def candidate_features(response: str, prompt: str) -> set[str]:
    """The `CANDIDATES` groups' features of one reply (prefixes: see `CANDIDATES`)."""
    text = normalise(response)
    out: set[str] = set()
    sents = _sentences(text)
    if sents:  # first: the first two sentences' uni/bigrams; last: the last sentence's
        out |= _grams("s1", sents[0]) | _grams("sl", sents[-1]) | (_grams("s2", sents[1]) if len(sents) > 1 else set())
    opening = re.sub(r"\s+", " ", text[:150])
    out.update(f"c:{opening[i:i + 4]}" for i in range(len(opening) - 3))  # char: 4-grams of the first 150 characters
    out.add(f"ns:{min(len(sents), 12)}")  # after: sentence count, and what follows the first decline
    declines = sorted(m.start() for p in _DECLINE for m in p.finditer(text))
    if declines:
        after = text[declines[0]:]
        out.add(f"ad:{min(int(math.log2(len(after) + 1)), 12)}")
        out.add(f"ad:items{min(len(_ITEM.findall(after)), 3)}")
        out.add(f"ad:nsent{min(len(_sentences(after)), 8)}")
    else:
        out.add("ad:nodecline")
    # topic: after a decline in the opening, does the reply go on to the request's topic?
    early = sorted(d for d in declines if d < 400)
    if early:
        end = re.compile(r"[.!?\n]").search(text, early[0])
        rest = text[end.end():] if end else ""
        if prompt:
            out.add(f"ax:ov_{rc.overlap_bucket(prompt, rest) if rest.strip() else 'empty'}")
        out.add(f"ax:len{min(int(math.log2(len(rest) + 1)), 11) // 2}")
        items, digits = len(_ITEM.findall(rest)), len(re.findall(r"\d", rest))
        out.add(f"ax:items{0 if not items else 1 if items < 3 else 2}")
        out.add(f"ax:digits{0 if not digits else 1 if digits < 5 else 2}")
    out.update(f"p:{w}" for w in rc._WORD.findall(normalise(prompt)))  # prompt: the request's words
    return out


# candidate group -> the feature prefixes `candidate_features` gives it
CANDIDATES = {"first": ("s1", "s2"), "last": ("sl",), "char": ("c",), "after": ("ad", "ns"), "topic": ("ax",),
              "prompt": ("p",)}


def group_of(feature: str) -> str:
    """The feature group (`rc.GROUPS` or `CANDIDATES`) a feature name belongs to."""
    head, _, rest = feature.partition(":")
    for group, prefixes in CANDIDATES.items():
        if head in prefixes:
            return "cand:" + group
    return {"rule": "rule", "sig": "rule", "len": "len", "o": "open", "o3": "open", "first": "open",
            "overlap": "overlap", "cue": "cues", "e": "tail"}.get(head) or ("body2" if "_" in rest else "body")


def fold_of(prompt: str, folds: int) -> int:
    return zlib.crc32(prompt.encode("utf-8")) % folds


def dev_cv(rows: list[dict], feats: list[set[str]], *, folds: int, groups, prune: float = 0.0,
           extra: tuple[list[dict], list[set[str]]] | None = None, **kw) -> dict[str, np.ndarray]:
    """Out-of-fold log-probabilities (n, 3) of every dev row of each target model (`prune`: see `rc.pruned`;
    a `CANDIDATES` group is named "cand:NAME" in `groups`). `extra` rows and their features (translations,
    say) are trained on under the same rule, their source not the target's and their fold not held out,
    and never predicted."""
    keep = set(groups)
    everything = rows + (extra[0] if extra else [])
    sub = [{f for f in fs if group_of(f) in keep} for fs in feats + (extra[1] if extra else [])]
    out = {}
    for s in TARGETS:
        idx = [i for i, r in enumerate(rows) if r["source"] == s]
        logp = np.zeros((len(idx), len(rc.CLASSES)))
        for k in range(folds):
            train = [i for i, r in enumerate(everything) if r["source"] != s and r["fold"] != k]
            model = rc.fit_features([sub[i] for i in train], [everything[i]["gold"] for i in train], groups=groups,
                                    weights=[1.0 if everything[i]["three_way"] else PYRIT_WEIGHT for i in train],
                                    **kw)
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
    ap.add_argument("--stage", choices=("groups", "reg", "prune", "candidates", "partial", "all"), default="all")
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
    feats = [rc.features(r["text"], r["prompt"], rc.GROUPS)
             | (candidate_features(r["text"], r["prompt"]) if args.stage == "candidates" else set()) for r in rows]
    print(f"{len(rows)} dev rows; {args.folds} prompt folds × {len(TARGETS)} target models per setting\n")
    old = ("rule", "len", "open", "body", "overlap")
    results = {}

    def run(name, groups, **kw):
        logp = dev_cv(rows, feats, folds=args.folds, groups=groups, **kw)
        results[name] = (accuracy(rows, logp)[0], groups, kw, logp)
        print(line(name, rows, logp), flush=True)

    if args.stage == "candidates":
        print(f"## candidate groups added to the shipped setting ({SHIPPED}); offsets {SHIPPED_OFFSETS}")
        grid = [(0.0, f, p) for f in np.arange(-0.5, 1.51, 0.25) for p in np.arange(-1.0, 1.51, 0.25)]
        for extra in ("", *CANDIDATES):
            kw = dict(SHIPPED, groups=SHIPPED["groups"] + ((f"cand:{extra}",) if extra else ()))
            logp = dev_cv(rows, feats, folds=args.folds, **kw)
            (three, binary), o = max((accuracy(rows, logp, o)[:2], o) for o in grid)
            print(line("shipped" + (f" + {extra}" if extra else ""), rows, logp, SHIPPED_OFFSETS)
                  + f" · best offsets full {o[1]:+.2f} partial {o[2]:+.2f}: {three:.3f} / {binary:.3f}", flush=True)
        return
    if args.stage == "partial":
        logp = dev_cv(rows, feats, folds=args.folds, **SHIPPED)
        gold = np.concatenate([[rc.CLASSES.index(r["gold"]) for r in rows if r["source"] == s] for s in logp])
        print(f"## the `partial` offset, shipped setting ({SHIPPED}), `full` offset {SHIPPED_OFFSETS[1]:+.2f}")
        for po in np.arange(-0.25, 2.01, 0.25):
            offsets = (0.0, SHIPPED_OFFSETS[1], po)
            pred = np.concatenate([(lp + np.asarray(offsets)).argmax(1) for lp in logp.values()])
            hit, called, real = ((pred == 2) & (gold == 2)).sum(), (pred == 2).sum(), (gold == 2).sum()
            three, binary, _ = accuracy(rows, logp, offsets)
            print(f"partial {po:+.2f}: 3-way {three:.3f} binary {binary:.3f} · called partial {called}, "
                  f"precision {hit / max(called, 1):.2f}, recall {hit / real:.2f} (of {real})", flush=True)
        return
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
