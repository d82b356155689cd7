"""Regression tests for issue 15: hostile or careless inputs and faults.

Each section below is one numbered case of the issue. Every test is fast and
needs no model: the LMs are DummyLM-style doubles or in-process HTTP doubles.
A case ends either in correct behaviour or in a clear ``PearlError`` (exit
code 2 on the command line), never in a traceback, lost work or a leaked secret.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from pearl.errors import InputError, PearlError
from pearl.types import Conversation, Result, RunIdentity


class GatedSession:
    """A session double: answers at once, except prompts containing "slow", which wait for `gate`."""

    def __init__(self):
        self.gate = threading.Event()
        self.asked: list[str] = []
        self.pipeline = SimpleNamespace(name="gated")

    def identity(self) -> RunIdentity:
        return RunIdentity(pipeline="gated", model="double/gated")

    def run(self, conversation: Conversation) -> Result:
        text = conversation.last_user_message
        self.asked.append(text)
        if "slow" in text:
            self.gate.wait(30)
        if "fail" in text:
            raise RuntimeError("this line fails on purpose")
        return Result(pipeline="gated", response=f"answer to {text}")


@pytest.fixture
def gated():
    session = GatedSession()
    yield session
    session.gate.set()  # let abandoned workers finish


def write_lines(path: Path, prompts: list[str]) -> Path:
    path.write_text("".join(json.dumps(p) + "\n" for p in prompts), encoding="utf-8")
    return path


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]

class TinyServer:
    """A loopback HTTP server whose every answer comes from `reply(method, path, headers) -> (status, body)`.

    It keeps the headers of every request (`seen`); `reply` may sleep to play a hung server.
    """

    def __init__(self, reply):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        server = self
        self.seen: list[dict[str, str]] = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                server.seen.append(dict(self.headers))
                status, body = reply(self.command, self.path, dict(self.headers))
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (a timeout test)
                    pass

            do_GET = do_POST = _answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> "TinyServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def echo_authorization(method, path, headers):
    """A careless server: its 401 error body repeats the Authorization header it got."""
    return 401, {"error": {"message": f"invalid credentials: {headers.get('Authorization')}"}}


def openai_pipeline(tmp_path: Path, url: str, *, backend_lines: str = "") -> Path:
    path = tmp_path / "remote.toml"
    path.write_text(f"""
name = "remote"
answer = "response"

[backend]
name = "openai"
url = "{url}"
model = "m"
{backend_lines}

[steps.screen]
use = "screen"

[steps.respond]
use = "respond"
after = ["screen"]
""", encoding="utf-8")
    return path


# ---------------------------------------------------------------------------
# Case 1: no command writes over a file it is reading (export-pairs IN IN)
# ---------------------------------------------------------------------------


def _refined_results(tmp_path: Path, host) -> Path:
    """A results file of one `pearl run --json` result with a refinement (routed DummyLM doubles)."""
    from lingobp_doubles import DoublesPlugin, RoutedDummyLM, Script, pipeline_doc
    from pearl.runtime.pipeline import compile_spec
    from pearl.runtime.runner import Runner

    host.register(DoublesPlugin(), name="tests.lingobp")
    pipeline = compile_spec(pipeline_doc(schedule=["both"]), host)
    script = Script(sat=[0, 1], safety=["unsafe", "safe"])
    result = Runner(pipeline, {"task": RoutedDummyLM(script)}, host).run(
        Conversation.from_text("How do I open my own front door without the key?"))
    path = tmp_path / "r.jsonl"
    path.write_text(result.model_dump_json() + "\n", encoding="utf-8")
    return path


def test_case1_export_pairs_never_writes_over_its_input(tmp_path, host, run_cli):
    results = _refined_results(tmp_path, host)
    before = results.read_bytes()
    proc = run_cli(["export-pairs", str(results), str(results)], env={"COLUMNS": "400"})
    assert proc.returncode == 2 and "is the input file" in proc.stderr, proc.stderr
    link = tmp_path / "link.jsonl"
    link.symlink_to(results)
    assert run_cli(["export-pairs", str(results), str(link)]).returncode == 2  # a link to the input is the input
    hard = tmp_path / "hard.jsonl"
    os.link(results, hard)
    assert run_cli(["export-pairs", str(hard), str(results)]).returncode == 2
    assert results.read_bytes() == before
    folder = tmp_path / "pairs"
    folder.mkdir()
    proc = run_cli(["export-pairs", str(results), str(folder)], env={"COLUMNS": "400"})
    assert proc.returncode == 2 and "is a folder" in proc.stderr and "Traceback" not in proc.stderr
    assert list(folder.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == [
        "hard.jsonl", "link.jsonl", "pairs", "r.jsonl"]  # no stray temporary file
    assert run_cli(["export-pairs", str(results), str(tmp_path / "pairs.jsonl")]).returncode == 0


def test_case1_batch_out_may_not_be_a_link_to_its_input(tmp_path, gated):
    from pearl.runtime.batch import run_batch

    inp = write_lines(tmp_path / "in.jsonl", ["alpha"])
    before = inp.read_bytes()
    os.link(inp, tmp_path / "hard.jsonl")
    (tmp_path / "soft.jsonl").symlink_to(inp)
    for out in ("hard.jsonl", "soft.jsonl"):
        with pytest.raises(InputError, match="must not be the input file"):
            run_batch(gated, inp, tmp_path / out, progress=False)
    assert inp.read_bytes() == before and gated.asked == []


def test_case1_eval_and_report_never_write_over_their_inputs(tmp_path, run_cli):
    data = write_lines(tmp_path / "items.jsonl", ["one", "two"])
    before = data.read_bytes()
    proc = run_cli(["eval", f"jsonl:{data}", "--out", str(data)], env={"COLUMNS": "400"})
    assert proc.returncode == 2 and "is the input file" in proc.stderr, proc.stderr
    assert data.read_bytes() == before
    report = tmp_path / "rep"
    report.mkdir()
    (report / "report.md").write_text("{}\n", encoding="utf-8")
    proc = run_cli(["report", str(report / "report.md"), "--out", str(report)], env={"COLUMNS": "400"})
    assert proc.returncode == 2 and "is the input file" in proc.stderr, proc.stderr
    assert (report / "report.md").read_text(encoding="utf-8") == "{}\n"


# ---------------------------------------------------------------------------
# Case 2: Ctrl-C keeps finished work (pearl run --batch, pearl eval)
# ---------------------------------------------------------------------------


def test_case2_first_ctrl_c_stops_scheduling_and_writes_what_is_running(tmp_path, gated):
    from pearl.runtime.batch import run_batch

    before = signal.getsignal(signal.SIGINT)  # default, or SIG_IGN when the suite runs as a background job
    inp = write_lines(tmp_path / "in.jsonl", ["fast 1", "slow 2", "later 3", "later 4", "later 5"])
    out = tmp_path / "out.jsonl"
    told: list[int] = []

    def on_record(record):
        if record["line"] == 1:
            signal.raise_signal(signal.SIGINT)  # the first Ctrl-C, while "slow 2" is running
            threading.Timer(0.3, gated.gate.set).start()

    summary = run_batch(gated, inp, out, concurrency=2, progress=False, on_record=on_record,
                        on_interrupt=told.append)
    assert told == [1]  # one conversation was still running, and it was waited for
    assert summary.interrupted and summary.not_started == 3 and summary.succeeded == 2
    assert sorted(r["line"] for r in jsonl(out)) == [1, 2]  # the in-flight one was written, not dropped
    assert not any(text.startswith("later") for text in gated.asked)
    assert signal.getsignal(signal.SIGINT) is before  # the handler in place before the run is back


def test_case2_second_ctrl_c_stops_at_once_and_the_file_stays_valid(tmp_path, gated):
    from pearl.runtime.batch import run_batch
    from pearl.runtime.drain import abandoned_work

    inp = write_lines(tmp_path / "in.jsonl", ["fast 1", "slow 2", "slow 3", "later 4"])
    out = tmp_path / "out.jsonl"
    first = lambda record: signal.raise_signal(signal.SIGINT)
    second = lambda running: signal.raise_signal(signal.SIGINT)
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        run_batch(gated, inp, out, concurrency=3, progress=False, on_record=first, on_interrupt=second)
    assert time.perf_counter() - t0 < 10  # the gated conversations (30 s) were not awaited
    assert abandoned_work()
    assert [r["line"] for r in jsonl(out)] == [1]
    gated.gate.set()
    deadline = time.time() + 10
    while abandoned_work() and time.time() < deadline:
        time.sleep(0.05)
    assert not abandoned_work()


def test_case2_eval_first_ctrl_c_writes_the_items_in_flight(tmp_path, gated):
    from pearl.evaluation.evaluate import evaluate
    from pearl.host.dataset import Item
    from pearl.io.jsonl import JsonlAppender

    items = [Item(id=f"q{i}", conversation=Conversation.from_text(text), labels={})
             for i, text in enumerate(["fast", "slow", "later", "later"])]

    def evaluator(item):
        return {"id": item.id, "response": gated.run(item.conversation).response}

    def on_done(record):
        if record["id"] == "q0":
            signal.raise_signal(signal.SIGINT)
            threading.Timer(0.3, gated.gate.set).start()

    out = tmp_path / "r.jsonl"
    with JsonlAppender(out) as writer:
        written = evaluate(items, evaluator, writer, concurrency=2, on_done=on_done)
    assert written == 2 and [r["id"] for r in jsonl(out)] == ["q0", "q1"]
    assert "later" not in gated.asked


def test_case2_cli_first_ctrl_c_drains_second_exits_at_once(tmp_path):
    from eval_doubles import write_pipeline

    inp = write_lines(tmp_path / "in.jsonl", ["one", "two", "three"])
    out = tmp_path / "out.jsonl"
    doubles = Path(__file__).with_name("eval_doubles.py")
    proc = subprocess.Popen(
        [sys.executable, str(doubles), "run", "--pipeline", str(write_pipeline(tmp_path)), "--batch", str(inp),
         "--out", str(out), "--concurrency", "1"],
        env={**os.environ, "PEARL_PLUGINS": "", "PEARL_TEST_DELAY": "3", "COLUMNS": "400"}, stderr=subprocess.PIPE, text=True,
        stdout=subprocess.DEVNULL, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 60
        while not (out.exists() and out.read_text().count("\n") >= 1):  # the loop is running
            assert proc.poll() is None and time.time() < deadline, "the batch ended early"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        seen = ""
        while "press Ctrl-C again" not in seen:
            line = proc.stderr.readline()
            assert line, f"no word about draining: {seen}"
            seen += line
        t0 = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert time.perf_counter() - t0 < 1.8, "the second Ctrl-C waited for the running conversation"
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert [r["line"] for r in jsonl(out)] == [1]  # whole records only


# ---------------------------------------------------------------------------
# Case 3: batch resume keyed by a content hash; --out from another input refused
# ---------------------------------------------------------------------------


def test_case3_resume_is_keyed_by_content_not_line_number(tmp_path, gated):
    from pearl.runtime.batch import run_batch

    out = tmp_path / "out.jsonl"
    run_batch(gated, write_lines(tmp_path / "in.jsonl", ["alpha", "beta"]), out, concurrency=1, progress=False)
    gated.asked.clear()
    # a line inserted on top and the old ones moved down: only the new conversation runs
    grown = write_lines(tmp_path / "in.jsonl", ["gamma", "beta", "alpha", "alpha"])
    summary = run_batch(gated, grown, out, concurrency=1, progress=False)
    assert (summary.skipped, summary.succeeded) == (2, 2)
    assert gated.asked == ["gamma", "alpha"]  # the second "alpha" is a conversation of its own
    assert len(jsonl(out)) == 4 and len({r["key"] for r in jsonl(out)}) == 3


def test_case3_an_out_written_from_another_input_is_refused_and_kept(tmp_path, gated):
    from pearl.runtime.batch import run_batch

    out = tmp_path / "out.jsonl"
    run_batch(gated, write_lines(tmp_path / "a.jsonl", ["alpha", "beta"]), out, concurrency=1, progress=False)
    before = out.read_bytes()
    gated.asked.clear()
    with pytest.raises(InputError, match=r"holds 2 result\(s\) of conversations that are not in .*b\.jsonl.*"
                                         r"choose another --out"):
        run_batch(gated, write_lines(tmp_path / "b.jsonl", ["gamma", "delta"]), out, concurrency=1, progress=False)
    edited = write_lines(tmp_path / "a.jsonl", ["alpha", "beta, edited"])
    with pytest.raises(InputError, match=r"holds 1 result\(s\).*line\(s\) 2"):
        run_batch(gated, edited, out, concurrency=1, progress=False)
    assert out.read_bytes() == before and gated.asked == []
    # a file from before content keys (keyed by line number only) is refused too
    old = tmp_path / "old.jsonl"
    old.write_text(json.dumps({"line": 1, "ok": True, "result": {"response": "x"}}) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="older version"):
        run_batch(gated, tmp_path / "a.jsonl", old, concurrency=1, progress=False)


# ---------------------------------------------------------------------------
# Case 4: --batch exits non-zero when lines failed
# ---------------------------------------------------------------------------

@pytest.fixture
def doubles_host(host):
    from eval_doubles import EvalDoublesPlugin

    host.register(EvalDoublesPlugin(), name="tests.eval_doubles")
    return host


def test_case4_batch_exits_non_zero_and_says_how_many_failed(tmp_path, doubles_host, run_cli):
    from eval_doubles import write_pipeline

    inp = write_lines(tmp_path / "in.jsonl", ["fine", "CRASH here", "fine too", "CRASH again"])
    out = tmp_path / "out.jsonl"
    args = ["run", "--pipeline", str(write_pipeline(tmp_path)), "--batch", str(inp), "--out", str(out)]
    proc = run_cli(args, env={"COLUMNS": "400"})
    assert proc.returncode == 1, proc.stderr
    assert "2 of 4 conversation(s) failed" in proc.stderr and str(out) in proc.stderr
    assert sorted(r["ok"] for r in jsonl(out)) == [False, False, True, True]
    good = write_lines(tmp_path / "good.jsonl", ["fine", "fine too"])
    assert run_cli([*args[:3], "--batch", str(good), "--out", str(tmp_path / "good-out.jsonl")]).returncode == 0

# ---------------------------------------------------------------------------
# Case 5: api_key_env may name only documented key variables
# ---------------------------------------------------------------------------


SECRET = "AKIAhostile-secret-0123456789"


def test_case5_a_pipeline_file_cannot_choose_which_secret_is_sent(tmp_path, host, run_cli):
    with TinyServer(echo_authorization) as server:
        for table in ('[backend.options]\napi_key_env = "AWS_SECRET_ACCESS_KEY"',
                      'api_key_env = "AWS_SECRET_ACCESS_KEY"'):
            pipeline = openai_pipeline(tmp_path, server.url, backend_lines=table)
            proc = run_cli(["run", "--pipeline", str(pipeline), "hi"],
                           env={"AWS_SECRET_ACCESS_KEY": SECRET, "PEARL_API_KEY": None, "OPENAI_API_KEY": None,
                                "COLUMNS": "400"})
            assert proc.returncode == 2, proc.stderr
            assert "may name only PEARL_API_KEY or OPENAI_API_KEY" in proc.stderr
            assert "--api-key-env AWS_SECRET_ACCESS_KEY" in proc.stderr and SECRET not in proc.stderr
        assert server.seen == []  # nothing was sent anywhere


def test_case5_the_command_line_may_name_the_key_variable(tmp_path, host, run_cli):
    from pearl.host import backend

    try:
        with TinyServer(echo_authorization) as server:
            pipeline = openai_pipeline(tmp_path, server.url)
            proc = run_cli(["run", "--pipeline", str(pipeline), "--api-key-env", "MY_SERVICE_CRED", "hi"],
                           env={"MY_SERVICE_CRED": "cred-from-the-user-123", "PEARL_API_KEY": None,
                                "OPENAI_API_KEY": None})
            assert server.seen and server.seen[0]["Authorization"] == "Bearer cred-from-the-user-123"
            assert proc.returncode == 2 and "cred-from-the-user-123" not in proc.stderr  # the echo is masked
    finally:
        backend._allowed_key_variables.discard("MY_SERVICE_CRED")


# ---------------------------------------------------------------------------
# Case 6: LM settings in compiled state are dropped
# ---------------------------------------------------------------------------


def _compiled_screen(host, folder: Path) -> Path:
    """A compiled folder for the minimal pipeline's `screen` step, written as `pearl optimize` does."""
    from pearl.runtime.compiled import (CompiledManifest, CompiledStep, ProgramStamp, save_program,
                                        signature_fingerprint, write_manifest)
    from pearl.runtime.pipeline import load

    program = load("minimal", host).steps["screen"].program
    fingerprint = signature_fingerprint(program)
    save_program(program, folder / "screen.json", ProgramStamp(step="screen", use="screen", fingerprint=fingerprint))
    write_manifest(folder, CompiledManifest(pipeline="minimal", steps={"screen": CompiledStep(
        step="screen", use="screen", file="screen.json", fingerprint=fingerprint, optimizer="bootstrap",
        metric="match")}))
    return folder


def test_case6_lm_settings_in_compiled_state_are_dropped(tmp_path, host):
    import dspy
    from dspy.utils import DummyLM

    from pearl.runtime.compiled import apply_compiled
    from pearl.runtime.pipeline import load
    from pearl.runtime.runner import Runner

    with TinyServer(echo_authorization) as elsewhere:
        folder = _compiled_screen(host, tmp_path / "compiled")
        state = json.loads((folder / "screen.json").read_text(encoding="utf-8"))
        own = state if "signature" in state else next(v for v in state.values() if isinstance(v, dict) and "signature" in v)
        assert own.get("lm") is None  # pearl optimize writes no LM settings
        own["lm"] = {"model": "openai/gpt-4o-mini", "api_base": elsewhere.url, "base_url": elsewhere.url,
                     "model_type": "chat", "temperature": 0.0, "max_tokens": 100, "cache": False}
        (folder / "screen.json").write_text(json.dumps(state), encoding="utf-8")

        pipeline = load("minimal", host)
        assert apply_compiled(pipeline, folder) == ["screen"]
        assert all(p.lm is None for _, p in pipeline.steps["screen"].program.named_predictors())
        answer = {"topic": "bread", "user_need": "a recipe", "risk": "none", "caution": "", "response": "Knead it."}
        result = Runner(pipeline, {"task": DummyLM([answer] * 4, adapter=dspy.JSONAdapter())}, host).run(
            Conversation.from_text("how do I bake bread"))
        assert result.response == "Knead it."
        assert elsewhere.seen == []  # the step ran on the session's LM, not on the provider the file named


# ---------------------------------------------------------------------------
# Case 7: secrets and URL credentials are redacted from errors and spans
# ---------------------------------------------------------------------------


def test_case7_an_echoed_key_is_masked_in_the_error_and_the_trace(tmp_path, host, run_cli):
    from pearl.traces.jsonl import read_spans

    trace = tmp_path / "t.jsonl"
    with TinyServer(echo_authorization) as server:
        pipeline = openai_pipeline(tmp_path, server.url)
        proc = run_cli(["run", "--pipeline", str(pipeline), "--trace", f"jsonl:{trace}", "hi"],
                       env={"PEARL_API_KEY": SECRET, "COLUMNS": "400"})
    assert server.seen[0]["Authorization"] == f"Bearer {SECRET}"  # it was sent, and echoed back
    assert proc.returncode == 2 and "invalid credentials: Bearer ***" in proc.stderr
    assert SECRET not in proc.stderr + proc.stdout
    text = trace.read_text(encoding="utf-8")
    assert SECRET not in text
    failed = [s for s in read_spans(trace) if s.status.code == "ERROR"]
    assert failed and all("***" in s.status.description for s in failed if "credentials" in s.status.description)
    events = [e for s in failed for e in s.events if e.name == "exception"]
    assert events and all("exception.stacktrace" in e.attributes for e in events)
    assert any("Bearer ***" in e.attributes["exception.stacktrace"] for e in events)


def test_case7_url_credentials_are_masked_in_errors_and_logs(tmp_path, caplog):
    import logging

    from pearl.errors import BackendError
    from pearl.redact import install_log_redaction, redact

    err = BackendError("no server at http://admin:hunter2-pass@127.0.0.1:9/v1 (ConnectError)")
    assert str(err) == "no server at http://***@127.0.0.1:9/v1 (ConnectError)"
    assert redact("https://tok3n-only@example.org/x and Bearer dXNlcjpwYXNz") == \
        "https://***@example.org/x and Bearer ***"
    assert redact("the token limit; a bearer token") == "the token limit; a bearer token"  # prose stays
    install_log_redaction()
    with caplog.at_level(logging.INFO):
        logging.getLogger("httpx").info("HTTP Request: POST %s", "http://u:p4ssword-x@h/v1/chat")
    assert caplog.records[-1].getMessage() == "HTTP Request: POST http://***@h/v1/chat"


# ---------------------------------------------------------------------------
# Case 8: compiled manifest paths stay inside the folder
# ---------------------------------------------------------------------------


def test_case8_manifest_paths_must_stay_inside_the_folder(tmp_path, host, run_cli):
    from pearl.runtime.compiled import read_manifest, write_manifest

    outside = tmp_path / "private.json"
    outside.write_text(json.dumps({"db_password": "x", "signature": {}}), encoding="utf-8")
    folder = _compiled_screen(host, tmp_path / "compiled")
    (folder / "link.json").symlink_to(outside)
    for escape in (str(outside), "../private.json", "link.json", "."):
        manifest = read_manifest(folder)
        manifest.steps["screen"].file = escape
        write_manifest(folder, manifest)
        proc = run_cli(["run", "--compiled", str(folder), "hi"], env={"COLUMNS": "400"})
        assert proc.returncode == 2, proc.stderr
        assert "is not inside the compiled folder" in proc.stderr and "db_password" not in proc.stderr, proc.stderr


# ---------------------------------------------------------------------------
# Case 9: invalid UTF-8 in every reader (helper G)
# ---------------------------------------------------------------------------

NOT_UTF8 = b"caf\xe9 \xff"  # Latin-1, as a careless export leaves it


def one_clean_line(proc, fragment: str = "not valid UTF-8") -> None:
    """Exit code 2 and one `error:` line naming the problem, no traceback."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and fragment in proc.stderr, proc.stderr
    assert len([line for line in proc.stderr.splitlines() if line.startswith("error:")]) == 1, proc.stderr


def test_case9_conversation_file_stdin_and_pipeline_toml_that_are_not_utf8(tmp_path, doubles_host, run_cli):
    from eval_doubles import write_pipeline

    pipeline = str(write_pipeline(tmp_path))
    wide = {"COLUMNS": "400"}
    conversation = tmp_path / "c.json"
    conversation.write_bytes(b'{"prompt": "' + NOT_UTF8 + b'"}')
    proc = run_cli(["run", "--pipeline", pipeline, "--file", str(conversation)], env=wide)
    one_clean_line(proc, f"{conversation}: not valid UTF-8 (byte 0xe9 at byte 16)")
    for args in (["-"], ["--file", "-"]):  # stdin: refused before any model call, not a misleading model error
        proc = run_cli(["run", "--pipeline", pipeline, *args], env=wide, stdin=b'{"prompt": "' + NOT_UTF8 + b'"}')
        one_clean_line(proc, "stdin: not valid UTF-8")
    assert run_cli(["run", "--pipeline", pipeline, "-"], stdin="caf\u00e9".encode()).returncode == 0  # UTF-8 is fine
    toml = tmp_path / "p.toml"
    toml.write_bytes(Path(pipeline).read_bytes().replace(b"no model", NOT_UTF8))
    one_clean_line(run_cli(["run", "--pipeline", str(toml), "hi"], env=wide), f"{toml}: not valid UTF-8")


def test_case9_one_bad_batch_line_fails_that_line_only(tmp_path, doubles_host, run_cli):
    from eval_doubles import write_pipeline

    inp = tmp_path / "in.jsonl"
    inp.write_bytes(b'"first"\n{"prompt": "' + NOT_UTF8 + b'"}\n"third"\n')
    out = tmp_path / "out.jsonl"
    proc = run_cli(["run", "--pipeline", str(write_pipeline(tmp_path)), "--batch", str(inp), "--out", str(out)],
                   env={"COLUMNS": "400"})
    assert proc.returncode == 1 and "1 of 3 conversation(s) failed" in proc.stderr, proc.stderr
    records = {r["line"]: r for r in jsonl(out)}
    assert records[1]["ok"] and records[3]["ok"]
    assert not records[2]["ok"] and "in.jsonl:2: not valid UTF-8 (byte 0xe9" in records[2]["error"]


def test_case9_batch_output_with_a_line_that_is_not_utf8(tmp_path, doubles_host, run_cli):
    from eval_doubles import write_pipeline

    inp = write_lines(tmp_path / "in.jsonl", ["first", "second"])
    out = tmp_path / "out.jsonl"
    args = ["run", "--pipeline", str(write_pipeline(tmp_path)), "--batch", str(inp), "--out", str(out)]
    assert run_cli(args).returncode == 0
    answered = out.read_bytes()
    out.write_bytes(answered + NOT_UTF8 + b"\n")  # a line damaged after the run
    proc = run_cli(args)
    assert proc.returncode == 0 and "2 already done" in proc.stderr, proc.stderr
    assert out.read_bytes() == answered  # the damaged line is dropped, the answers kept


def test_case9_report_export_pairs_traces_and_eval_resume_that_are_not_utf8(tmp_path, doubles_host, run_cli):
    from eval_doubles import write_pipeline

    wide = {"COLUMNS": "400"}
    data = write_lines(tmp_path / "items.jsonl", ["one", "two"])
    results = tmp_path / "r.jsonl"
    args = ["eval", f"jsonl:{data}", "--pipeline", str(write_pipeline(tmp_path)), "--judges", "refusal",
            "--taxonomy", "none", "--no-progress", "--out", str(results)]
    assert run_cli(args).returncode == 0
    good = results.read_bytes().splitlines(keepends=True)
    results.write_bytes(good[0] + NOT_UTF8 + b"\n" + good[1])
    # eval's resume file: an unreadable line in the middle is named, the file is left as it is
    damaged = results.read_bytes()
    one_clean_line(run_cli(args, env=wide), "line 2 is not a result record")
    assert results.read_bytes() == damaged
    # report reads what is readable and counts the rest
    proc = run_cli(["report", str(results), "--out", str(tmp_path / "rep"), "--bootstrap", "100"], env=wide)
    assert proc.returncode == 0, proc.stderr
    assert "+1 unreadable lines" in (tmp_path / "rep" / "report.md").read_text(encoding="utf-8")
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_bytes(NOT_UTF8 + b"\n")
    one_clean_line(run_cli(["report", str(garbage), "--out", str(tmp_path / "rep2")], env=wide),
                   "none of its 1 line(s) is a result record")
    # export-pairs and the trace viewer name the file and line
    one_clean_line(run_cli(["export-pairs", str(garbage), str(tmp_path / "pairs.jsonl")], env=wide),
                   f"{garbage}:1: not valid UTF-8")
    for command in ("show", "summary"):
        one_clean_line(run_cli(["trace", command, str(garbage)], env=wide), "line 1 is not valid UTF-8")


# ---------------------------------------------------------------------------
# Case 10: --out a folder, malformed --backend-url, export-pairs IN DIR (helper G)
# ---------------------------------------------------------------------------

def test_case10_out_a_folder_and_malformed_backend_urls(tmp_path, doubles_host, run_cli):
    from eval_doubles import write_pipeline

    wide = {"COLUMNS": "400"}
    pipeline = str(write_pipeline(tmp_path))
    inp = write_lines(tmp_path / "in.jsonl", ["first"])
    folder = tmp_path / "results"
    folder.mkdir()
    one_clean_line(run_cli(["run", "--pipeline", pipeline, "--batch", str(inp), "--out", str(folder)], env=wide),
                   f"{folder}: is a folder")
    one_clean_line(run_cli(["eval", f"jsonl:{inp}", "--pipeline", pipeline, "--out", str(folder), "--no-progress"],
                           env=wide), f"{folder} is a folder")
    assert list(folder.iterdir()) == []
    for url, why in (("http://[::1", "Invalid IPv6 URL"), ("http://127.0.0.1:99999", "Port out of range"),
                     ("localhost:8000", "not an http(s) URL")):
        for args in (["run", "--backend", "openai", "--backend-url", url, "hi"],
                     ["backend", "check", "--backend", "sglang", "--backend-url", url]):
            one_clean_line(run_cli(args, env=wide), f"'{url}' is not")
            assert why in run_cli(args, env=wide).stderr
    one_clean_line(run_cli(["run", "--backend", "openai", "hi"], env={**wide, "PEARL_BACKEND_URL": "http://[::1"}),
                   "Invalid IPv6 URL")
    # export-pairs IN DIR: see test_case1_export_pairs_never_writes_over_its_input (no stray temporary file)


# ---------------------------------------------------------------------------
# Case 11: plugins that raise (helper G)
# ---------------------------------------------------------------------------

def _register_hook_plugin(body):
    from pearl.host.hookspecs import hookimpl

    class Plugin:
        @hookimpl
        def register_steps(self, register):
            body(register)

    return Plugin()


def _raise(exc):
    raise exc


@pytest.mark.parametrize("body, fragment", [
    (lambda register: _raise(RuntimeError("boom")), "failed in hook register_steps: RuntimeError: boom"),
    (lambda register: _raise(SystemExit(0)), "failed in hook register_steps: SystemExit: 0"),
    (lambda register: register("a", object, "extra"), "called register() with 3 arguments in hook register_steps"),
    (lambda register: register(name="a", step=object), "failed in hook register_steps: TypeError"),
    (lambda register: register("a", 42), "registered step 'a' in hook register_steps as an object of type int"),
    (lambda register: register("a", dict), "as the class dict, not a subclass of pearl.host.step.Step"),
], ids=["raises", "exits", "three-arguments", "keywords", "not-a-class", "not-a-step"])
def test_case11_a_failing_register_hook_names_the_plugin_and_the_hook(host, run_cli, body, fragment):
    host.register(_register_hook_plugin(body), name="tests.careless")
    proc = run_cli(["run", "hi"], env={"COLUMNS": "400"})
    one_clean_line(proc, "plugin 'tests.careless'")
    assert fragment in proc.stderr


def test_case11_a_raising_observer_is_named_and_the_run_goes_on(tmp_path, doubles_host, run_cli):
    from eval_doubles import write_pipeline
    from pearl.host.hookspecs import hookimpl
    from pearl.host.manager import PluginWarning

    class Observer:
        @hookimpl
        def step_finished(self, run_id, step_id, use, output, seconds, error):
            raise SystemExit("observers must not end the program")

    doubles_host.register(Observer(), name="tests.observer")
    with pytest.warns(PluginWarning, match="observer plugin 'tests.observer' raised in hook step_finished"):
        proc = run_cli(["run", "--pipeline", str(write_pipeline(tmp_path)), "--json", "hi"])
    assert proc.returncode == 0 and json.loads(proc.stdout)["response"], proc.stderr


def test_case11_systemexit_at_import_is_an_error_not_a_quiet_exit(tmp_path, host, run_cli, monkeypatch):
    from importlib.metadata import EntryPoint

    from pearl.host.manager import Host, reset_host

    (tmp_path / "exits_at_import.py").write_text("import sys\nsys.exit(0)\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    found = Host._entry_points()
    monkeypatch.setattr(Host, "_entry_points", staticmethod(lambda: (
        found[0], [*found[1], EntryPoint(name="exits", value="exits_at_import", group="pearl")])))
    reset_host(None)  # `pearl run` builds the process-wide host, loading the plugin
    proc = run_cli(["run", "hi"], env={"COLUMNS": "400", "PEARL_PLUGINS": "exits"})
    one_clean_line(proc, "plugin 'exits' (exits_at_import) failed to load: SystemExit: 0")


def test_case11_a_misspelled_hook_is_a_warning_with_the_right_name(host):
    from pearl.host.hookspecs import hookimpl
    from pearl.host.manager import PluginWarning

    class Typo:
        @hookimpl
        def register_step(self, register):
            pass

    with pytest.warns(PluginWarning, match="'register_step', which is not a Pearlpoint hook.*'register_steps'"):
        host.register(Typo(), name="tests.typo")


# ---------------------------------------------------------------------------
# Case 12: numeric options are validated (helper G)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("option, value, fragment", [
    ("--max-tokens", "-5", "max_tokens: must be a whole number of at least 1 (got -5)"),
    ("--max-tokens", "0", "max_tokens: must be a whole number of at least 1 (got 0)"),
    ("--temperature", "nan", "temperature: must be a finite number of at least 0 (got nan)"),
    ("--temperature", "-3", "temperature: must be a finite number of at least 0 (got -3.0)"),
    ("--temperature", "inf", "(got inf)"),
    ("--seed", "-1", "seed: must be a whole number from 0 to 4294967295 (got -1)"),
    ("--seed", str(2**40), "seed: must be a whole number from 0"),
    ("--n-ctx", "0", "n_ctx: must be a whole number of at least 1"),
    ("--threads", "-2", "threads: must be at least 1 (got -2)"),
    ("--concurrency", "0", "--concurrency 0: give at least 1"),
])
def test_case12_run_refuses_bad_numbers_before_any_model_loads(tmp_path, doubles_host, run_cli, option, value,
                                                                fragment):
    from eval_doubles import write_pipeline

    pipeline = str(write_pipeline(tmp_path))
    proc = run_cli(["run", "--pipeline", pipeline, option, value, "hi"], env={"COLUMNS": "400"})
    one_clean_line(proc, fragment)


def test_case12_other_commands_and_pipeline_files_refuse_bad_numbers(tmp_path, doubles_host, run_cli):
    from eval_doubles import PIPELINE_TOML

    wide = {"COLUMNS": "400"}
    pipeline = tmp_path / "p.toml"
    pipeline.write_text(PIPELINE_TOML.replace('name = "test-dummy"', 'name = "test-dummy"\ntemperature = nan'),
                        encoding="utf-8")
    one_clean_line(run_cli(["run", "--pipeline", str(pipeline), "hi"], env=wide),
                   "backend.temperature: must be a finite number of at least 0 (got nan)")
    results = tmp_path / "r.jsonl"
    one_clean_line(run_cli(["report", str(results), "--seed", "-1"], env=wide), "--seed -1: give a whole number")
    one_clean_line(run_cli(["report", str(results), "--bootstrap", str(10**9)], env=wide), "at most 100000")
    one_clean_line(run_cli(["eval-judge", "refusal-rules", "--labels", "jsonl:nowhere.jsonl", "--bootstrap",
                            str(10**9)], env=wide), "at most 100000")  # before the labels are read
    data = write_lines(tmp_path / "items.jsonl", ["one"])
    one_clean_line(run_cli(["eval", f"jsonl:{data}", "--out", str(results), "--max-tokens", "-1"], env=wide),
                   "max_tokens: must be a whole number of at least 1")
    one_clean_line(run_cli(["eval", f"jsonl:{data}", "--out", str(results), "--limit", "0"], env=wide),
                   "--limit 0: give a positive number")
    for option, value in (("--beta", "nan"), ("--max-demos", "-1"), ("--num-candidates", "0"),
                          ("--num-trials", "0"), ("--threshold", "nan"), ("--seed", "-1")):
        one_clean_line(run_cli(["optimize", "--pipeline", "minimal", "--step", "screen", "--trainset", str(data),
                                "--optimizer", "mipro", option, value], env=wide), f"{option} ")
    for option, value in (("--port", "70000"), ("--port", "-1"), ("--timeout", "nan"), ("--timeout", "-1.0")):
        one_clean_line(run_cli(["backend", "launch", "llamacpp", option, value], env=wide), f"{option} {value}: give")


# ---------------------------------------------------------------------------
# Case 13: bounded workbook expansion, bounded error messages, short cycle error
# ---------------------------------------------------------------------------


def _workbook_bomb(path: Path, megabytes: int) -> Path:
    """A small .xlsx whose shared-strings part declares `megabytes` MB of one repeated letter."""
    import zipfile

    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["tier", "name en"])
    book.create_sheet("table").append(["tier", "name en"])
    plain = path.with_suffix(".plain.xlsx")
    book.save(plain)
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if item.filename != "xl/sharedStrings.xml":
                dst.writestr(item, src.read(item.filename))
        with dst.open("xl/sharedStrings.xml", "w") as part:
            part.write(b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><si><t>')
            chunk = b"A" * 2**20
            for _ in range(megabytes):
                part.write(chunk)
            part.write(b"</t></si></sst>")
    plain.unlink()
    return path


def test_case13_a_workbook_bomb_is_refused_before_it_is_inflated(tmp_path):
    from pearl.errors import DatasetError
    from pearl.io.workbooks import MAX_WORKBOOK_BYTES
    from pearl.plugins.strata_sword import read_file
    from pearl.plugins.taxonomy_xlsx import TaxonomyFileError, load_xlsx

    bomb = _workbook_bomb(tmp_path / "strata_sword_en_level_1.xlsx", MAX_WORKBOOK_BYTES // 2**20 + 8)
    assert bomb.stat().st_size < 1_000_000
    t0 = time.perf_counter()
    with pytest.raises(TaxonomyFileError, match=r"unpacks to 72 MB .*over the 64 MB limit") as taxonomy_error:
        load_xlsx(bomb)
    with pytest.raises(DatasetError, match="over the 64 MB limit"):
        list(read_file(bomb, {}))
    assert time.perf_counter() - t0 < 5
    assert len(str(taxonomy_error.value)) < 400


def test_case13_every_error_message_is_bounded():
    from pearl.errors import StepError
    from pearl.redact import MAX_MESSAGE_CHARS

    huge = InputError("cell: " + "x" * 5_000_000)
    assert len(str(huge)) < MAX_MESSAGE_CHARS + 100 and str(huge).endswith("more characters not shown)")
    assert len(str(StepError("respond", "y" * 100_000))) < MAX_MESSAGE_CHARS + 100


def test_case13_a_cycle_error_shows_the_cycle_not_the_graph(host):
    from pearl.errors import PipelineError
    from pearl.runtime.pipeline import compile_spec

    n = 1000
    steps = {f"s{i}": {"use": "test-echo", "after": [f"s{(i - 1) % n}"]} for i in range(n)}
    steps["extra"] = {"use": "test-echo"}
    with pytest.raises(PipelineError) as caught:
        compile_spec({"name": "loop", "answer": "echo", "steps": steps}, host, source="loop.toml")
    message = str(caught.value)
    assert len(message) < 400, message
    assert "1000 steps form a cycle" in message and "… 992 more …" in message and "extra" not in message
    assert "from the `after` of step" in message


# ---------------------------------------------------------------------------
# Case 14: --timeout
# ---------------------------------------------------------------------------


def test_case14_timeout_on_the_command_line_detects_a_hung_server(tmp_path, host, run_cli):
    release = threading.Event()

    def hang(method, path, headers):
        release.wait(20)
        return 200, {}

    with TinyServer(hang) as server:
        pipeline = openai_pipeline(tmp_path, server.url)
        t0 = time.perf_counter()
        proc = run_cli(["run", "--pipeline", str(pipeline), "--timeout", "0.5", "hi"], env={"COLUMNS": "400"})
        seconds = time.perf_counter() - t0
        release.set()
    assert proc.returncode == 2, proc.stderr
    assert "did not answer POST chat/completions within 0.5 s" in proc.stderr and "--timeout SECONDS" in proc.stderr
    assert seconds < 10
    for bad in ("0", "-3", "nan", "inf"):
        bad_run = run_cli(["run", "--pipeline", str(pipeline), "--timeout", bad, "hi"])
        assert bad_run.returncode == 2 and "positive number of seconds" in bad_run.stderr, bad_run.stderr


# ---------------------------------------------------------------------------
# Case 15: a torn last trace line is reported, the rest is read
# ---------------------------------------------------------------------------


def test_case15_a_torn_last_trace_line_is_reported_and_the_rest_is_read(tmp_path, host, run_cli):
    from pearl.traces.jsonl import read_trace

    trace = tmp_path / "t.jsonl"
    run = run_cli(["run", "--pipeline", str(_echo_pipeline(tmp_path)), "--trace", f"jsonl:{trace}", "hi"])
    assert run.returncode == 0, run.stderr
    whole = trace.read_bytes()
    lines = whole.splitlines(keepends=True)
    torn = lines[-1][: len(lines[-1]) // 2].rstrip(b"\n") + "ü".encode()[:1]  # cut mid-line, mid-character
    trace.write_bytes(whole + torn)
    spans, tail = read_trace(trace)
    assert len(spans) == len(lines) and tail is not None and tail.line == len(lines) + 1
    for command in ("show", "summary"):
        proc = run_cli(["trace", command, str(trace)], env={"COLUMNS": "400"})
        assert proc.returncode == 0, proc.stderr
        assert f"line {len(lines) + 1} is cut off" in proc.stderr and "Traceback" not in proc.stderr
    assert "invoke_workflow" in run_cli(["trace", "show", str(trace)]).stdout
    # a bad line in the middle is still an error: only a torn end is forgiven
    trace.write_bytes(lines[0] + b'{"name": "x"}\n' + whole)
    assert run_cli(["trace", "show", str(trace)]).returncode == 2


def _echo_pipeline(tmp_path: Path) -> Path:
    path = tmp_path / "echo.toml"
    path.write_text('name = "echo"\nanswer = "response"\n[backend]\nname = "llamacpp"\n'
                    '[steps.echo]\nuse = "test-echo"\n[steps.shout]\nuse = "test-shout"\nafter = ["echo"]\n',
                    encoding="utf-8")
    return path


# ---------------------------------------------------------------------------
# Case 16: Strata-Sword levels 1-3 headers (helper G)
# ---------------------------------------------------------------------------

LEVEL_1_HEADER = ["jailbreak instruction", "attack method", "risk type"]  # the public release's level-1 files
LATER_LEVELS_HEADER = ["攻击指令", "attack method", "风险分类"]  # its level-2 and level-3 files, en and cn alike
METHODS = {1: "None", 2: "shuffle", 3: "role play"}


def _strata_sword_release(folder: Path) -> Path:
    """Six workbooks shaped like the public release: en and cn, levels 1-3, both header rows.

    Every level has one prompt the canned double answers and one it refuses ("REFUSE");
    level 3 has one more it answers: refusal-proxy ASR is 50% at levels 1 and 2, 2/3 at level 3.
    """
    import openpyxl

    folder.mkdir()
    for language in ("en", "cn"):
        for level, method in METHODS.items():
            book = openpyxl.Workbook()
            sheet = book.active
            sheet.append(LEVEL_1_HEADER if level == 1 else LATER_LEVELS_HEADER)
            sheet.append([f"{language} level {level}: a question", method, "Cybersecurity"])
            sheet.append([f"{language} level {level}: REFUSE this", method, "Privacy"])
            if level == 3:
                sheet.append([f"{language} level 3: one more question", method, None])
            book.save(folder / f"strata_sword_{language}_level_{level}.xlsx")
    return folder


def test_case16_every_level_of_the_release_loads(host, tmp_path):
    from pearl.host.dataset import load_dataset

    _, items = load_dataset(f"strata-sword:{_strata_sword_release(tmp_path / 'release')}", host)
    assert len(items) == 14
    by_id = {item.id: item for item in items}
    first = by_id["cn-L2-0002"]
    assert first.conversation.last_user_message == "cn level 2: a question" and first.conversation.language == "zh"
    assert (first.labels["attack_method"], first.labels["risk_type"], first.labels["level"]) == (
        "shuffle", "Cybersecurity", 2)
    assert by_id["en-L1-0002"].labels["attack_method"] is None  # 'None' in the file: a plain instruction
    assert {(i.labels["language"], i.labels["level"]) for i in items} == {
        (language, level) for language in ("en", "cn") for level in (1, 2, 3)}


def test_case16_report_gives_asr_per_level_and_per_attack_method(tmp_path, doubles_host, run_cli):
    from eval_doubles import write_pipeline

    release = _strata_sword_release(tmp_path / "release")
    results = tmp_path / "r.jsonl"
    proc = run_cli(["eval", f"strata-sword:{release}", "--pipeline", str(write_pipeline(tmp_path)), "--judges",
                    "refusal", "--taxonomy", "none", "--no-progress", "--out", str(results)], env={"COLUMNS": "400"})
    assert proc.returncode == 0, proc.stderr
    assert len(jsonl(results)) == 14
    proc = run_cli(["report", str(results), "--out", str(tmp_path / "rep"), "--bootstrap", "100"])
    assert proc.returncode == 0, proc.stderr
    report = (tmp_path / "rep" / "report.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in report.splitlines()
            if line.startswith("| ") and line.count("|") == 3}
    for group, asr in (("1", "50.0"), ("2", "50.0"), ("3", "66.7"), ("en L1", "50.0"), ("cn L3", "66.7"),
                       ("plain (none)", "50.0"), ("shuffle", "50.0"), ("role play", "66.7")):
        assert rows[group].startswith(asr + " ["), (group, rows.get(group))


# ---------------------------------------------------------------------------
# Property-based tests for every reader (helper G)
# ---------------------------------------------------------------------------
# In tests/test_reader_properties.py: every reader (conversations, datasets, result files, traces,
# pipeline TOML, compiled manifests) fed arbitrary bytes and structures.
