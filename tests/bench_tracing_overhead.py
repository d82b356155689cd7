"""Tracing cost per run without a model: `python tests/bench_tracing_overhead.py 200`.

The `minimal` pipeline on `ScriptedLM` (a test double), runs interleaved untraced/traced
(JSONL exporter); prints the medians and their difference, the absolute cost of tracing.
"""
import sys, time, statistics, tempfile, warnings
from pathlib import Path
warnings.simplefilter("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from pathlib import Path
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from otel_support import ScriptedLM
from pearl.host import Host
from pearl.pipeline import load
from pearl.runner import Runner
from pearl.types import Conversation
from pearl.traces.overhead import _Switch
from pearl.traces.jsonl import JsonlSpanExporter, read_spans
sdk = TracerProvider(); sw = _Switch(sdk); trace.set_tracer_provider(sw)
path = Path(tempfile.mkdtemp()) / "t.jsonl"; proc = BatchSpanProcessor(JsonlSpanExporter(path)); sdk.add_span_processor(proc)
host = Host(load_entry_points=False); pipe = load("minimal", host)
A = [{"topic": "tenancy", "user_need": "deposit", "risk": "low", "caution": ""}, {"response": "Write to them."}]
conv = Conversation.from_text("My landlord kept my deposit.")
def one():
    Runner(pipe, {"task": ScriptedLM(list(A))}, host).run(conv)
for _ in range(20): one()
N = int(sys.argv[1]); times = {False: [], True: []}
for _ in range(N):
    for on in (False, True):
        sw.on = on; t0 = time.perf_counter(); one(); times[on].append(time.perf_counter() - t0)
proc.shutdown()
off, on = statistics.median(times[False]), statistics.median(times[True])
print(f"scripted LM, minimal, {N} runs each: untraced median {off*1000:.2f} ms, traced {on*1000:.2f} ms, "
      f"tracing cost {1000*(on-off):.2f} ms/run, {len(read_spans(path))} spans")
