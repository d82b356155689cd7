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

`bisect_failures(send, items, ...)` is the per-item failure isolation a `send_batch`
can use when its server refuses a whole batch for one bad item (one prompt too long,
one grammar that does not compile): it splits the failed batch in halves and sends each
(concurrently), recursively, so that only the items that fail on their own get an error,
and the halves that succeed are never sent again.
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


def bisect_failures(send: Callable[[list[T]], Sequence[R | BaseException]], items: list[T], *,
                    splittable: Callable[[BaseException], bool] = lambda exc: True,
                    before_split: Callable[[BaseException], None] | None = None) -> list[R | BaseException]:
    """Per item, `send`'s result or exception; a batch that fails as a whole is split.

    `send(items)` returns one result (or exception) per item, or raises when the whole
    batch failed. Then, when the batch has more than one item and `splittable(exc)`,
    `before_split(exc)` runs (a backoff pause, say) and each half goes through
    `bisect_failures` again, the two halves concurrently; otherwise every item gets
    `exc`. A batch of n items with one bad item costs at most 2*log2(n) + 1 sends, and
    no item that succeeded is sent twice.
    """
    try:
        results = list(send(items))
    except BaseException as exc:  # noqa: BLE001 - handed to the items, or split on
        if len(items) == 1 or not splittable(exc):
            return [exc] * len(items)
        if before_split is not None:
            before_split(exc)
        mid = len(items) // 2
        left: list[R | BaseException] = []
        worker = threading.Thread(target=lambda: left.extend(
            bisect_failures(send, items[:mid], splittable=splittable, before_split=before_split)),
            name="pearl-bisect", daemon=True)
        worker.start()
        right = bisect_failures(send, items[mid:], splittable=splittable, before_split=before_split)
        worker.join()
        return left + right
    if len(results) != len(items):
        raise RuntimeError(f"send returned {len(results)} results for {len(items)} items")
    return results
