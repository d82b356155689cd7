"""CLI behaviour: errors are one line with exit code 2; listings work.

Commands run in process (`run_cli`, tests/conftest.py); one test starts the installed
`pearl` entry point as its own process.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def pearl(run_cli):
    return lambda *args, stdin=None, env=None: run_cli(args, env=env, stdin=stdin)


def assert_clean_error(proc, fragment):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert fragment in proc.stderr


@pytest.mark.parametrize("args, fragment", [
    (["run", "   "], "the message is empty"),
    (["run"], "nothing to answer"),
    (["run", "--pipeline", "nonesuch", "hi"], "unknown pipeline 'nonesuch'"),
    (["run", "--backend", "nonesuch", "hi"], "unknown backend 'nonesuch'"),
    (["run", "--model", "/no/such/model.gguf", "hi"], "model file '/no/such/model.gguf' does not exist"),
    (["run", "--set", "risk", "hi"], "write STEP.PARAM=VALUE"),
    (["run", "--set", "risk.nope=1", "hi"], "step 'risk' has no parameter 'nope'"),
    (["run", "--set", "nostep.x=1", "hi"], "pipeline 'csa' has no step 'nostep'; its steps are risk, anticipate"),
    (["run", "--pipeline", "minimal", "--set", "risk.severity=level", "hi"], "pipeline 'minimal' has no step 'risk'"),
    (["run", "--set", "risk.severity=banana", "hi"], 'should be \'written\' or \'level\' (with --set risk.severity="banana")'),
    # a misspelt step is never ignored, whichever command takes --set
    (["optimize", "--pipeline", "csa", "--step", "risk", "--trainset", "risk-train", "--set", "rsik.catalogue=ids"],
     "pipeline 'csa' has no step 'rsik'"),
    (["bench", "cost", "--pipelines", "direct,csa", "--set", "rsik.catalogue=ids", "--no-speed"],
     "no listed pipeline (direct, csa) has a step 'rsik'"),
])
def test_bad_input_is_one_clean_line(pearl, args, fragment):
    assert_clean_error(pearl(*args), fragment)


def test_bad_conversation_files(pearl, tmp_path):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{")
    assert_clean_error(pearl("run", "--file", str(bad_json)), "not valid JSON")
    bad_role = tmp_path / "role.json"
    bad_role.write_text(json.dumps({"messages": [{"role": "robot", "content": "hi"}]}))
    assert_clean_error(pearl("run", "--file", str(bad_role)), "unknown role 'robot'")
    assert_clean_error(pearl("run", "--file", str(tmp_path / "missing.json")), "does not exist")


def test_bench_cost_reads_its_conversations_by_line_and_never_writes_over_them(pearl, tmp_path):
    conversations = tmp_path / "conv.jsonl"
    conversations.write_text('{"prompt": "hi"}\n{"answer": "not a conversation"}\n')
    before = conversations.read_bytes()
    assert_clean_error(pearl("bench", "cost", "--pipelines", "direct", "--no-speed", "--conversations",
                             str(conversations), "--out", str(conversations)), "is the input file")
    assert conversations.read_bytes() == before
    assert_clean_error(pearl("bench", "cost", "--pipelines", "direct", "--no-speed", "--limit", "2",
                             "--conversations", str(conversations)), f"{conversations}:2")


def test_unknown_step_in_pipeline_file(pearl, tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('name = "p"\n[steps.a]\nuse = "no-such-step"\n')
    assert_clean_error(pearl("run", "--pipeline", str(path), "hi"), "unknown step 'no-such-step'")


def test_listings(pearl):
    proc = pearl("pipelines")
    assert proc.returncode == 0 and "minimal" in proc.stdout
    proc = pearl("plugins")
    assert proc.returncode == 0 and "llamacpp" in proc.stdout


@pytest.mark.parametrize("batch", [False, True])
def test_run_sets_step_parameters_on_the_session_it_opens(pearl, monkeypatch, tmp_path, batch):
    import pearl.runtime.session as session
    from pearl.errors import InputError
    from pearl.runtime.overrides import Override

    opened = {}

    def open_session(pipeline, **options):  # records what the CLI asked for, then stops before any model loads
        opened.update(options, pipeline=pipeline)
        raise InputError("stopped by the test")

    monkeypatch.setattr(session, "open_session", open_session)
    where = ["--batch", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "out.jsonl")] if batch else ["hi"]
    (tmp_path / "in.jsonl").write_text('{"prompt": "hi"}\n')
    proc = pearl("run", "--set", "risk.severity=level", "--set", "anticipate.mode=declared", *where)
    assert_clean_error(proc, "stopped by the test")
    assert opened["pipeline"] == "csa"
    assert opened["overrides"] == [Override("risk", "severity", "level"), Override("anticipate", "mode", "declared")]


def test_eval_sets_step_parameters_and_names_a_step_the_pipeline_lacks(pearl, monkeypatch, tmp_path):
    import pearl.runtime.session as session
    from pearl.errors import InputError
    from pearl.runtime.overrides import Override

    opened = {}

    def open_session(pipeline, **options):  # records what the CLI asked for, then stops before any model loads
        opened.update(options, pipeline=pipeline)
        raise InputError("stopped by the test")

    monkeypatch.setattr(session, "open_session", open_session)
    (tmp_path / "items.jsonl").write_text('{"id": "a", "prompt": "hi"}\n')
    args = ["eval", f"jsonl:{tmp_path / 'items.jsonl'}", "--out", str(tmp_path / "r.jsonl"), "--judges", "refusal-rules"]
    assert_clean_error(pearl(*args, "--set", "refine.schedule=[]"), "stopped by the test")
    assert opened["pipeline"] == "csa" and opened["overrides"] == [Override("refine", "schedule", [])]
    assert_clean_error(pearl(*args, "--pipeline", "direct", "--set", "refine.schedule=[]"),
                       "pipeline 'direct' has no step 'refine'")


def test_help_explains(pearl):
    proc = pearl("run", "--help")
    assert proc.returncode == 0 and "--pipeline" in proc.stdout and "--json" in proc.stdout


def test_entry_point_runs_as_a_process():
    """The one subprocess check: the installed `pearl` script starts, lists, exits 0."""
    script = Path(sys.executable).parent / "pearl"
    proc = subprocess.run([str(script), "pipelines"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PEARL_PLUGINS": ""})
    assert proc.returncode == 0, proc.stderr
    assert "minimal" in proc.stdout and "csa" in proc.stdout


def test_overrides_with_list_values_are_checked_on_several_pipelines():
    from pearl.cli import checked_overrides
    from pearl.runtime.overrides import Override

    assert checked_overrides(["direct", "csa"], ["refine.schedule=[]"]) == [Override("refine", "schedule", [])]
