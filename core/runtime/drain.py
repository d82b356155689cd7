"""A bounded concurrent map that a first Ctrl-C drains and a second one abandons.

Long runs over many items (`pearl run --batch`, `pearl eval`) write each result as it
finishes. `DrainingMap(fn, items, max_workers)` is the loop they share:

- at most `max_workers` calls of `fn` run at once, each in a worker thread that runs in
  a copy of the caller's context (`pearl.runtime.concurrency.submit_in_context`);
  results are yielded as they finish;
- **first Ctrl-C** (SIGINT): no new item starts, and the calls already running go on;
  their results are still yielded, so the caller writes them. Iteration then ends
  normally with `not_started` counting the items never begun and `interrupted` set
  when there are any (a Ctrl-C after the last item started loses nothing);
- **second Ctrl-C**: `KeyboardInterrupt` is raised at once, queued calls are cancelled,
  and the running ones are abandoned (`abandoned_work()`; the CLI then leaves without
  waiting for them, see `pearl.cli.main`).

The two-stage handler is installed only while iterating, and only on the main thread
(where Python delivers signals); elsewhere a `KeyboardInterrupt` counts as the second
press. `fn` raising is re-raised when its result is reached, as in
`as_completed_in_context`; callers that must not stop catch inside `fn`.
"""

from __future__ import annotations

import signal
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Callable, Generic, Iterable, Iterator, TypeVar

from pearl.runtime.concurrency import submit_in_context

T = TypeVar("T")
R = TypeVar("R")

POLL_S = 0.2  # how often the loop looks at the Ctrl-C flag while waiting for results

_abandoned: list[Future] = []


def abandoned_work() -> bool:
    """Whether calls that a `DrainingMap` stopped waiting for (second Ctrl-C, an error) are still running.

    Their threads cannot be stopped; a command line that is exiting should not wait for them
    (`os._exit`), since everything finished has been written.
    """
    _abandoned[:] = [f for f in _abandoned if not f.done()]
    return bool(_abandoned)


class DrainingMap(Generic[T, R]):
    """Iterate to get `fn(item)` for every item, as each finishes (see the module docstring).

    `on_interrupt(running)` is called once, on the first Ctrl-C, with the number of calls
    still running (to tell the user what is being waited for).
    """

    def __init__(self, fn: Callable[[T], R], items: Iterable[T], max_workers: int, *, name: str = "pearl",
                 on_interrupt: Callable[[int], None] | None = None):
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1 (got {max_workers})")
        self.fn = fn
        self.items = list(items)
        self.max_workers = max_workers
        self.name = name
        self.on_interrupt = on_interrupt
        self.interrupted = False
        self.not_started = 0
        self._stop = threading.Event()

    def interrupt(self) -> None:
        """What the first Ctrl-C does: start no new item (also callable directly, e.g. by tests)."""
        self._stop.set()

    def _handler(self, signum, frame) -> None:
        if self._stop.is_set():
            raise KeyboardInterrupt
        self.interrupt()

    def __iter__(self) -> Iterator[R]:
        on_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, self._handler) if on_main else None
        pool = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix=self.name)
        queue = iter(self.items)
        started = 0
        running: set[Future] = set()
        told = False
        try:
            while True:
                while not self._stop.is_set() and len(running) < self.max_workers and started < len(self.items):
                    running.add(submit_in_context(pool, self.fn, next(queue)))
                    started += 1
                if not running:
                    break
                if self._stop.is_set() and not told:
                    told = True
                    if self.on_interrupt is not None:
                        self.on_interrupt(len(running))
                done, running = wait(running, timeout=POLL_S, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        except BaseException:
            _abandoned.extend(f for f in running if not f.done())
            raise
        finally:
            self.not_started = len(self.items) - started
            self.interrupted = self._stop.is_set() and self.not_started > 0
            if on_main:
                signal.signal(signal.SIGINT, signal.default_int_handler if previous is None else previous)
            pool.shutdown(wait=False, cancel_futures=True)
