"""The `openai` backend.

Unit tests run against `SGLangTestDouble` (its `/v1/chat/completions` and `/v1/models`
are OpenAI-compatible); the `model`-marked tests run end to end against a real
`python -m llama_cpp.server` on 127.0.0.1 serving the embedded GGUF (one server for
the whole session).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import dspy
import pytest

from pearl.lm import usage
from pearl.lm.metered import instrument
from pearl.host.backend import BackendSettings
from pearl.runtime.concurrency import map_in_context
from pearl.errors import BackendError
from pearl.plugins.openai_compat import OpenAIBackend
from sglang_double import SGLangTestDouble


def settings(url=None, **options):
    options.setdefault("backoff", 0.01)
    return BackendSettings(name="openai", url=url, max_tokens=64, options=options)


@pytest.fixture
def double(tmp_path):
    with SGLangTestDouble(tokenizer_path=str(tmp_path)) as d:
        yield d


def test_model_from_models_listing_and_url_normalised(double):
    lm = OpenAIBackend().create(settings(double.url))  # no /v1: added
    assert lm.model == "openai/double/tiny-chat" and lm.client.base_url == double.url + "/v1"
    assert lm(messages=[{"role": "user", "content": "hi"}]) == ["double says: ok"]
    body = double.posts("/v1/chat/completions")[0]["body"]
    assert body["model"] == "double/tiny-chat" and body["max_tokens"] == 64


def test_api_key_is_sent_but_never_shown(double, monkeypatch):
    secret = "sk-test-not-a-real-key-123"
    monkeypatch.setenv("PEARL_API_KEY", secret)
    lm = OpenAIBackend().create(settings(double.url + "/v1"))
    lm(messages=[{"role": "user", "content": "hi"}])
    assert double.posts("/v1/chat/completions")[0]["headers"]["authorization"] == f"Bearer {secret}"
    assert secret not in repr(lm.dump_state()) and secret not in repr(vars(lm))
    double.fail(401)
    with pytest.raises(BackendError) as err:
        lm(messages=[{"role": "user", "content": "hi"}])
    assert "check the API key" in str(err.value) and secret not in str(err.value)


def test_structured_calls_send_json_schema(double):
    class QA(dspy.Signature):
        question: str = dspy.InputField()
        answer: str = dspy.OutputField()
        confident: bool = dspy.OutputField()

    lm = OpenAIBackend().create(settings(double.url))
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        pred = dspy.Predict(QA)(question="why?")
    assert pred.answer == "double" and pred.confident is True
    probe, call = double.posts("/v1/chat/completions")
    assert call["body"]["response_format"]["type"] == "json_schema"
    assert "pearl-schema-probe" in json.dumps(probe["body"]["response_format"])
    assert lm.schema_format == "json_schema" and lm.max_string_chars is None


def test_schema_form_is_probed_not_assumed(double):
    lm = OpenAIBackend().create(settings(double.url))
    assert lm.schema_format == "auto" and double.posts("/v1/chat/completions") == []  # nothing sent yet
    double.schema_form = "json_object"  # llama-cpp-python's server: json_schema is a 500
    assert lm.resolve_schema_format() == "json_object"
    assert lm.max_string_chars == 800  # llama.cpp's grammar limit applies from then on
    probes = [p["body"]["response_format"]["type"] for p in double.posts("/v1/chat/completions")]
    assert probes == ["json_schema", "json_object"]


def test_a_server_that_ignores_schemas_is_a_clear_error(double):
    double.schema_form = "ignore"
    lm = OpenAIBackend().create(settings(double.url))
    with pytest.raises(BackendError, match="does not constrain decoding to a JSON schema"):
        lm(messages=[{"role": "user", "content": "hi"}], response_format={"type": "json_schema", "json_schema": {
            "name": "x", "schema": {"type": "object", "properties": {"a": {"type": "boolean"}}}}})
    forced = OpenAIBackend().create(settings(double.url, schema_format="json_schema"))  # the documented way out
    assert forced(messages=[{"role": "user", "content": "hi"}]) == ["double says: ok"]


def test_configuration_errors(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(BackendError, match="needs the server's URL: pass --backend-url"):
        OpenAIBackend().create(settings(None))
    monkeypatch.setenv("OPENAI_BASE_URL", "localhost:8000")  # settings check their own URL; the variable here
    with pytest.raises(BackendError, match="not an http"):
        OpenAIBackend().create(settings(None))
    monkeypatch.setenv("OPENAI_BASE_URL", "http://[::1")
    with pytest.raises(BackendError, match=r"'http://\[::1' is not a valid URL"):
        OpenAIBackend().create(settings(None))
    monkeypatch.delenv("OPENAI_BASE_URL")
    with pytest.raises(BackendError, match="schema_format"):
        OpenAIBackend().create(settings("http://127.0.0.1:9/v1", schema_format="yaml"))
    with pytest.raises(BackendError, match=r"no OpenAI-compatible server at http://127.0.0.1:9/v1: start one"):
        OpenAIBackend().create(settings("http://127.0.0.1:9/v1", max_retries=1))


def test_hang_and_malformed(double):
    lm = OpenAIBackend().create(settings(double.url, timeout=0.5))
    double.hang(3)
    with pytest.raises(BackendError, match="did not answer"):
        lm(messages=[{"role": "user", "content": "hi"}])
    double.malformed()
    with pytest.raises(BackendError, match="not JSON"):
        lm(messages=[{"role": "user", "content": "hi"}])


# -- end to end against a real llama_cpp.server --------------------------------

@pytest.fixture(scope="session")
def llama_server():
    from pearl.plugins.llamacpp import default_model_path
    from pearl.lm.server_process import start_llama_cpp_server

    with start_llama_cpp_server(default_model_path(), n_ctx=4096) as server:
        yield server


@pytest.mark.model
def test_llama_cpp_server_structured_output_and_concurrency(llama_server):
    class Screen(dspy.Signature):
        """Classify the message."""

        message: str = dspy.InputField()
        topic: str = dspy.OutputField()
        urgent: bool = dspy.OutputField()

    lm = instrument(OpenAIBackend().create(BackendSettings(name="openai", url=llama_server.url, max_tokens=48)))
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()), usage.meter() as m:
        pred = dspy.Predict(Screen)(message="My flat is flooding!")
    assert isinstance(pred.topic, str) and isinstance(pred.urgent, bool)
    assert lm.schema_format == "json_object"  # llama-cpp-python's server takes the older form
    assert m.total.calls == 1 and m.total.prompt_tokens > 0
    t0 = time.perf_counter()
    outs = map_in_context(lambda i: lm(messages=[{"role": "user", "content": f"Count to {i}"}], max_tokens=4)[0],
                          range(3))
    assert len(outs) == 3 and all(isinstance(o, str) for o in outs)
    assert time.perf_counter() - t0 < 120


@pytest.mark.model
def test_pearl_run_with_the_openai_backend(llama_server, run_cli):
    import json

    out = run_cli(["run", "--pipeline", "minimal", "--backend", "openai", "--backend-url", llama_server.url,
                   "--max-tokens", "96", "--json", "How do I get my deposit back?"])
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["backend"] == "openai" and result["model"].startswith("openai/")
    assert result["response"] and result["usage"]["calls"] == 2 and result["usage"]["prompt_tokens"] > 0
    assert set(result["steps"]) == {"screen", "respond"}


def test_backend_selection_precedence(host, monkeypatch, tmp_path):
    from pearl.host.backend import BackendSettings, resolve_settings

    for var in ("PEARL_BACKEND", "PEARL_BACKEND_URL", "PEARL_MODEL"):
        monkeypatch.delenv(var, raising=False)
    file_says = BackendSettings(name="llamacpp", model="/models/x.gguf", temperature=0.3, options={"timeout": 9})
    assert resolve_settings(file_says).model == "/models/x.gguf"
    other = resolve_settings(file_says, name="openai", url="http://h:1/v1")
    assert (other.name, other.model, other.url, other.temperature, other.options) == (
        "openai", None, "http://h:1/v1", 0.3, {"timeout": 9})
    monkeypatch.setenv("PEARL_BACKEND", "sglang")
    monkeypatch.setenv("PEARL_BACKEND_URL", "http://env:2")
    env = resolve_settings(file_says)
    assert (env.name, env.url, env.model) == ("sglang", "http://env:2", None)
    assert resolve_settings(file_says, name="openai", url="http://arg:3/v1").url == "http://arg:3/v1"
