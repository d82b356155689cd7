"""Exporters and the viewer: JSONL round-trips through `pearl trace show`/`summary`,
OTLP/HTTP reaches a loopback receiver, spans are flushed on Ctrl-C, bad specs are clean
errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (ExportTraceServiceRequest,
                                                                      ExportTraceServiceResponse)
from typer.testing import CliRunner

from otel_support import ScriptedLM, spans  # noqa: F401  (fixture)
from pearl.cli import app
from pearl.errors import InputError
from pearl.runtime.pipeline import load
from pearl.runtime.runner import Runner
from pearl.traces.configure import configure_tracing, otlp_endpoint
from pearl.traces.jsonl import read_spans
from pearl.traces.tree import build_runs, step_totals
from pearl.types import Conversation

SCREEN = {"topic": "tenancy", "user_need": "get the deposit back", "risk": "low", "caution": "not legal advice"}
RESPOND = {"response": "Write to your landlord citing the tenancy agreement."}


def registered(host):
    """The host with its registries built, so the registration hooks' own spans come
    before the tracing under test is configured."""
    load("minimal", host)
    return host


def run_minimal(host):
    lm = ScriptedLM([SCREEN, RESPOND])
    return Runner(load("minimal", host), {"task": lm}, host).run(Conversation.from_text("My landlord kept my deposit."))


def ids(span):
    parent = format(span.parent.span_id, "016x") if span.parent else None
    return format(span.context.span_id, "016x"), parent, span.name


def test_jsonl_round_trips_through_show_and_summary(host, spans, tmp_path):
    path = tmp_path / "run.jsonl"
    registered(host)
    handle = configure_tracing(f"jsonl:{path}")
    try:
        first = run_minimal(host)
        second = run_minimal(host)
    finally:
        handle.shutdown()
    run_minimal(host)  # after shutdown nothing more reaches the file
    records = read_spans(path)
    expected = {ids(s) for s in spans.get_finished_spans()}
    got = {(r.span_id, r.parent_span_id, r.name) for r in records}
    assert got < expected and len(got) == len(records) == 2 * 5  # 2 runs x (run, 2 steps, 2 calls)
    chat = next(r for r in records if r.name.startswith("chat "))
    assert chat.kind == "CLIENT" and chat.attributes["gen_ai.usage.input_tokens"] > 0
    assert "service.name" in chat.resource  # the test session's provider, not the CLI's

    runs = build_runs(records)
    assert [r.run_id for r in runs] == [first.metadata["run_id"], second.metadata["run_id"]]
    assert all(len(r.roots) == 1 and not r.roots[0].orphan for r in runs)

    cli = CliRunner()
    shown = cli.invoke(app, ["trace", "show", str(path)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    out = shown.output
    assert out.count("invoke_workflow minimal") == 2
    for fragment in ("step screen", "step respond", "chat scripted/test", "risk=low", "guardrail", "stop",
                     first.metadata["run_id"]):
        assert fragment in out, fragment
    calls = f"2 calls · {first.usage.prompt_tokens}→{first.usage.completion_tokens} tok"
    assert calls in out

    one = cli.invoke(app, ["trace", "show", str(path), "--run", second.metadata["run_id"][:8]], env={"COLUMNS": "200"})
    assert one.exit_code == 0 and one.output.count("invoke_workflow") == 1
    assert second.metadata["run_id"] in one.output and first.metadata["run_id"] not in one.output

    summary = cli.invoke(app, ["trace", "summary", str(path)], env={"COLUMNS": "200"})
    assert summary.exit_code == 0, summary.output
    assert "2 runs" in summary.output and "screen" in summary.output and "(run)" in summary.output
    totals = {t.step: t for t in step_totals(runs)}
    assert totals["screen"].runs == 2 and totals["screen"].calls == 2
    assert totals["(run)"].calls == 4
    assert totals["(run)"].input_tokens == first.usage.prompt_tokens + second.usage.prompt_tokens

    missing = cli.invoke(app, ["trace", "show", str(path), "--run", "nonesuch"])
    assert isinstance(missing.exception, InputError) and "no run 'nonesuch'" in str(missing.exception)


def test_viewer_marks_orphans_and_errors(tmp_path):
    base = {"trace_id": "a" * 32, "kind": "INTERNAL", "start_time_unix_nano": 1_000_000_000,
            "end_time_unix_nano": 3_500_000_000}
    lines = [
        {**base, "span_id": "1" * 16, "parent_span_id": "f" * 16, "name": "step lost",
         "status": {"code": "ERROR", "description": "StepError: step 'lost': it broke"}},
    ]
    path = tmp_path / "odd.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    shown = CliRunner().invoke(app, ["trace", "show", str(path)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "parent not in file" in shown.output and "it broke" in shown.output and "2.50 s" in shown.output


def test_bad_trace_files_are_input_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"name": "x"}\n')
    with pytest.raises(InputError, match="line 1 is not a Pearlpoint span"):
        read_spans(bad)
    with pytest.raises(InputError, match="does not exist"):
        read_spans(tmp_path / "none.jsonl")


def test_spans_are_appended_to_a_trace_and_never_to_another_file(host, tmp_path):
    path = tmp_path / "run.jsonl"
    registered(host)
    for _ in range(2):  # the second run adds its spans to the first's trace
        handle = configure_tracing(f"jsonl:{path}")
        try:
            run_minimal(host)
        finally:
            handle.shutdown()
    assert len(read_spans(path)) == 2 * 5
    conversation = tmp_path / "conv.json"
    conversation.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    with pytest.raises(InputError, match=r"conv.json: the file exists and is not a Pearlpoint trace"):
        configure_tracing(f"jsonl:{conversation}")
    assert conversation.read_text() == '{"messages": [{"role": "user", "content": "hi"}]}\n'


@pytest.mark.parametrize("spec, fragment", [
    ("bogus:x", "unknown trace destination 'bogus:x'"),
    ("jsonl:", "has no path"),
    ("otlp:localhost:4318", "is not an OTLP/HTTP URL"),
])
def test_bad_specs_are_input_errors(spec, fragment):
    with pytest.raises(InputError, match=fragment):
        configure_tracing(spec)


def test_otlp_endpoint():
    assert otlp_endpoint("http://127.0.0.1:4318") == "http://127.0.0.1:4318/v1/traces"
    assert otlp_endpoint("http://127.0.0.1:4318/") == "http://127.0.0.1:4318/v1/traces"
    assert otlp_endpoint("https://collector/custom/path") == "https://collector/custom/path"


# --- OTLP over HTTP ------------------------------------------------------------------------

class OtlpReceiver:
    """Test double: a minimal OTLP/HTTP trace receiver on loopback that decodes the protobuf."""

    def __init__(self):
        self.requests: list[ExportTraceServiceRequest] = []
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                message = ExportTraceServiceRequest()
                message.ParseFromString(body)
                receiver.paths.append(self.path)
                receiver.requests.append(message)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def spans(self):
        for request in self.requests:
            for resource_spans in request.resource_spans:
                resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        yield resource, scope_spans.scope, span


def test_otlp_exporter_delivers_to_a_collector(host, spans):
    registered(host)
    with OtlpReceiver() as receiver:
        handle = configure_tracing(f"otlp:{receiver.url}")
        try:
            result = run_minimal(host)
        finally:
            handle.shutdown()  # flushes the batch processor
    assert receiver.paths and set(receiver.paths) == {"/v1/traces"}
    got = list(receiver.spans())
    names = sorted(span.name for _, _, span in got)
    assert names == ["chat scripted/test", "chat scripted/test", "invoke_workflow minimal", "step respond",
                     "step screen"]
    assert {span.trace_id for _, _, span in got} == {next(s.context.trace_id for s in spans.get_finished_spans()
                                                           if s.name.startswith("invoke")).to_bytes(16, "big")}
    scope = got[0][1]
    assert scope.name == "pearl"
    chat = next(span for _, _, span in got if span.name.startswith("chat "))
    attributes = {a.key: a.value for a in chat.attributes}
    assert attributes["gen_ai.operation.name"].string_value == "chat"
    assert attributes["gen_ai.usage.input_tokens"].int_value > 0
    root = next(span for _, _, span in got if span.name.startswith("invoke"))
    root_attrs = {a.key: a.value for a in root.attributes}
    assert root_attrs["pearl.run.id"].string_value == result.metadata["run_id"]


# --- flushing on Ctrl-C, and the CLI's own errors --------------------------------------------

def test_spans_are_flushed_on_ctrl_c(tmp_path):
    path = tmp_path / "interrupted.jsonl"
    script = textwrap.dedent(f"""
        import signal, sys, time
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a background job starts with SIGINT ignored
        from pearl.traces.configure import configure_tracing
        from pearl.traces.spans import run_span
        configure_tracing("jsonl:{path}")
        with run_span("slow", "run-1"):
            print("ready", flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    (span,) = read_spans(path)
    assert span.name == "invoke_workflow slow"
    assert span.status.code == "ERROR" and "interrupted" in span.status.description


def test_cli_rejects_bad_trace_specs_cleanly(run_cli):
    proc = run_cli(["run", "--trace", "bogus:x", "hi"])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "unknown trace destination 'bogus:x'" in proc.stderr
    proc = run_cli(["run", "hi"], env={"PEARL_TRACE": "nonsense"})
    assert proc.returncode == 2 and "unknown trace destination 'nonsense'" in proc.stderr
    proc = run_cli(["trace", "show", "/no/such/file.jsonl"])
    assert proc.returncode == 2 and "does not exist" in proc.stderr


@pytest.mark.model
def test_cli_run_traces_to_jsonl_on_the_embedded_model(tmp_path, run_cli):
    """The one traced run on the real model: `minimal` (two calls), exported and shown."""
    path = tmp_path / "run.jsonl"
    proc = run_cli(["run", "--pipeline", "minimal", "--json", "--max-tokens", "48", "--trace", f"jsonl:{path}",
                    "Say hello."])
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    runs = build_runs(read_spans(path))
    assert len(runs) == 1 and runs[0].run_id == result["metadata"]["run_id"]
    calls, tokens_in, tokens_out = runs[0].root.llm_totals()
    assert calls == result["usage"]["calls"] == 2 and tokens_in == result["usage"]["prompt_tokens"]
    assert tokens_out == result["usage"]["completion_tokens"] > 0
    shown = run_cli(["trace", "show", str(path)], env={"COLUMNS": "200"})
    assert shown.returncode == 0, shown.stderr
    assert "chat llamacpp/" in shown.stdout and "step screen" in shown.stdout and "step respond" in shown.stdout


def test_readme_documents_the_jsonl_fields(host, spans, tmp_path):
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = re.search(r"The JSONL file holds one finished span per line.*?```json\n(.*?)```", readme, re.S).group(1)
    documented = set(json.loads(block))
    path = tmp_path / "run.jsonl"
    handle = configure_tracing(f"jsonl:{path}")
    try:
        run_minimal(host)
    finally:
        handle.shutdown()
    line = json.loads(path.read_text().splitlines()[0])
    assert set(line) == documented
