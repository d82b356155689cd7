"""The `risk` step alone on a real model: one JSON line per prompt (category, level, posterior, repairs, seconds).

    python tests/bench/risk_probe.py --model qwen2.5-coder-1.5b "I feel like ending it all." "Who was the first emperor of Rome?"

`--model` is a catalogue name (`pearl models`) or a GGUF path; the guideline call is skipped,
so each prompt costs one LM call.
"""

from __future__ import annotations

import argparse
import json
import time

import dspy

from pearl.csa.taxonomy import get_taxonomy
from pearl.host.backend import BackendSettings
from pearl.host.manager import get_host
from pearl.plugins.llamacpp import LlamaCppBackend
from pearl.strategies.risk import AssessRisk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--taxonomy", default="oyster")
    parser.add_argument("prompts", nargs="+")
    args = parser.parse_args()
    lm = LlamaCppBackend().create(BackendSettings(model=args.model, max_tokens=256, n_ctx=4096))
    program = AssessRisk(get_taxonomy(get_host(), args.taxonomy), adapt_guideline=False)
    for prompt in args.prompts:
        start = time.perf_counter()
        with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
            a = program(conversation=f"user: {prompt}").assessment
        print(json.dumps({"prompt": prompt, "seconds": round(time.perf_counter() - start, 1), "category": a.category,
                          "level": a.level, "posterior": {k: round(v, 2) for k, v in a.posterior.as_dict().items()},
                          "severity": a.severity, "repairs": a.repairs, "rationale": a.rationale}), flush=True)


if __name__ == "__main__":
    main()
