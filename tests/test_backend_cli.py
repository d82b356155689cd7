"""`pearl backend check` / `pearl backend launch`: one clean line on error, a table on success."""

from __future__ import annotations

import pytest

from pearl.plugins.sglang_launcher import launch_command, sglang_installed
from sglang_double import SGLangTestDouble


@pytest.fixture
def pearl(run_cli):
    """`pearl ARGS` in process, with no backend chosen through the environment unless `env` says."""
    unset = {"PEARL_BACKEND": None, "PEARL_BACKEND_URL": None, "PEARL_MODEL": None}
    return lambda *args, env=None: run_cli(args, env={**unset, **(env or {})})


def test_check_one_reachable_backend(pearl, tmp_path):
    with SGLangTestDouble(tokenizer_path=str(tmp_path)) as d:
        proc = pearl("backend", "check", "--backend", "sglang", "--backend-url", d.url)
        assert proc.returncode == 0, proc.stderr
        assert "ready" in proc.stdout and "healthy" in proc.stdout
        via_env = pearl("backend", "check", env={"PEARL_BACKEND": "openai", "PEARL_BACKEND_URL": d.url + "/v1"})
        assert via_env.returncode == 0 and "openai" in via_env.stdout and "reachable" in via_env.stdout


def test_check_unreachable_backend_exits_2(pearl):
    proc = pearl("backend", "check", "--backend", "sglang", "--backend-url", "http://127.0.0.1:9")
    assert proc.returncode == 2
    assert "unreachable" in proc.stdout and "pearl backend launch" in proc.stdout.replace("\n", " ")


def test_check_unknown_backend_is_one_line(pearl):
    proc = pearl("backend", "check", "--backend", "nonesuch")
    assert proc.returncode == 2 and "unknown backend 'nonesuch'" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.skipif(sglang_installed(), reason="sglang is installed here")
def test_launch_sglang_without_sglang_says_how_to_get_it(pearl):
    proc = pearl("backend", "launch", "sglang", "--model", "some/model")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "SGLang is not installed here" in proc.stderr and "pearlpoint[sglang]" in proc.stderr


def test_launch_errors(pearl):
    assert "needs --model" in pearl("backend", "launch", "sglang").stderr
    proc = pearl("backend", "launch", "vllm")
    assert proc.returncode == 2 and "cannot launch 'vllm'" in proc.stderr


def test_launch_command_line():
    cmd = launch_command("org/model", 31000, ["--tp", "2"])
    assert cmd[1:] == ["-m", "sglang.launch_server", "--model-path", "org/model", "--host", "127.0.0.1", "--port",
                       "31000", "--schedule-policy", "lpm", "--enable-cache-report", "--tp", "2"]
