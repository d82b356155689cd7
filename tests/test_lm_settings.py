"""One settings resolver for every LM role (`pearl.host.backend.resolve_settings`).

Regression: `pearl optimize --judge-backend openai` used to build the judge's settings by
merging the task's, so the judge inherited the task's GGUF path and URL.
"""

from __future__ import annotations

import json

import pytest
from dspy.utils import DummyLM

from pearl.errors import BackendError
from pearl.host.backend import Backend, BackendSettings, resolve_settings
from pearl.host.hookspecs import hookimpl
from pearl.runtime.session import open_session

TASK_FILE = BackendSettings(name="llamacpp", model="/models/task.gguf", temperature=0.2, options={"timeout": 9})


@pytest.fixture(autouse=True)
def no_backend_environment(monkeypatch):
    for var in ("PEARL_BACKEND", "PEARL_BACKEND_URL", "PEARL_MODEL"):
        monkeypatch.delenv(var, raising=False)


def test_another_backend_drops_the_base_model_and_url_but_keeps_sampling():
    task = resolve_settings(TASK_FILE, max_tokens=99)
    judge = resolve_settings(task, name="openai", url="http://judge:8000/v1", environment=False)
    assert (judge.name, judge.model, judge.url) == ("openai", None, "http://judge:8000/v1")
    assert (judge.temperature, judge.max_tokens, judge.options) == (0.2, 99, {"timeout": 9})
    same_backend = resolve_settings(task, model="/models/judge.gguf", environment=False)
    assert (same_backend.name, same_backend.model) == ("llamacpp", "/models/judge.gguf")


def test_the_environment_is_the_task_roles_not_the_judges(monkeypatch):
    monkeypatch.setenv("PEARL_BACKEND", "sglang")
    monkeypatch.setenv("PEARL_BACKEND_URL", "http://env-task:30000")
    task = resolve_settings(TASK_FILE)
    assert (task.name, task.model, task.url) == ("sglang", None, "http://env-task:30000")
    judge = resolve_settings(task, name="openai", environment=False)
    assert (judge.name, judge.url) == ("openai", None)  # not the task server's URL
    assert resolve_settings(task, model="judge-id", environment=False).url == "http://env-task:30000"


def test_optimize_cli_resolves_the_judge_from_the_task_settings():
    from pearl.cli.optimize import lm_settings

    task, judge = lm_settings(TASK_FILE, judge_backend="openai", judge_url="http://judge:8000/v1", max_tokens=64)
    assert (task.name, task.model, task.max_tokens) == ("llamacpp", "/models/task.gguf", 64)
    assert (judge.name, judge.model, judge.url, judge.max_tokens) == ("openai", None, "http://judge:8000/v1", 64)
    assert lm_settings(TASK_FILE)[1] is None  # no judge option: the judge is the task LM


made: list[BackendSettings] = []


class RecordingBackend(Backend):
    """Test double: records the settings it is created with; returns a DummyLM."""

    name = "test-record"

    def create(self, settings):
        made.append(settings)
        return DummyLM([{"response": "unused"}])


class RecordingJudgeBackend(Backend):
    """Test double: records the settings, then stops the command (no optimisation runs)."""

    name = "test-record-judge"

    def create(self, settings):
        made.append(settings)
        raise BackendError("judge settings recorded")


class RecordingPlugin:
    @hookimpl
    def register_backends(self, register):
        register(RecordingBackend)
        register(RecordingJudgeBackend)


@pytest.fixture
def recording(host):
    made.clear()
    host.register(RecordingPlugin(), name="tests.recording")
    return host


def test_pearl_optimize_judge_backend_does_not_inherit_the_task_model_or_url(recording, run_cli, tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps({"prompt": "My landlord kept my deposit."}) + "\n")
    done = run_cli(["optimize", "--pipeline", "minimal", "--step", "screen", "--trainset", str(data),
                    "--task-backend", "test-record", "--task-model", "task-model", "--backend-url", "http://task:1/v1",
                    "--judge-backend", "test-record-judge", "--judge-url", "http://judge:2/v1",
                    "--max-tokens", "77", "--out", str(tmp_path / "out")])
    assert done.returncode == 2 and "judge settings recorded" in done.stderr
    task, judge = made
    assert (task.name, task.model, task.url, task.max_tokens) == ("test-record", "task-model", "http://task:1/v1", 77)
    assert (judge.name, judge.model, judge.url, judge.max_tokens) == ("test-record-judge", None, "http://judge:2/v1", 77)


def test_open_session_resolves_judge_choices_against_the_task(recording):
    session = open_session("minimal", backend="test-record", model="task-model", url="http://task:1/v1",
                           max_tokens=55, host=recording,
                           judge={"name": "test-record", "model": "judge-model", "url": None})
    task, judge = made
    assert (judge.name, judge.model, judge.url, judge.max_tokens) == ("test-record", "judge-model",
                                                                       "http://task:1/v1", 55)
    assert session.runner.lms["judge"] is not session.runner.lms["task"]
    made.clear()
    with pytest.raises(BackendError, match="judge settings recorded"):
        open_session("minimal", backend="test-record", model="task-model", url="http://task:1/v1", host=recording,
                     judge={"name": "test-record-judge"})
    assert (made[1].name, made[1].model, made[1].url) == ("test-record-judge", None, None)
