"""A third-party plugin, written against the documented contracts alone, installed as an
entry point of its own distribution.

It uses only `pearl.hookimpl`, `pearl.host.step.Step`, `pearl.host.backend.Backend`, the
`register_commands` hook and the public `pearl.run`, and adds:

- a step (`one-line`: a DSPy program answering in one line) and a pipeline file using it,
- a backend (`plain-openai`) that returns a plain `dspy.LM` (no Pearlpoint LM class),
- a CLI command (`pearl one-line-usage`) that runs the pipeline and prints the usage.

Served by `OpenAITestDouble`, its runs must report the server's token counts: the runtime
meters any `dspy.BaseLM`, whichever plugin provides it.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from conftest import invoke_cli
from openai_double import OpenAITestDouble
from pearl.host.manager import Host, reset_host

PLUGIN = '''
"""pearl-one-line: a Pearlpoint plugin that answers in one line (a third party's package)."""

import json
from pathlib import Path

import dspy
import typer
from pydantic import BaseModel

import pearl
from pearl import PearlError, hookimpl
from pearl.host.backend import Backend
from pearl.host.step import Step
from pearl.types import Conversation

PIPELINE = Path(__file__).with_name("one_line.toml")


class Reply(BaseModel):
    response: str


class OneLine(dspy.Signature):
    """Answer the user in one line."""

    conversation: str = dspy.InputField()
    response: str = dspy.OutputField()


class OneLineStep(Step):
    name = "one-line"
    description = "answers in one line"
    inputs = {"conversation": Conversation}
    output = ("reply", Reply)

    def __init__(self, params, context):
        super().__init__(params, context)
        self.program = dspy.Predict(OneLine)

    def run(self, state):
        return Reply(response=self.program(conversation=state.conversation.transcript()).response)


class PlainOpenAIBackend(Backend):
    name = "plain-openai"
    description = "an OpenAI-compatible server through a plain dspy.LM"

    def create(self, settings):
        if not settings.url:
            raise PearlError("plain-openai needs --backend-url")
        return dspy.LM(f"openai/{settings.model or 'double-chat'}", api_base=settings.url, api_key="x",
                       cache=False, num_retries=0, temperature=settings.temperature, max_tokens=settings.max_tokens)


def one_line_usage(question: str = typer.Argument(...), url: str = typer.Option(..., "--url")):
    """Answer QUESTION in one line; print the answer and the LM usage as JSON."""
    result = pearl.run(question, pipeline=str(PIPELINE), backend="plain-openai", url=url)
    typer.echo(json.dumps({"response": result.response, "usage": result.usage.model_dump()}))


@hookimpl
def register_steps(register):
    register(OneLineStep)


@hookimpl
def register_backends(register):
    register(PlainOpenAIBackend)


@hookimpl
def register_commands(cli):
    cli.command(one_line_usage, name="one-line-usage")
'''

PIPELINE = '''
name = "one-line"
description = "One LM call: a one-line answer."
answer = "reply"

[backend]
name = "plain-openai"

[steps.answer]
use = "one-line"
'''

ANSWER = {"response": "Ask your landlord in writing, citing the contract."}


@pytest.fixture
def third_party(tmp_path, monkeypatch):
    """The plugin installed as distribution `pearl-one-line` (entry point `one-line`), on a fresh host."""
    (tmp_path / "pearl_one_line.py").write_text(textwrap.dedent(PLUGIN))
    (tmp_path / "one_line.toml").write_text(textwrap.dedent(PIPELINE))
    dist = tmp_path / "pearl_one_line-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: pearl-one-line\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[pearl]\none-line = pearl_one_line\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PEARL_PLUGINS", "one-line")
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "true")  # dspy.LM's model metadata: no network
    for var in ("PEARL_BACKEND", "PEARL_BACKEND_URL", "PEARL_MODEL"):
        monkeypatch.delenv(var, raising=False)
    host = Host()
    reset_host(host)
    yield tmp_path
    reset_host(None)


def test_third_party_step_backend_and_command_report_usage(third_party):
    with OpenAITestDouble(lambda body: ANSWER) as double:
        done = invoke_cli(["one-line-usage", "--url", double.url, "My landlord kept my deposit."])
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
        assert out["response"] == ANSWER["response"]
        reported = double.total()
        assert reported.calls == 1 and reported.prompt_tokens > 0
        assert (out["usage"]["calls"], out["usage"]["prompt_tokens"], out["usage"]["completion_tokens"]) == (
            1, reported.prompt_tokens, reported.completion_tokens)

        ran = invoke_cli(["run", "--pipeline", str(third_party / "one_line.toml"), "--backend-url", double.url,
                          "--json", "And my bond?"])
        assert ran.returncode == 0, ran.stderr
        result = json.loads(ran.stdout)
    assert result["backend"] == "plain-openai" and result["model"] == "openai/double-chat"
    assert result["steps"]["answer"]["usage"]["calls"] == 1
    assert result["usage"]["prompt_tokens"] == double.reported[1]["prompt_tokens"] > 0
    assert result["usage"]["completion_tokens"] == double.reported[1]["completion_tokens"] > 0


def test_third_party_contributions_are_listed(third_party):
    listed = invoke_cli(["plugins"])
    assert listed.returncode == 0, listed.stderr
    for name in ("one-line", "plain-openai"):
        assert name in listed.stdout
    helped = invoke_cli(["--help"])
    assert "one-line-usage" in helped.stdout
