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


def test_bisect_isolates_the_bad_item_and_sends_good_items_once():
    from pearl.lm.microbatch import bisect_failures

    sent, succeeded = [], []
    lock = threading.Lock()

    def send(items):
        with lock:
            sent.append(list(items))
        if "bad" in items:
            raise ValueError("the server refused the batch")
        with lock:
            succeeded.extend(items)
        return [x.upper() for x in items]

    items = [f"ok{i}" for i in range(8)]
    items[5] = "bad"
    pauses = []
    out = bisect_failures(send, items, before_split=pauses.append)
    assert [o for o in out if isinstance(o, str)] == [x.upper() for x in items if x != "bad"]
    assert isinstance(out[5], ValueError)
    assert len(sent) <= 7 and len(pauses) == 3  # 8 -> 4 -> 2 -> 1: three splits on the bad item's side
    assert sorted(succeeded) == sorted(x for x in items if x != "bad")  # none sent twice after succeeding


def test_bisect_does_not_split_what_splitting_cannot_help():
    from pearl.lm.microbatch import bisect_failures

    calls = []

    def send(items):
        calls.append(len(items))
        raise ConnectionError("nothing answers")

    out = bisect_failures(send, [1, 2, 3], splittable=lambda exc: not isinstance(exc, ConnectionError))
    assert calls == [3] and all(isinstance(o, ConnectionError) for o in out)
