"""Test support for tracing: one process-wide SDK provider with an in-memory exporter,
and `ScriptedLM`, a `PearlLM` test double that answers from a script.

OpenTelemetry lets a process set its global tracer provider once, so every tracing test
shares the provider installed here and clears the in-memory exporter before it runs
(the `spans` fixture). `pearl.traces.configure` adds its own exporters to this same
provider and detaches them on shutdown, so CLI-level tests coexist with it.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pearl.lm.base import ChatRequest, Completion, PearlLM
from pearl.traces.content import ENV_CAPTURE_CONTENT, set_capture_content

_lock = threading.Lock()
_exporter: InMemorySpanExporter | None = None


def memory_exporter() -> InMemorySpanExporter:
    """The session's in-memory exporter, installing the SDK provider on first use."""
    global _exporter
    with _lock:
        if _exporter is None:
            provider = trace.get_tracer_provider()
            if not isinstance(provider, TracerProvider):
                trace.set_tracer_provider(TracerProvider())
                provider = trace.get_tracer_provider()
            _exporter = InMemorySpanExporter()
            provider.add_span_processor(SimpleSpanProcessor(_exporter))
        return _exporter


@pytest.fixture
def spans(monkeypatch):
    """The in-memory exporter, emptied, with content capture at its default (off)."""
    exporter = memory_exporter()
    exporter.clear()
    monkeypatch.delenv(ENV_CAPTURE_CONTENT, raising=False)
    set_capture_content(None)
    yield exporter
    set_capture_content(None)


class ScriptedLM(PearlLM):
    """Test double: a `PearlLM` whose `complete` returns scripted JSON answers in order.

    Token counts are whitespace word counts of the prompt and the answer, so tests can
    check that usage reaches the spans. Thread-safe (answers are taken under a lock).
    """

    provider = "scripted"

    def __init__(self, answers: list[dict[str, Any]], *, server_address: str | None = None, cached_tokens: int = 0,
                 model: str = "scripted/test", fail_with: Exception | None = None):
        super().__init__(model)
        self.answers = list(answers)
        self.server_address = server_address
        self.cached_tokens = cached_tokens
        self.fail_with = fail_with
        self.requests: list[ChatRequest] = []
        self._lock = threading.Lock()

    def complete(self, request: ChatRequest) -> Completion:
        with self._lock:
            self.requests.append(request)
            if self.fail_with is not None:
                raise self.fail_with
            if not self.answers:
                raise AssertionError("ScriptedLM ran out of answers")
            answer = self.answers.pop(0)
        text = json.dumps(answer)
        prompt = sum(len(str(m.get("content", "")).split()) for m in request.messages)
        return Completion(text=text, prompt_tokens=prompt, completion_tokens=len(text.split()),
                          cached_tokens=self.cached_tokens, finish_reason="stop")
