"""Test doubles for evaluation runs, and a script that runs the `pearl` CLI with them.

`EvalDoublesPlugin` registers, under test names:
- backend `test-dummy`: a DSPy DummyLM (the double steps never call it);
- step `test-canned`: answers without a model after `PEARL_TEST_DELAY` seconds: a
  refusal when the prompt contains "REFUSE", an error when it contains "CRASH", else
  a helpful-looking echo.

`python tests/eval_doubles.py eval ...` runs `pearl` with the doubles registered, so a
test can start, kill and resume a real CLI process.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import dspy
from dspy.utils import DummyLM

from pearl.host.backend import Backend
from pearl.host.hookspecs import hookimpl
from pearl.host.step import Step
from pearl.types import Answer, Conversation

PIPELINE_TOML = """
name = "test-canned"
description = "test double pipeline: canned answers, no model"
answer = "response"

[backend]
name = "test-dummy"

[steps.canned]
use = "test-canned"
"""


class DummyBackend(Backend):
    """Test double backend: a scripted DummyLM."""

    name = "test-dummy"

    def create(self, settings):
        return DummyLM([{"response": "unused"}], adapter=dspy.JSONAdapter())


class CannedStep(Step):
    """Test double step: canned answers (see the module docstring)."""

    name = "test-canned"
    uses_lm = False
    inputs = {"conversation": Conversation}
    output = ("response", Answer)

    def run(self, state):
        time.sleep(float(os.environ.get("PEARL_TEST_DELAY", "0")))
        text = state.conversation.last_user_message
        if "CRASH" in text:
            raise RuntimeError("the canned step crashed on purpose")
        if "REFUSE" in text:
            return Answer(response="I'm sorry, but I can't help with that.")
        return Answer(response=f"Here is what you asked about: {text}")


class EvalDoublesPlugin:
    @hookimpl
    def register_backends(self, register):
        register(DummyBackend)

    @hookimpl
    def register_steps(self, register):
        register(CannedStep)


def write_pipeline(folder: Path) -> Path:
    path = folder / "test_canned.toml"
    path.write_text(PIPELINE_TOML, encoding="utf-8")
    return path


if __name__ == "__main__":
    from pearl.cli import main
    from pearl.host.manager import Host, reset_host

    host = Host(third_party=False)
    host.register(EvalDoublesPlugin(), name="tests.eval_doubles")
    reset_host(host)
    sys.argv = ["pearl", *sys.argv[1:]]
    main()
