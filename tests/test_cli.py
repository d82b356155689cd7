"""CLI behaviour: errors are one line with exit code 2; listings work."""

import json
import subprocess
import sys

import pytest


def pearl(*args, stdin=None, env=None):
    import os

    full_env = {**os.environ, "PEARL_PLUGINS": "", **(env or {})}
    return subprocess.run([sys.executable, "-m", "pearl.cli", *args], input=stdin, capture_output=True, text=True,
                          env=full_env, timeout=600)


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
])
def test_bad_input_is_one_clean_line(args, fragment):
    assert_clean_error(pearl(*args), fragment)


def test_bad_conversation_files(tmp_path):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{")
    assert_clean_error(pearl("run", "--file", str(bad_json)), "not valid JSON")
    bad_role = tmp_path / "role.json"
    bad_role.write_text(json.dumps({"messages": [{"role": "robot", "content": "hi"}]}))
    assert_clean_error(pearl("run", "--file", str(bad_role)), "unknown role 'robot'")
    assert_clean_error(pearl("run", "--file", str(tmp_path / "missing.json")), "does not exist")


def test_unknown_step_in_pipeline_file(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('name = "p"\n[steps.a]\nuse = "no-such-step"\n')
    assert_clean_error(pearl("run", "--pipeline", str(path), "hi"), "unknown step 'no-such-step'")


def test_listings():
    proc = pearl("pipelines")
    assert proc.returncode == 0 and "minimal" in proc.stdout
    proc = pearl("plugins")
    assert proc.returncode == 0 and "llamacpp" in proc.stdout


def test_help_explains():
    proc = pearl("run", "--help")
    assert proc.returncode == 0 and "--pipeline" in proc.stdout and "--json" in proc.stdout
