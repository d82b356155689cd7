"""Shared fixtures: a fresh plugin host per test, test-double steps, the embedded model."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from pearl.host.manager import Host, reset_host
from pearl.host.hookspecs import hookimpl
from pearl.host.step import Step
from pearl.types import Conversation

ROOT = Path(__file__).resolve().parent.parent
# The suite runs on the packaged 270M model (`tiny`), never pulling the catalogue's default.
import pearl.plugins.models as _models  # noqa: E402

_models.DEFAULT_MODEL = _models.TINY
SHARED_DATA = ROOT.parent / "shared" / "data"


class Echo(BaseModel):
    text: str


class Answer(BaseModel):
    response: str
    reasoning: str | None = None


class EchoStep(Step):
    """Test double: copies the user's last message into slot `echo` (no LM)."""

    name = "test-echo"
    uses_lm = False
    inputs = {"conversation": Conversation}
    output = ("echo", Echo)

    def run(self, state):
        return Echo(text=state.conversation.last_user_message)


class ShoutStep(Step):
    """Test double: upper-cases the echo into the answer slot (no LM)."""

    name = "test-shout"
    uses_lm = False
    inputs = {"echo": Echo}
    output = ("response", Answer)

    def run(self, state):
        return Answer(response=state.get("echo").text.upper())


class TestStepsPlugin:
    """A plugin registered under a test name, the way a third party would."""

    @hookimpl
    def register_steps(self, register):
        register(EchoStep)
        register(ShoutStep)


@pytest.fixture
def host():
    """A host with the built-ins and the test plugin, no entry points."""
    h = Host(third_party=False)
    h.register(TestStepsPlugin(), name="tests.steps")
    reset_host(h)
    yield h
    reset_host(None)


@dataclass
class CliResult:
    """What a `pearl` command left: its exit code and its two output streams."""

    returncode: int
    stdout: str
    stderr: str


def invoke_cli(args: Sequence[str], env: Mapping[str, str | None] | None = None, stdin: str | None = None) -> CliResult:
    """Run `pearl ARGS` in this process exactly as the entry point does (`pearl.cli.main`:
    PearlError -> one line and exit code 2), on the process-wide host (`get_host()`).

    `env` overrides environment variables for the call only (None unsets one); `stdin`
    is what the command reads. The one place tests invoke the CLI in process: change
    here how the command is built, not in the tests.
    """
    from pearl.cli import main

    runner = CliRunner()
    argv = sys.argv
    code = 0
    with runner.isolation(input=stdin, env=dict(env or {})) as (out, err, _):
        sys.argv = ["pearl", *map(str, args)]
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.argv = argv
            sys.stdout.flush()
            sys.stderr.flush()
        return CliResult(code, out.getvalue().decode(), err.getvalue().decode())


@pytest.fixture
def run_cli(host):
    """`run_cli(args, env=None, stdin=None) -> CliResult`: `pearl ARGS` in process, on the
    test's `host` (built-ins and the test plugin, no third-party plugins)."""
    return invoke_cli


@pytest.fixture(scope="session")
def embedded_lm():
    """The real embedded model (slow to load once; shared by the session)."""
    from pearl.host.backend import BackendSettings
    from pearl.plugins.llamacpp import LlamaCppBackend

    return LlamaCppBackend().create(BackendSettings(model="tiny", max_tokens=256, n_ctx=4096))


def _find_shared_data() -> Path | None:
    """PEARL_SHARED_DATA, else the first existing of <root>/../shared/data and <root>/../../shared/data."""
    env = os.environ.get("PEARL_SHARED_DATA")
    candidates = [Path(env)] if env else [ROOT.parent / "shared" / "data", ROOT.parent.parent / "shared" / "data"]
    return next((p for p in candidates if p.is_dir()), None)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared test-data folder (real copies of published data sets); skips the test if absent."""
    found = _find_shared_data()
    if found is None:
        pytest.skip("shared test data not found: set PEARL_SHARED_DATA or place it at <repo>/../shared/data")
    return found
