"""Per-step accounting of language-model usage.

`pearl.lm.metered.MeteredLM`, which the runtime wraps around every role's LM, calls
`record(...)` once per completion, whatever the backend; the runner opens a `meter()`
around each step, so the step's `StepRecord.usage` holds exactly the calls it made (also
from worker threads started with `pearl.runtime.concurrency` or `dspy.Parallel`, which
copy the caller's context). Backends do not call `record` themselves.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

from pearl.types import Usage


class UsageMeter:
    """A thread-safe running total."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total = Usage()

    def add(self, usage: Usage) -> None:
        with self._lock:
            self.total = self.total.add(usage)


_meters: ContextVar[tuple[UsageMeter, ...]] = ContextVar("pearl_usage_meters", default=())


@contextmanager
def meter() -> Iterator[UsageMeter]:
    """Count every LM call made inside the block (nested meters all count)."""
    m = UsageMeter()
    token = _meters.set(_meters.get() + (m,))
    try:
        yield m
    finally:
        _meters.reset(token)


def record(prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0, seconds: float = 0.0) -> None:
    """Count one completion in every meter open in the current context (called by `MeteredLM`)."""
    usage = Usage(
        calls=1,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cached_tokens=cached_tokens,
        seconds=seconds,
    )
    for m in _meters.get():
        m.add(usage)
