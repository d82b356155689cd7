"""Batched runs (`pearl.runtime.batch`, `pearl run --batch`): results as they finish, resumable, never torn.

The pipeline is the shipped `minimal` one; its LM is the `sglang` backend talking to
`SGLangTestDouble` (a loopback test double of SGLang's API, tests/sglang_double.py).
"""

from __future__ import annotations

import json

import pytest

from pearl.runtime.session import open_session
from pearl.runtime.batch import conversation_key, run_batch
from pearl.errors import InputError
from sglang_double import SGLangTestDouble


@pytest.fixture
def double(tmp_path):
    with SGLangTestDouble(tokenizer_path=str(tmp_path / "no-template")) as d:
        yield d


@pytest.fixture
def session(double, host):
    return open_session("minimal", backend="sglang", url=double.url, host=host,
                        options={"backoff": 0.01, "max_retries": 1, "batch_window_ms": 20})


def write_inputs(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def records(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_every_line_is_answered_once_and_tagged(tmp_path, session, double):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_inputs(inp, [json.dumps(f"question {i}") for i in range(5)] + [""]
                 + [json.dumps({"messages": [{"role": "user", "content": "last one"}]})])
    summary = run_batch(session, inp, out, concurrency=3, progress=False)
    assert (summary.total, summary.succeeded, summary.failed, summary.skipped) == (6, 6, 0, 0)
    recs = records(out)
    assert sorted(r["line"] for r in recs) == [1, 2, 3, 4, 5, 7]
    assert all(r["ok"] and r["result"]["response"] == "double" for r in recs)
    assert all(r["result"]["pipeline"] == "minimal" for r in recs)
    # concurrent pipelines were coalesced: fewer HTTP calls than LM calls
    lm_calls = sum(r["result"]["usage"]["calls"] for r in recs)
    assert lm_calls == 12
    assert len(double.posts("/generate")) + len(double.posts("/v1/chat/completions")) <= lm_calls


def test_a_crashed_item_is_recorded_and_the_batch_goes_on(tmp_path, session):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_inputs(inp, ['"fine"', "{not json", json.dumps({"messages": [{"role": "assistant", "content": "hi"}]})])
    summary = run_batch(session, inp, out, concurrency=2, progress=False)
    assert (summary.succeeded, summary.failed) == (1, 2)
    by_line = {r["line"]: r for r in records(out)}
    assert by_line[1]["ok"] is True
    assert by_line[2]["ok"] is False and "not valid JSON" in by_line[2]["error"] and by_line[2]["error_type"] == "InputError"
    assert "last message must be the user's" in by_line[3]["error"]


def test_rerun_skips_done_lines_retries_failed_ones_and_repairs_a_torn_line(tmp_path, session, double):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_inputs(inp, ['"zebra-question"', '"two"', '"three"'])
    done = {"line": 1, "key": conversation_key('"zebra-question"'), "ok": True,
            "result": {"response": "kept from the first run"}}
    failed = {"line": 2, "key": conversation_key('"two"'), "ok": False, "error": "backend down",
              "error_type": "BackendError"}
    out.write_text(json.dumps(done) + "\n" + json.dumps(failed) + "\n" + '{"line": 3, "ok": tr', encoding="utf-8")
    summary = run_batch(session, inp, out, concurrency=2, progress=False)
    assert (summary.skipped, summary.succeeded, summary.failed) == (1, 2, 0)
    recs = records(out)  # every line parses: the torn line is gone
    assert sorted(r["line"] for r in recs) == [1, 2, 3]
    assert recs[0] == done
    asked = [r for r in double.requests if r["method"] == "POST"]
    assert asked and not any("zebra-question" in json.dumps(r["body"]) for r in asked)


def test_server_down_mid_batch_records_errors_without_partial_lines(tmp_path, session, double):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_inputs(inp, ['"a"', '"b"'])
    double.fail(500, times=50)
    summary = run_batch(session, inp, out, concurrency=1, progress=False)
    assert summary.failed == 2
    for rec in records(out):
        assert rec["ok"] is False and "kept failing" in rec["error"]


def test_bad_arguments(tmp_path, session):
    with pytest.raises(InputError, match="does not exist"):
        run_batch(session, tmp_path / "nope.jsonl", tmp_path / "out.jsonl", progress=False)
    inp = tmp_path / "in.jsonl"
    write_inputs(inp, ['"x"'])
    with pytest.raises(InputError, match="at least 1"):
        run_batch(session, inp, tmp_path / "out.jsonl", concurrency=0, progress=False)
    with pytest.raises(InputError, match="must not be the input file"):
        run_batch(session, inp, inp, progress=False)
    with pytest.raises(InputError, match="is a folder"):
        run_batch(session, tmp_path, tmp_path / "out.jsonl", progress=False)
    write_inputs(inp, ["", "  "])
    with pytest.raises(InputError, match="holds no conversation"):
        run_batch(session, inp, tmp_path / "out.jsonl", progress=False)


def test_cli_batch_against_the_double(tmp_path, double, run_cli):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_inputs(inp, ['"first"', '"second"'])
    args = ["run", "--pipeline", "minimal", "--backend", "sglang", "--backend-url", double.url,
            "--batch", str(inp), "--out", str(out), "--concurrency", "2"]
    first = run_cli(args)
    assert first.returncode == 0, first.stderr
    assert "2 answered, 0 failed, 0 already done" in first.stderr
    assert sorted(r["line"] for r in records(out)) == [1, 2]
    again = run_cli(args)
    assert "0 answered, 0 failed, 2 already done" in again.stderr
    missing_out = run_cli(args[:-4])
    assert missing_out.returncode == 2 and "--batch needs --out" in missing_out.stderr
    other_run = run_cli(args[:2] + ["direct"] + args[3:])
    assert other_run.returncode == 2 and "Traceback" not in other_run.stderr
    assert "pipeline minimal; this run: pipeline direct" in " ".join(other_run.stderr.split())


def test_records_carry_their_run_and_another_run_may_not_resume_the_file(tmp_path, session, double, host):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_inputs(inp, ['"one"', '"two"'])
    run_batch(session, inp, out, concurrency=1, progress=False)
    run = records(out)[0]["run"]
    assert run == {"pipeline": "minimal", "set": [], "compiled": None, "model": session.runner.lms["task"].model}
    before = out.read_bytes()
    other = open_session("direct", backend="sglang", url=double.url, host=host, options={"backoff": 0.01})
    with pytest.raises(InputError, match=r"another run \(pipeline minimal; this run: pipeline direct\)"):
        run_batch(other, inp, out, progress=False)
    assert out.read_bytes() == before  # refused before anything was rewritten
    again = run_batch(session, inp, out, progress=False)  # the same run resumes: nothing left to do
    assert (again.skipped, again.succeeded) == (2, 0)


def test_a_record_from_before_runs_were_recorded_is_checked_on_its_pipeline(tmp_path, session):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_inputs(inp, ['"one"'])
    old = {"line": 1, "key": conversation_key('"one"'), "ok": True, "result": {"pipeline": "csa", "response": "x"}}
    out.write_text(json.dumps(old) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="pipeline csa; this run: pipeline minimal"):
        run_batch(session, inp, out, progress=False)


def test_an_out_file_that_is_not_a_batch_results_file_is_refused_and_kept(tmp_path, session):
    inp, out = tmp_path / "in.jsonl", tmp_path / "notes.txt"
    write_inputs(inp, ['"one"'])
    out.write_text("my notes\nline 2\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"notes.txt is not a `pearl run --batch` results file \(line 1"):
        run_batch(session, inp, out, progress=False)
    assert out.read_text(encoding="utf-8") == "my notes\nline 2\n"
    results = tmp_path / "eval.jsonl"  # JSON lines, but another command's records
    results.write_text('{"id": "q0", "status": "ok"}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"line 1 is not a batch record"):
        run_batch(session, inp, results, progress=False)
    assert results.read_text(encoding="utf-8") == '{"id": "q0", "status": "ok"}\n'


def test_a_later_record_of_another_run_is_found_behind_records_of_this_one(tmp_path, session):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_inputs(inp, ['"one"', '"two"'])
    run_batch(session, inp, out, concurrency=1, progress=False)
    first, second = records(out)
    second["run"] = {**second["run"], "model": "llamacpp/another"}
    out.write_text(json.dumps(first) + "\n" + json.dumps(second) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"another run \(model llamacpp/another; this run: model "):
        run_batch(session, inp, out, progress=False)
