"""Threads that keep the caller's context.

Python's thread pools start workers with an empty `contextvars` context, which drops
the active DSPy settings (`dspy.context(lm=...)`), the usage meter and the
OpenTelemetry span. Every fan-out in Pearlpoint goes through these helpers so that a
worker sees exactly what its caller saw.
"""

from __future__ import annotations

import contextvars
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def submit_in_context(pool: ThreadPoolExecutor, fn: Callable[..., R], *args, **kwargs) -> Future:
    """`pool.submit`, but `fn` runs in a copy of the caller's context."""
    ctx = contextvars.copy_context()
    return pool.submit(ctx.run, fn, *args, **kwargs)


def map_in_context(fn: Callable[[T], R], items: Iterable[T], max_workers: int | None = None) -> list[R]:
    """Apply `fn` to every item concurrently; results in input order; first error re-raised."""
    items = list(items)
    if len(items) <= 1 or max_workers == 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=max_workers or len(items), thread_name_prefix="pearl") as pool:
        futures = [submit_in_context(pool, fn, item) for item in items]
        return [f.result() for f in futures]


def keep_context_in_dspy_parallel() -> None:
    """Make `dspy.Parallel` / `dspy.Evaluate` workers run in a copy of the caller's context.

    DSPy's `ParallelExecutor` carries only its own settings into its worker threads, so a
    step fanning out with `dspy.Parallel` would lose the usage meter and the current
    OpenTelemetry span (its LM calls would start new, orphan traces). This wraps
    `ParallelExecutor.execute` so each task runs in a copy of the context `execute` was
    called from, keeping the DSPy settings DSPy's worker set up for it. Idempotent;
    applied when this module is imported.
    """
    try:
        from dspy.dsp.utils.settings import thread_local_overrides
        from dspy.utils.parallelizer import ParallelExecutor
    except ImportError:  # pragma: no cover - DSPy moved things; nothing to patch
        return
    original = ParallelExecutor.execute
    if getattr(original, "_pearl_keeps_context", False):
        return

    def execute(self, function, data):
        caller = contextvars.copy_context()

        def in_caller_context(item):
            overrides = thread_local_overrides.get()  # what DSPy's worker set for this task

            def call():
                thread_local_overrides.set(overrides)
                return function(item)

            return caller.copy().run(call)

        return original(self, in_caller_context, data)

    execute._pearl_keeps_context = True  # type: ignore[attr-defined]
    execute.__doc__ = original.__doc__
    ParallelExecutor.execute = execute


keep_context_in_dspy_parallel()
