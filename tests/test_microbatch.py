"""`MicroBatcher`: concurrent submissions coalesce; results and errors reach the right caller."""

from __future__ import annotations

import threading

import pytest

from pearl.runtime.concurrency import map_in_context
from pearl.lm.microbatch import MicroBatcher


def test_concurrent_items_share_a_batch_and_keep_their_results():
    batches = []

    def send(items):
        batches.append(list(items))
        return [x * 10 for x in items]

    mb = MicroBatcher(send, window=0.2)
    assert map_in_context(mb.submit, range(5)) == [0, 10, 20, 30, 40]
    assert len(batches) == 1 and sorted(batches[0]) == [0, 1, 2, 3, 4]


def test_overflow_beyond_max_batch_gets_its_own_leader():
    sizes = []
    lock = threading.Lock()

    def send(items):
        with lock:
            sizes.append(len(items))
        return list(items)

    mb = MicroBatcher(send, window=0.2, max_batch=3)
    assert map_in_context(mb.submit, range(7)) == list(range(7))
    assert sum(sizes) == 7 and max(sizes) <= 3


def test_per_item_errors_and_batch_errors():
    def send(items):
        if "boom" in items:
            raise RuntimeError("whole batch failed")
        return [ValueError(f"bad {x}") if x == "bad" else x for x in items]

    mb = MicroBatcher(send, window=0.0)
    assert mb.submit("ok") == "ok"
    with pytest.raises(ValueError, match="bad bad"):
        mb.submit("bad")
    with pytest.raises(RuntimeError, match="whole batch failed"):
        mb.submit("boom")
    assert mb.submit("again") == "again"  # the batcher recovers


def test_wrong_result_count_is_an_error():
    mb = MicroBatcher(lambda items: [], window=0.0)
    with pytest.raises(RuntimeError, match="0 results for 1 items"):
        mb.submit(1)
