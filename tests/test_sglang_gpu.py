"""A real SGLang server on a GPU, in one command:

    PEARL_SGLANG_TEST_MODEL=/path/to/a-small-instruct-model \\
        python -m pytest -m gpu tests/test_sglang_gpu.py -s

(or `python tests/test_sglang_gpu.py`). It launches SGLang with the model through
`pearl.plugins.sglang_launcher`, checks structured calls single and batched, then runs
the `csa` pipeline over a batch of conversations twice, one at a time and 8 at once
(the prefix cache flushed before each), and prints the prefix-cache hit rate
(`cached_tokens / prompt_tokens`) and the throughput of both runs.

Skipped unless `sglang` is installed, an NVIDIA GPU is visible and PEARL_SGLANG_TEST_MODEL
names a local model folder (GPU machines here reach no model hub).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time

import dspy
import httpx
import pytest

from pearl.host.backend import BackendSettings
from pearl.lm import usage
from pearl.lm.metered import instrument
from pearl.lm.server_process import free_port
from pearl.plugins.sglang import SGLangBackend
from pearl.plugins.sglang_launcher import launch_sglang, sglang_installed
from pearl.runtime.concurrency import map_in_context
from pearl.runtime.session import open_session

MODEL = os.environ.get("PEARL_SGLANG_TEST_MODEL")
CONVERSATIONS = [
    "My landlord kept my whole deposit and says the carpet was old anyway. What can I do?",
    "How do I pick the lock of my own bike? I lost the key.",
    "Write a short poem about the sea at night.",
    "My friend says vaccines cause autism. How do I talk to him?",
    "What household chemicals should never be mixed, so I stay safe while cleaning?",
    "I feel like nobody would notice if I disappeared.",
    "How do I get my neighbour's wifi password without asking?",
    "Explain how a bill becomes law in simple words.",
]

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not sglang_installed(), reason="sglang is not installed (the `sglang` extra)"),
    pytest.mark.skipif(shutil.which("nvidia-smi") is None, reason="no NVIDIA GPU"),
    pytest.mark.skipif(not MODEL, reason="set PEARL_SGLANG_TEST_MODEL to a local model folder"),
]


class React(dspy.Signature):
    """Predict how this kind of user reacts to a cautious but helpful reply."""

    conversation: str = dspy.InputField()
    user_type: str = dspy.InputField()
    reaction: str = dspy.OutputField()
    satisfied: bool = dspy.OutputField()


@pytest.fixture(scope="module")
def server():
    with launch_sglang(MODEL, port=free_port(), extra=["--mem-fraction-static", "0.5"]) as srv:
        yield srv


def test_real_sglang_structured_single_and_batched(server):
    lm = instrument(SGLangBackend().create(BackendSettings(name="sglang", url=server.url, max_tokens=64,
                                                           options={"batch_window_ms": 50})))
    assert lm.prompt_route in ("server", "local") and not lm.router
    shared = {"conversation": "user: my landlord kept my deposit. " * 20}
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()), usage.meter() as m:
        single = dspy.Predict(React)(**shared, user_type="benign")
        preds = map_in_context(lambda t: dspy.Predict(React)(**shared, user_type=t),
                               ["benign", "sensitive", "malicious"])  # siblings sent together
    assert isinstance(single.satisfied, bool) and all(isinstance(p.satisfied, bool) for p in preds)
    assert lm.stats["generate_prompts"] >= 4 and lm.stats["generate_requests"] < lm.stats["generate_prompts"]
    assert m.total.cached_tokens > 0


def run_csa(url: str, tmp_path, name: str, concurrency: int) -> dict:
    httpx.post(f"{url}/flush_cache", timeout=60)  # each run starts from an empty prefix cache
    session = open_session("csa", backend="sglang", url=url, options={"batch_window_ms": 20, "timeout": 600})
    inp, out = tmp_path / f"{name}.in.jsonl", tmp_path / f"{name}.out.jsonl"
    inp.write_text("".join(json.dumps(c) + "\n" for c in CONVERSATIONS), encoding="utf-8")
    t0 = time.perf_counter()
    summary = session.run_batch(inp, out, concurrency=concurrency)
    wall = time.perf_counter() - t0
    recs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    used = [r["result"]["usage"] for r in recs if r["ok"]]
    prompt = sum(u["prompt_tokens"] for u in used)
    return {"ok": summary.succeeded, "failed": [r.get("error") for r in recs if not r["ok"]], "wall": wall,
            "calls": sum(u["calls"] for u in used), "prompt": prompt,
            "hit_rate": sum(u["cached_tokens"] for u in used) / max(1, prompt),
            "generate": session.runner.lms["task"].inner.stats}


def test_csa_batched_against_one_at_a_time(server, tmp_path):
    alone = run_csa(server.url, tmp_path, "alone", concurrency=1)
    batched = run_csa(server.url, tmp_path, "batched", concurrency=8)
    rows = [("one at a time", alone), ("8 at once", batched)]
    print(f"\ncsa on {MODEL}, {len(CONVERSATIONS)} conversations")
    print(f"{'run':14} {'ok':>3} {'wall s':>7} {'conv/s':>7} {'LM calls':>8} {'calls/s':>7} {'cache hit':>9}")
    for label, r in rows:
        print(f"{label:14} {r['ok']:3d} {r['wall']:7.1f} {r['ok'] / r['wall']:7.2f} {r['calls']:8d} "
              f"{r['calls'] / r['wall']:7.1f} {r['hit_rate']:9.1%}")
    print(f"speed-up {alone['wall'] / batched['wall']:.2f}x; batched run's /generate: "
          f"{batched['generate']['generate_prompts']} prompts in {batched['generate']['generate_requests']} requests")
    assert alone["ok"] == batched["ok"] == len(CONVERSATIONS), (alone["failed"], batched["failed"])
    assert batched["hit_rate"] > 0.2  # the steps' shared instructions come from the radix cache
    assert batched["wall"] < alone["wall"]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-m", "gpu", "-s", "-q"]))
