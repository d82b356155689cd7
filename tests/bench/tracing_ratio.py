"""Measure what tracing costs a pipeline run on a real model: `python tests/bench/tracing_ratio.py`.

Loads the pipeline and model once, warms up, then times `--runs` runs without any
tracer provider and `--runs` runs exporting every span to a JSONL file, interleaved
(untraced, traced, untraced, ...) so load drift on the machine hits both alike, and
prints the ratio of the medians. Tracing is installed for the traced runs only: the
untraced runs go through the no-op tracer, as a library user without a provider would.

    python tests/bench/tracing_ratio.py --pipeline minimal --runs 5 "How do I get my deposit back?"
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from pearl.traces.configure import DetachableProcessor
from pearl.traces.jsonl import JsonlSpanExporter, read_spans


class _Switch(trace.TracerProvider):
    """A global provider that is either the SDK's (traced) or the no-op one (untraced)."""

    def __init__(self, sdk: TracerProvider):
        self.sdk, self.on = sdk, False

    def get_tracer(self, *args, **kwargs):
        return (self.sdk if self.on else trace.NoOpTracerProvider()).get_tracer(*args, **kwargs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("text", nargs="?", default="My landlord won't return my deposit, what can I do?")
    parser.add_argument("--pipeline", default="minimal")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=None)
    args = parser.parse_args(argv)

    from pearl.runtime.session import open_session

    sdk = TracerProvider()
    switch = _Switch(sdk)
    trace.set_tracer_provider(switch)
    path = Path(tempfile.mkdtemp(prefix="pearl-overhead-")) / "trace.jsonl"
    processor = DetachableProcessor(BatchSpanProcessor(JsonlSpanExporter(path)))
    sdk.add_span_processor(processor)

    session = open_session(args.pipeline, max_tokens=args.max_tokens)
    session.run(args.text)  # warm-up: model load, prompt caches, DSPy adapters
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.runs):
        for traced in (False, True):
            switch.on = traced
            t0 = time.perf_counter()
            session.run(args.text)
            times[traced].append(time.perf_counter() - t0)
    processor.shutdown()
    spans = read_spans(path)
    off, on = statistics.median(times[False]), statistics.median(times[True])
    print(f"pipeline {args.pipeline}, {args.runs} runs each, model {session.runner.lms['task'].model}")
    print(f"untraced: median {off:.3f} s  ({', '.join(f'{t:.2f}' for t in times[False])})")
    print(f"traced  : median {on:.3f} s  ({', '.join(f'{t:.2f}' for t in times[True])})")
    print(f"spans written: {len(spans)} ({len(spans) // max(1, args.runs)} per run) to {path}")
    print(f"overhead: traced / untraced = {on / off:.4f}")


if __name__ == "__main__":
    main()
