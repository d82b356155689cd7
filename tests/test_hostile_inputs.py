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

import pytest

from pearl.errors import InputError, PearlError
from pearl.types import Conversation, Result


class GatedSession:
    """A session double: answers at once, except prompts containing "slow", which wait for `gate`."""

    def __init__(self):
        self.gate = threading.Event()
        self.asked: list[str] = []
        self.pipeline = type("P", (), {"name": "gated"})()

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
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


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

# ---------------------------------------------------------------------------
# Case 10: --out a folder, malformed --backend-url, export-pairs IN DIR (helper G)
# ---------------------------------------------------------------------------

# ---------------------------------------------------------------------------
# Case 11: plugins that raise (helper G)
# ---------------------------------------------------------------------------

# ---------------------------------------------------------------------------
# Case 12: numeric options are validated (helper G)
# ---------------------------------------------------------------------------

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

# ---------------------------------------------------------------------------
# Property-based tests for every reader (helper G)
# ---------------------------------------------------------------------------
