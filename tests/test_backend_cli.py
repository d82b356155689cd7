"""`pearl backend check` / `pearl backend launch`: one clean line on error, a table on success."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pearl.plugins.sglang_launcher import launch_command, sglang_installed
from sglang_double import SGLangTestDouble


def pearl(*args, env=None):
    full_env = {**os.environ, "PEARL_PLUGINS": "", **(env or {})}
    for var in ("PEARL_BACKEND", "PEARL_BACKEND_URL", "PEARL_MODEL"):
        full_env.pop(var, None)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "pearl.cli", *args], capture_output=True, text=True, env=full_env,
                          timeout=120)


def test_check_one_reachable_backend(tmp_path):
    with SGLangTestDouble(tokenizer_path=str(tmp_path)) as d:
        proc = pearl("backend", "check", "--backend", "sglang", "--backend-url", d.url)
        assert proc.returncode == 0, proc.stderr
        assert "ready" in proc.stdout and "healthy" in proc.stdout
        via_env = pearl("backend", "check", env={"PEARL_BACKEND": "openai", "PEARL_BACKEND_URL": d.url + "/v1"})
        assert via_env.returncode == 0 and "openai" in via_env.stdout and "reachable" in via_env.stdout


def test_check_unreachable_backend_exits_2():
    proc = pearl("backend", "check", "--backend", "sglang", "--backend-url", "http://127.0.0.1:9")
    assert proc.returncode == 2
    assert "unreachable" in proc.stdout and "pearl backend launch" in proc.stdout.replace("\n", " ")


def test_check_unknown_backend_is_one_line():
    proc = pearl("backend", "check", "--backend", "nonesuch")
    assert proc.returncode == 2 and "unknown backend 'nonesuch'" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.skipif(sglang_installed(), reason="sglang is installed here")
def test_launch_sglang_without_sglang_says_how_to_get_it():
    proc = pearl("backend", "launch", "sglang", "--model", "some/model")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "SGLang is not installed here" in proc.stderr and "pearlpoint[sglang]" in proc.stderr


def test_launch_errors():
    assert "needs --model" in pearl("backend", "launch", "sglang").stderr
    proc = pearl("backend", "launch", "vllm")
    assert proc.returncode == 2 and "cannot launch 'vllm'" in proc.stderr


def test_launch_command_line():
    cmd = launch_command("org/model", 31000, ["--tp", "2"])
    assert cmd[1:] == ["-m", "sglang.launch_server", "--model-path", "org/model", "--host", "127.0.0.1", "--port",
                       "31000", "--schedule-policy", "lpm", "--enable-cache-report", "--tp", "2"]
