"""Grammar-constrained decoding speed on the embedded model: llama-cpp-python's own
sampler (every vocabulary token checked against the grammar) against Pearlpoint's
`GrammarFastLlama` (top-k candidates checked first).

    .venv/bin/python tests/bench/grammar_sampling.py [--threads N] [--max-tokens 400]

Prints tokens/s of each on three schema-constrained prompts and whether the greedy
outputs are identical (they must be).
"""

from __future__ import annotations

import argparse
import time

from llama_cpp import Llama

from pearl.plugins.llamacpp import default_model_path
from pearl.plugins.llamacpp_sampling import GrammarFastLlama

CASES = [
    ("Write a long story about a cat.",
     {"type": "object", "properties": {"story": {"type": "string", "maxLength": 300}}, "required": ["story"]}),
    ("My landlord won't return my deposit, what can I do?",
     {"type": "object", "properties": {
         "rationale": {"type": "string", "maxLength": 200},
         "category": {"type": "string", "enum": ["housing", "finance", "unknown"]},
         "level": {"enum": ["R0", "R1", "R2"]},
         "moves": {"type": "array", "maxItems": 3, "items": {"type": "string", "maxLength": 60}}},
      "required": ["rationale", "category", "level", "moves"]}),
    ("Comment puis-je récupérer ma caution ?",
     {"type": "object", "properties": {"reply": {"type": "string", "maxLength": 400}}, "required": ["reply"]}),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--max-tokens", type=int, default=400)
    args = ap.parse_args()
    kw = dict(model_path=str(default_model_path()), n_ctx=2048, n_threads=args.threads, seed=0, verbose=False)
    models = {"llama-cpp-python": Llama(**kw), "pearlpoint top-k": GrammarFastLlama(**kw)}
    totals = {name: [0, 0.0] for name in models}
    print(f"{'prompt':<30} {'sampler':<18} {'tokens':>6} {'seconds':>8} {'tok/s':>7}  same")
    for prompt, schema in CASES:
        texts = []
        for name, llama in models.items():
            llama.reset()
            t0 = time.perf_counter()
            out = llama.create_chat_completion(messages=[{"role": "user", "content": prompt}],
                                               response_format={"type": "json_object", "schema": schema},
                                               max_tokens=args.max_tokens, temperature=0)
            seconds = time.perf_counter() - t0
            n = out["usage"]["completion_tokens"]
            totals[name][0] += n
            totals[name][1] += seconds
            texts.append(out["choices"][0]["message"]["content"])
            same = "" if len(texts) == 1 else ("yes" if texts[0] == texts[1] else "NO")
            print(f"{prompt[:30]:<30} {name:<18} {n:>6} {seconds:>8.2f} {n / seconds:>7.1f}  {same}")
    (n0, s0), (n1, s1) = totals.values()
    print(f"overall: {n0 / s0:.1f} tok/s -> {n1 / s1:.1f} tok/s, x{(n1 / s1) / (n0 / s0):.2f}")


if __name__ == "__main__":
    main()
