"""The `risk` step alone on a real model: one JSON line per prompt (category, level, posterior, repairs, seconds).

    python tests/bench/risk_probe.py --model qwen2.5-coder-1.5b "I feel like ending it all." "Who was the first emperor of Rome?"
    python tests/bench/risk_probe.py --model qwen2.5-coder-1.5b --labels strategies/data/risk_val.jsonl

`--model` is a catalogue name (`pearl models`) or a GGUF path; the guideline call is skipped,
so each prompt costs one LM call. `--labels FILE` reads labelled conversations instead (the
`risk-train` / `risk-val` format: `messages` and `labels` with `category`, `level`,
`user_type`) and ends with the agreement: category and level accuracy, and user-type
calibration as 1 − Brier/2 (the `pearl optimize` risk metric's parts; a uniform posterior
scores 0.667).
"""

from __future__ import annotations

import argparse
import json
import time

import dspy

from pearl.csa import USER_TYPES
from pearl.csa.taxonomy import get_taxonomy
from pearl.host.backend import BackendSettings
from pearl.host.manager import get_host
from pearl.plugins.llamacpp import LlamaCppBackend
from pearl.strategies.risk import AssessRisk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--taxonomy", default="oyster")
    parser.add_argument("--labels", default=None, help="a labelled JSONL file (risk-train / risk-val format)")
    parser.add_argument("prompts", nargs="*")
    args = parser.parse_args()
    if args.labels:
        rows = [json.loads(line) for line in open(args.labels, encoding="utf-8") if line.strip()]
        items = [("\n".join(f"{m['role']}: {m['content']}" for m in r["messages"]), r["labels"]) for r in rows]
    else:
        items = [(f"user: {p}", None) for p in args.prompts]
    if not items:
        parser.error("give prompts or --labels FILE")
    lm = LlamaCppBackend().create(BackendSettings(model=args.model, max_tokens=256, n_ctx=4096))
    program = AssessRisk(get_taxonomy(get_host(), args.taxonomy), adapt_guideline=False)
    scores = {"category": 0, "level": 0, "calibration": 0.0}
    for text, labels in items:
        start = time.perf_counter()
        with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
            a = program(conversation=text).assessment
        posterior = a.posterior.as_dict()
        line = {"prompt": text, "seconds": round(time.perf_counter() - start, 1), "category": a.category,
                "level": a.level, "posterior": {k: round(v, 2) for k, v in posterior.items()},
                "severity": a.severity, "repairs": a.repairs, "rationale": a.rationale}
        if labels:
            line["labels"] = labels
            scores["category"] += a.category == labels["category"]
            scores["level"] += a.level == labels["level"]
            brier = sum((posterior[t] - float(t == labels["user_type"])) ** 2 for t in USER_TYPES)
            scores["calibration"] += 1 - brier / 2
        print(json.dumps(line), flush=True)
    if args.labels:
        n = len(items)
        print(f"{n} labelled conversations, model {args.model}: category {scores['category']}/{n}, "
              f"level {scores['level']}/{n}, user-type calibration {scores['calibration'] / n:.3f}", flush=True)


if __name__ == "__main__":
    main()
