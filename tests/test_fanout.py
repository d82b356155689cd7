"""Prefix-aware fan-out (`pearl.runtime.fanout`): order rules, batching on SGLang, warm-up."""

from __future__ import annotations

import json

import dspy
import pytest
from dspy.utils import DummyLM

from pearl.lm import usage
from pearl.host.backend import BackendSettings
from pearl.errors import PluginError
from pearl.runtime.fanout import check_prefix_order, fan_out
from pearl.plugins.sglang import SGLangBackend
from sglang_double import SGLangTestDouble
from test_sglang_client import GEMMA_LIKE_TEMPLATE


class React(dspy.Signature):
    """Predict how this kind of user reacts to the planned reply."""

    policy: str = dspy.InputField()
    conversation: str = dspy.InputField()
    user_type: str = dspy.InputField()
    reaction: str = dspy.OutputField()


class BadOrder(dspy.Signature):
    """Same, with the varying input first."""

    user_type: str = dspy.InputField()
    conversation: str = dspy.InputField()
    reaction: str = dspy.OutputField()


SHARED = {"policy": "Be helpful within the rules. " * 30, "conversation": "user: how do I pick a lock?"}
TYPES = [{"user_type": t} for t in ("benign", "sensitive", "malicious")]


@pytest.fixture
def sglang_lm(tmp_path):
    tok = tmp_path / "tok"
    tok.mkdir()
    (tok / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<bos>", "chat_template": GEMMA_LIKE_TEMPLATE}))
    with SGLangTestDouble(tokenizer_path=str(tok)) as double:
        lm = SGLangBackend().create(BackendSettings(name="sglang", url=double.url, options={"batch_window_ms": 50}))
        yield lm, double


def test_prefix_order_is_enforced():
    check_prefix_order(React, ["policy", "conversation"], ["user_type"])
    with pytest.raises(PluginError, match="declare the shared inputs first"):
        check_prefix_order(BadOrder, ["conversation"], ["user_type"])
    with pytest.raises(PluginError, match="no input field"):
        check_prefix_order(React, ["nope"], ["user_type"])
    with pytest.raises(PluginError, match="both as shared and as varying"):
        check_prefix_order(React, ["policy", "user_type"], ["user_type"])
    with dspy.context(lm=DummyLM([{"reaction": "x"}] * 3, adapter=dspy.JSONAdapter()), adapter=dspy.JSONAdapter()):
        with pytest.raises(PluginError, match="same inputs"):
            fan_out("s", dspy.Predict(React), SHARED, [{"user_type": "a"}, {"policy": "b"}])


def test_results_keep_variant_order_and_prompts_share_a_prefix():
    lm = DummyLM([{"reaction": f"r{i}"} for i in range(3)], adapter=dspy.JSONAdapter())
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        preds = fan_out("anticipate", dspy.Predict(React), SHARED, TYPES, warm_up=True)
    assert preds[0].reaction == "r0"  # warm-up: the first variant ran alone, first
    assert sorted(p.reaction for p in preds) == ["r0", "r1", "r2"]
    prompts = [h["messages"][-1]["content"] for h in lm.history]
    shared_prefix = prompts[0][: prompts[0].index("benign")]
    assert all(p.startswith(shared_prefix) for p in prompts)
    assert SHARED["conversation"] in shared_prefix


def test_siblings_go_as_one_generate_batch_on_sglang(sglang_lm):
    lm, double = sglang_lm
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()), usage.meter() as m:
        preds = fan_out("anticipate", dspy.Predict(React), SHARED, TYPES)
    assert [p.reaction for p in preds] == ["double"] * 3
    [batch] = double.posts("/generate")
    texts = batch["body"]["text"]
    assert len(texts) == 3 and not double.posts("/v1/chat/completions")
    kinds = ("benign", "sensitive", "malicious")
    assert sorted(next(k for k in kinds if k in text) for text in texts) == sorted(kinds)
    assert m.total.cached_tokens > 0.8 * m.total.prompt_tokens * 2 / 3


def test_warm_up_sends_one_sibling_first_then_the_rest_together(sglang_lm):
    lm, double = sglang_lm
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        fan_out("anticipate", dspy.Predict(React), SHARED, TYPES, warm_up=True)
    posts = [r["path"] for r in double.requests if r["method"] == "POST"]
    assert posts == ["/v1/chat/completions", "/generate"]
    assert len(double.posts("/generate")[0]["body"]["text"]) == 2
