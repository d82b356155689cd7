"""A real SGLang server (GPU machines only).

Skipped unless `sglang` is installed, a CUDA GPU is visible and PEARL_SGLANG_TEST_MODEL
names a local model folder (GPU machines here reach no model hub).
"""

from __future__ import annotations

import os
import shutil

import dspy
import pytest

from pearl.lm import usage
from pearl.lm.metered import instrument
from pearl.host.backend import BackendSettings
from pearl.runtime.concurrency import map_in_context
from pearl.plugins.sglang import SGLangBackend
from pearl.plugins.sglang_launcher import launch_sglang, sglang_installed
from pearl.lm.server_process import free_port

MODEL = os.environ.get("PEARL_SGLANG_TEST_MODEL")

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
    assert lm.template is not None  # tokenizer folder is local to the launcher
    shared = {"conversation": "user: my landlord kept my deposit. " * 20}
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()), usage.meter() as m:
        single = dspy.Predict(React)(**shared, user_type="benign")
        preds = map_in_context(lambda t: dspy.Predict(React)(**shared, user_type=t),
                               ["benign", "sensitive", "malicious"])  # siblings sent together
    assert isinstance(single.satisfied, bool) and all(isinstance(p.satisfied, bool) for p in preds)
    assert lm.stats["generate_requests"] == 1 and lm.stats["generate_prompts"] == 3
    assert m.total.cached_tokens > 0
