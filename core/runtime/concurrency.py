"""Threads that keep the caller's context.

Python's thread pools start workers with an empty `contextvars` context, which drops
the active DSPy settings (`dspy.context(lm=...)`), the usage meter and the
OpenTelemetry span. Every fan-out in Pearlpoint goes through these helpers so that a
worker sees exactly what its caller saw.
"""

from __future__ import annotations

import contextvars
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def submit_in_context(pool: ThreadPoolExecutor, fn: Callable[..., R], *args, **kwargs) -> Future:
    """`pool.submit`, but `fn` runs in a copy of the caller's context."""
    ctx = contextvars.copy_context()
    return pool.submit(ctx.run, fn, *args, **kwargs)


def as_completed_in_context(fn: Callable[[T], R], items: Iterable[T], max_workers: int, *,
                            name: str = "pearl") -> Iterator[R]:
    """The one bounded concurrent map: `fn(item)` for every item, results yielded as they finish.

    At most `max_workers` calls are in flight; items are drawn from `items` lazily, one as
    each call finishes; each call runs in a copy of the caller's context. An exception
    raised by `fn` is re-raised when its result is reached. When the consumer stops early
    (an error, KeyboardInterrupt, `close()`), no new item starts and queued calls are
    cancelled; calls already running finish in the background. With `max_workers == 1`
    everything runs in the caller's thread, in order.
    """
    if max_workers < 1:
        raise ValueError(f"max_workers must be at least 1 (got {max_workers})")
    if max_workers == 1:
        for item in items:
            yield fn(item)
        return
    pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=name)
    queue = iter(items)
    running: set[Future] = set()

    def top_up() -> None:
        while len(running) < max_workers:
            item = next(queue, _END)
            if item is _END:
                return
            running.add(submit_in_context(pool, fn, item))

    try:
        top_up()
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
            top_up()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


_END = object()


def map_in_context(fn: Callable[[T], R], items: Iterable[T], max_workers: int | None = None) -> list[R]:
    """`fn` over every item concurrently (all at once unless `max_workers` bounds it); results in input order.

    The first error to finish is re-raised. Built on `as_completed_in_context`.
    """
    items = list(items)
    if len(items) <= 1:
        return [fn(item) for item in items]
    indexed = as_completed_in_context(lambda pair: (pair[0], fn(pair[1])), enumerate(items),
                                      max_workers or len(items))
    results = dict(indexed)
    return [results[i] for i in range(len(items))]


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
