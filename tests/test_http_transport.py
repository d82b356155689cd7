"""`pearl.lm.transport`: every HTTP request of the process runs on one event-loop thread,
whatever thread calls, and failures keep their kinds (refused, timed out, broken)."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from pearl.errors import BackendError
from pearl.lm import transport
from pearl.lm.http import HttpClient
from pearl.runtime.concurrency import map_in_context
from sglang_double import SGLangTestDouble


def client(url, **kw):
    return HttpClient(url, label="test server", unreachable=f"nothing at {url}", backoff=0.01, **kw)


def test_many_calling_threads_share_one_io_thread():
    with SGLangTestDouble(latency=0.3) as d:
        http = client(d.url)
        body = {"text": "hi", "sampling_params": {"max_new_tokens": 64}}
        io_threads = set()

        def call(i):
            out = http.post("generate", body)
            io_threads.update(t.name for t in threading.enumerate() if t.name == "pearl-http-io")
            return out["text"]

        t0 = time.perf_counter()
        out = map_in_context(call, range(48), max_workers=48)
        wall = time.perf_counter() - t0
    assert out == ["double says: ok"] * 48
    assert io_threads == {"pearl-http-io"}  # one loop thread, not one socket user per caller
    assert sum(t.name == "pearl-http-io" for t in threading.enumerate()) == 1
    assert wall < 0.3 * 48 / 4  # the requests overlapped


def test_refused_connection_is_retried_then_named():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    http = client(f"http://127.0.0.1:{port}", max_retries=2)
    with pytest.raises(BackendError) as err:
        http.get("health")
    assert f"nothing at http://127.0.0.1:{port}" in str(err.value) and "3 attempts" in str(err.value)
    assert "ConnectFailed" in str(err.value)


def test_read_timeout_is_its_own_kind():
    with SGLangTestDouble() as d:
        d.hang(2)
        t = transport.AsyncTransport(timeout=0.3, connect_timeout=1.0)
        with pytest.raises(transport.ReadTimeout):
            t.request("POST", d.url + "/generate", {"text": "x"})
        t.close()


def test_a_closed_client_can_be_used_again():
    with SGLangTestDouble() as d:
        http = client(d.url)
        assert http.probe("health") == 200
        http.close()
        assert http.probe("health") == 200
