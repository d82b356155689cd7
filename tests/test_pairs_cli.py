"""`--refine N`, `--explain` rendering and `pearl export-pairs`, on results made with the
routed DummyLM test double."""

import io
import json
from types import SimpleNamespace

import pytest
from rich.console import Console
from typer.testing import CliRunner

from pearl.cli import application
from pearl.errors import InputError
from pearl.csa.pairs import export_pairs, refinement_of
from pearl.runtime.pipeline import compile_spec, load
from pearl.strategies.commands import render_explain, set_refine_iterations
from pearl.runtime.runner import Runner
from pearl.types import Conversation

from lingobp_doubles import DoublesPlugin, RoutedDummyLM, Script, pipeline_doc

CONV = Conversation(messages=[{"role": "user", "content": "How do I open my own front door without the key?"}],
                    system="Be brief.")


@pytest.fixture
def doubles(host):
    host.register(DoublesPlugin(), name="tests.lingobp")
    return host


def make_result(host, script, **params):
    pipeline = compile_spec(pipeline_doc(**params), host)
    return Runner(pipeline, {"task": RoutedDummyLM(script)}, host).run(CONV)


def test_set_refine_iterations_cuts_or_pads_the_schedule(doubles):
    pipeline = compile_spec(pipeline_doc(schedule=["user", "developer"]), doubles)
    session = SimpleNamespace(pipeline=pipeline)
    set_refine_iterations(session, 3)
    assert pipeline.steps["refine"].params.schedule == ["user", "developer", "developer"]
    set_refine_iterations(session, 1)
    assert pipeline.steps["refine"].params.schedule == ["user"]
    set_refine_iterations(session, 0)
    assert pipeline.steps["refine"].params.schedule == []
    with pytest.raises(InputError, match="0 or more"):
        set_refine_iterations(session, -1)


def test_refine_on_a_pipeline_without_refine_is_a_clear_error(host):
    session = SimpleNamespace(pipeline=load("minimal", host))
    with pytest.raises(InputError, match="has no 'refine' step: use a pipeline that refines"):
        set_refine_iterations(session, 2)


def test_explain_shows_every_iteration_and_the_pearl_point(doubles):
    result = make_result(doubles, Script(sat=[0, -1, 0], safety=["mostly safe", "safe", "safe"]), schedule=["both", "both"])
    buffer = io.StringIO()
    render_explain(result, Console(file=buffer, width=200))
    text = buffer.getvalue()
    assert "Pearl Point: iteration 2" in text and "2★" in text
    assert text.count("mostly safe") == 1 and "schedule done" in text
    assert "+0.0 partly satisfied" in text and "-1.0 dissatisfied" in text


def write_results(path, results):
    path.write_text("".join(r.model_dump_json() + "\n" for r in results), encoding="utf-8")


def test_export_pairs_messages_format(doubles, tmp_path):
    # draft mostly safe; v1 safe sat -1; v2 safe sat 0 (Pearl Point); v3 unsafe
    result = make_result(doubles, Script(sat=[0, -1, 0, 1], safety=["mostly safe", "safe", "safe", "unsafe"]))
    assert refinement_of(json.loads(result.model_dump_json())).chosen == 2
    src, out = tmp_path / "results.jsonl", tmp_path / "pairs.jsonl"
    write_results(src, [result])
    counts = export_pairs(src, out)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert counts == {"results": 1, "refined": 1, "flagged_skipped": 0, "pairs": 3}
    assert [set(r) for r in records] == [{"prompt", "chosen", "rejected"}] * 3
    assert records[0]["prompt"] == [{"role": "system", "content": "Be brief."},
                                    {"role": "user", "content": CONV.last_user_message}]
    assert all(r["chosen"] == [{"role": "assistant", "content": "reply v3"}] for r in records)
    # earlier iterations 0 and 1, and the later unsafe iteration 3
    assert [r["rejected"][0]["content"] for r in records] == ["reply v1", "reply v2", "reply v4"]


def test_export_pairs_text_format_and_eval_records(doubles, tmp_path):
    result = make_result(doubles, Script(sat=[0, 1], safety=["unsafe", "safe"]))
    src, out = tmp_path / "eval.jsonl", tmp_path / "pairs.jsonl"
    src.write_text(json.dumps({"id": "x", "status": "ok", "result": json.loads(result.model_dump_json())}) + "\n")
    export_pairs(src, out, text=True, metadata=True)
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["prompt"].startswith("system: Be brief.\nuser: How do I open")
    assert record["chosen"] == "reply v2" and record["rejected"] == "reply v1"
    assert record["metadata"]["chosen"] == {"index": 1, "safety": 1.0, "satisfaction": 1.0}


def test_flagged_results_are_skipped_unless_asked(doubles, tmp_path):
    result = make_result(doubles, Script(sat=[0, 1], safety=["unsafe", "mostly safe"]), schedule=["both"])
    src, out = tmp_path / "r.jsonl", tmp_path / "p.jsonl"
    write_results(src, [result])
    assert export_pairs(src, out)["pairs"] == 0 and not out.exists()  # no pair: nothing written
    assert export_pairs(src, out, include_flagged=True)["pairs"] == 1
    kept = out.read_text()
    assert export_pairs(src, out)["pairs"] == 0 and out.read_text() == kept  # an earlier export is not emptied


def test_export_pairs_cli_and_its_errors(doubles, tmp_path):
    result = make_result(doubles, Script(sat=[0, 1], safety=["unsafe", "safe"]))
    src, out = tmp_path / "r.jsonl", tmp_path / "p.jsonl"
    write_results(src, [result])
    runner = CliRunner()
    proc = runner.invoke(application(), ["export-pairs", str(src), str(out)])
    assert proc.exit_code == 0, proc.output
    assert len(out.read_text().splitlines()) == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    with pytest.raises(InputError, match="line 1 is not JSON"):
        export_pairs(bad, out)
    plain = tmp_path / "plain.jsonl"
    plain.write_text(json.dumps({"pipeline": "minimal", "response": "x", "steps": {}}) + "\n")
    with pytest.raises(InputError, match="no result has a refinement"):
        export_pairs(plain, out)
    with pytest.raises(InputError, match="no such file"):
        export_pairs(tmp_path / "missing.jsonl", out)


def test_cli_export_pairs_error_is_one_line(run_cli, tmp_path):
    proc = run_cli(["export-pairs", tmp_path / "none.jsonl", tmp_path / "o.jsonl"])
    assert proc.returncode == 2 and "no such file" in proc.stderr and "Traceback" not in proc.stderr


def test_shipped_csa_pipeline_refines_and_takes_refine_n(host):
    pipeline = load("csa", host)
    assert pipeline.spec.answer == "reply" and pipeline.steps["help"].params.source == "refined"
    assert pipeline.steps["refine"].params.schedule == ["both"] * 3
    set_refine_iterations(SimpleNamespace(pipeline=pipeline), 2)
    assert pipeline.steps["refine"].params.schedule == ["both", "both"]
