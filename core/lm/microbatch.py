"""`MicroBatcher`: coalesce calls from many threads into batches, transparently.

Each caller of `submit(item)` blocks until its own result is ready, exactly as if it
had made the call alone. Items submitted within `window` seconds of the first pending
one travel together in one `send_batch(items)` call (at most `max_batch` per call), so
code that fans out with threads (`pearl.runtime.concurrency.map_in_context`, the pipeline
runner, batched runs) is batched without knowing about it.

No background thread idles: the first caller of a window becomes its *leader*; it
waits out the window, takes the pending items and sends them in its own thread. Items
left over beyond `max_batch` get a fresh leader thread at once.

Contract of `send_batch`: given a non-empty list of items, return a list of the same
length holding, per item, its result or the exception to raise in that item's caller.
If `send_batch` itself raises, every caller of that batch gets the exception.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from typing import Callable, Generic, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    """See the module docstring."""

    def __init__(self, send_batch: Callable[[list[T]], Sequence[R | BaseException]], *, window: float = 0.005,
                 max_batch: int = 64):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.send_batch = send_batch
        self.window = max(0.0, float(window))
        self.max_batch = int(max_batch)
        self._lock = threading.Lock()
        self._pending: list[tuple[T, Future]] = []
        self._leading = False
        self.batches_sent = 0
        self.largest_batch = 0

    def __deepcopy__(self, memo):  # LM copies share the batcher (and so batch together)
        return self

    def submit(self, item: T) -> R:
        """Send `item` (possibly together with concurrent ones) and return its result."""
        future: Future = Future()
        with self._lock:
            self._pending.append((item, future))
            lead = not self._leading
            if lead:
                self._leading = True
        if lead:
            self._lead()
        return future.result()

    def _lead(self) -> None:
        if self.window:
            time.sleep(self.window)
        with self._lock:
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch:]
            if self._pending:
                threading.Thread(target=self._lead, name="pearl-microbatch", daemon=True).start()
            else:
                self._leading = False
            self.batches_sent += 1
            self.largest_batch = max(self.largest_batch, len(batch))
        items = [item for item, _ in batch]
        try:
            results = list(self.send_batch(items))
            if len(results) != len(items):
                raise RuntimeError(f"send_batch returned {len(results)} results for {len(items)} items")
        except BaseException as exc:  # noqa: BLE001 - handed to every waiting caller
            for _, future in batch:
                future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results):
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
