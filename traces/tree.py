"""Span trees and per-step totals from `SpanRecord`s (the model behind `pearl trace`).

`build_runs(spans)` groups spans by trace (one Pearlpoint run per trace), links each
span to its parent and orders children by start time; a span whose parent is not in
the file becomes an extra root marked `orphan`. `step_totals(runs)` sums calls,
tokens and time per (pipeline, step) across runs.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable

from pearl.traces import semconv as sc
from pearl.traces.jsonl import SpanRecord


@dataclass
class Node:
    span: SpanRecord
    children: list["Node"] = field(default_factory=list)
    orphan: bool = False

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()

    @property
    def is_llm_call(self) -> bool:
        return self.span.attributes.get(sc.GEN_AI_OPERATION_NAME) == sc.OPERATION_CHAT

    def llm_totals(self) -> tuple[int, int, int]:
        """(calls, input tokens, output tokens) of the LM calls in this subtree."""
        calls = tokens_in = tokens_out = 0
        for node in self.walk():
            if node.is_llm_call:
                calls += 1
                tokens_in += int(node.span.attributes.get(sc.GEN_AI_USAGE_INPUT_TOKENS, 0) or 0)
                tokens_out += int(node.span.attributes.get(sc.GEN_AI_USAGE_OUTPUT_TOKENS, 0) or 0)
        return calls, tokens_in, tokens_out


@dataclass
class Run:
    """The spans of one trace: normally one `invoke_workflow` root and its descendants."""

    trace_id: str
    roots: list[Node]

    @property
    def root(self) -> Node:
        return self.roots[0]

    @property
    def run_id(self) -> str | None:
        return next((n.span.attributes.get(sc.PEARL_RUN_ID) for n in self.roots
                     if n.span.attributes.get(sc.PEARL_RUN_ID)), None)

    @property
    def pipeline(self) -> str | None:
        return next((n.span.attributes.get(sc.PEARL_PIPELINE) for n in self.roots
                     if n.span.attributes.get(sc.PEARL_PIPELINE)), None)

    @property
    def start(self) -> int:
        return min(n.span.start_time_unix_nano for n in self.roots)

    def nodes(self):
        for root in self.roots:
            yield from root.walk()

    def matches(self, ident: str) -> bool:
        return self.trace_id.startswith(ident) or bool(self.run_id and self.run_id.startswith(ident))


def build_runs(spans: Iterable[SpanRecord]) -> list[Run]:
    """Spans -> runs (ordered by start), each a forest of `Node`s (children by start time)."""
    by_trace: dict[str, list[SpanRecord]] = defaultdict(list)
    for span in spans:
        by_trace[span.trace_id].append(span)
    runs = []
    for trace_id, items in by_trace.items():
        nodes = {s.span_id: Node(s) for s in items}
        roots = []
        for node in nodes.values():
            parent = node.span.parent_span_id
            if parent and parent in nodes:
                nodes[parent].children.append(node)
            else:
                node.orphan = bool(parent)
                roots.append(node)
        for node in nodes.values():
            node.children.sort(key=lambda n: (n.span.start_time_unix_nano, n.span.name))
        roots.sort(key=lambda n: (n.orphan, n.span.start_time_unix_nano))
        runs.append(Run(trace_id, roots))
    runs.sort(key=lambda r: r.start)
    return runs


@dataclass
class StepTotal:
    pipeline: str
    step: str
    use: str
    runs: int = 0
    errors: int = 0
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0

    @property
    def mean_seconds(self) -> float:
        return self.seconds / self.runs if self.runs else 0.0


def step_totals(runs: Iterable[Run]) -> list[StepTotal]:
    """Per (pipeline, step id) totals across `runs`, in first-seen order; the last row,
    step '(run)', totals the runs themselves."""
    totals: dict[tuple[str, str], StepTotal] = {}
    whole: dict[str, StepTotal] = {}
    for run in runs:
        pipeline = run.pipeline or "?"
        for node in run.nodes():
            attrs = node.span.attributes
            if sc.PEARL_STEP_ID in attrs:
                key = (pipeline, str(attrs[sc.PEARL_STEP_ID]))
                t = totals.setdefault(key, StepTotal(pipeline, key[1], str(attrs.get(sc.PEARL_STEP_USE, ""))))
            elif attrs.get(sc.GEN_AI_OPERATION_NAME) == sc.OPERATION_INVOKE_WORKFLOW:
                t = whole.setdefault(pipeline, StepTotal(pipeline, "(run)", ""))
            else:
                continue
            calls, tokens_in, tokens_out = node.llm_totals()
            t.runs += 1
            t.errors += node.span.is_error
            t.calls += calls
            t.input_tokens += tokens_in
            t.output_tokens += tokens_out
            t.seconds += node.span.seconds
    return list(totals.values()) + list(whole.values())
