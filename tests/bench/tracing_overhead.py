"""Tracing cost per run, without a model: `python tests/bench/tracing_overhead.py [RUNS]`.

Runs the `minimal` pipeline on `ScriptedLM` (a named test double that replays fixed
answers) RUNS times untraced and RUNS times traced to a JSONL file, interleaved, and
prints both medians and their difference: the absolute cost tracing adds to a run.
For the ratio on a real model, see `python tests/bench/tracing_ratio.py --help`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: the named test doubles

from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: E402
from otel_support import ScriptedLM  # noqa: E402

from pearl.host.manager import Host  # noqa: E402
from pearl.runtime.pipeline import load  # noqa: E402
from pearl.runtime.runner import Runner  # noqa: E402
from pearl.traces.jsonl import JsonlSpanExporter, read_spans  # noqa: E402
from pearl.types import Conversation  # noqa: E402
from tracing_ratio import _Switch  # noqa: E402  (tests/bench/, this script's folder)

ANSWERS = [{"topic": "tenancy", "user_need": "deposit", "risk": "low", "caution": ""}, {"response": "Write to them."}]
WARM_UP = 20


def main(runs: int) -> None:
    warnings.simplefilter("ignore")
    sdk = TracerProvider()
    switch = _Switch(sdk)
    trace.set_tracer_provider(switch)
    path = Path(tempfile.mkdtemp()) / "spans.jsonl"
    processor = BatchSpanProcessor(JsonlSpanExporter(path))
    sdk.add_span_processor(processor)
    host = Host(third_party=False)
    pipeline = load("minimal", host)
    conversation = Conversation.from_text("My landlord kept my deposit.")

    def one_run() -> float:
        t0 = time.perf_counter()
        Runner(pipeline, {"task": ScriptedLM(list(ANSWERS))}, host).run(conversation)
        return time.perf_counter() - t0

    for _ in range(WARM_UP):
        one_run()
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(runs):
        for traced in (False, True):
            switch.on = traced
            times[traced].append(one_run())
    processor.shutdown()
    off, on = statistics.median(times[False]), statistics.median(times[True])
    print(f"scripted LM, pipeline minimal, {runs} runs each: untraced median {off * 1000:.2f} ms, "
          f"traced {on * 1000:.2f} ms, tracing cost {(on - off) * 1000:.2f} ms/run, {len(read_spans(path))} spans")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="?", type=int, default=200, help="runs of each kind (default 200)")
    main(parser.parse_args().runs)
