"""A pipeline's `[compiled]` table: the programs compiled for a model load when a run uses that model.

DummyLM (DSPy's scripted test double) reports the model name "dummy", so a test pipeline
names its compiled folder for "dummy".
"""

import json

import pytest
from typer.testing import CliRunner

from otel_support import spans  # noqa: F401  (fixture)
from pearl.errors import PipelineError
from pearl.runtime.pipeline import resolve
from pearl.runtime.session import open_session
from pearl.traces import semconv as sc
from test_optimize_dummy import DummyBackendPlugin, compiled_dir  # noqa: F401  (fixture)


def pipeline_file(tmp_path, compiled: dict[str, str]) -> str:
    text = resolve("minimal").read_text(encoding="utf-8")
    table = "\n".join(f'"{model}" = "{folder}"' for model, folder in compiled.items())
    path = tmp_path / "minimal-compiled.toml"
    path.write_text(text + f"\n[compiled]\n{table}\n", encoding="utf-8")
    return str(path)


@pytest.fixture
def dummy_host(host):
    host.register(DummyBackendPlugin(), name="tests.dummy-backend")
    return host


def test_the_programs_compiled_for_the_model_load_and_are_recorded(compiled_dir, dummy_host, tmp_path, spans):  # noqa: F811
    out, _ = compiled_dir
    path = pipeline_file(tmp_path, {"dummy": out.name, "some-other-model": "nowhere"})
    session = open_session(path, backend="test-dummy", host=dummy_host)
    assert session.compiled == str(out)
    result = session.run("is coffee bad for me")
    assert result.steps["screen"].program == str(out / "screen.json")
    assert result.steps["respond"].program is None  # not in the folder's manifest: the step's own program
    step_spans = {s.attributes[sc.PEARL_STEP_ID]: s for s in spans.get_finished_spans() if s.name.startswith("step ")}
    assert step_spans["screen"].attributes[sc.PEARL_STEP_PROGRAM] == str(out / "screen.json")
    assert sc.PEARL_STEP_PROGRAM not in step_spans["respond"].attributes


def test_none_and_other_models_run_the_uncompiled_programs(compiled_dir, dummy_host, tmp_path):  # noqa: F811
    out, _ = compiled_dir
    path = pipeline_file(tmp_path, {"dummy": out.name})
    session = open_session(path, backend="test-dummy", host=dummy_host, compiled="none")
    assert session.compiled is None
    assert session.run("hello").steps["screen"].program is None
    other = pipeline_file(tmp_path, {"another-model": out.name})
    assert open_session(other, backend="test-dummy", host=dummy_host).compiled is None


def test_a_missing_compiled_folder_is_an_error_naming_the_entry(dummy_host, tmp_path):
    path = pipeline_file(tmp_path, {"dummy": "compiled/gone"})
    with pytest.raises(PipelineError, match=r"\[compiled\] names 'compiled/gone' for model 'dummy'.*--compiled none"):
        open_session(path, backend="test-dummy", host=dummy_host)


def test_cli_run_says_which_steps_ran_compiled(compiled_dir, dummy_host, tmp_path):  # noqa: F811
    from pearl.cli import app

    out, _ = compiled_dir
    path = pipeline_file(tmp_path, {"dummy": out.name})
    ran = CliRunner().invoke(app, ["run", "--pipeline", path, "--backend", "test-dummy", "--json", "hello"])
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.output)["steps"]["screen"]["program"] == str(out / "screen.json")
    ran = CliRunner().invoke(app, ["run", "--pipeline", path, "--backend", "test-dummy", "--compiled", "none", "hello"])
    assert ran.exit_code == 0, ran.output
    assert "compiled" not in ran.output
    ran = CliRunner().invoke(app, ["run", "--pipeline", path, "--backend", "test-dummy", "hello"])
    assert ran.exit_code == 0, ran.output
    assert f"compiled screen ({out})" in ran.output.replace("\n", "")


def test_an_entry_may_name_the_model_without_its_backend_prefix(compiled_dir, host):  # noqa: F811
    from pearl.runtime.pipeline import load

    out, _ = compiled_dir
    bare = load(pipeline_file(out.parent, {"qwen2.5-coder-1.5b": out.name}), host)
    assert bare.compiled_for("llamacpp/qwen2.5-coder-1.5b") == out  # llama.cpp reports "llamacpp/<name>"
    assert bare.compiled_for("qwen2.5-coder-1.5b") == out
    assert bare.compiled_for("llamacpp/tiny") is None
    both = load(pipeline_file(out.parent, {"tiny": "nowhere", "llamacpp/tiny": out.name}), host)
    assert both.compiled_for("llamacpp/tiny") == out  # the full name wins
    with pytest.raises(PipelineError, match=r"names 'nowhere' for model 'tiny'"):
        both.compiled_for("openai/tiny")
