"""`AsyncTransport`: async HTTP I/O under the thread API, for `pearl.lm.http.HttpClient`.

Pipelines call LMs from threads (one per conversation, per sibling call, per batch
line). With a blocking client every one of those threads does its own socket work, and
a blocking pool's locking grows with the threads: at 64 in flight, httpx's sync client
spent 1.0 ms of CPU per request here, against 0.22 ms for aiohttp on one event loop
(measured against the SGLang double; `tests/bench/sglang_throughput.py` shows the
effect on whole calls). So all HTTP I/O of the process runs on ONE event-loop thread
(`aiohttp`, C-accelerated HTTP parsing, one connection pool per client), and
`AsyncTransport.request` - called from any thread - hands the request to that loop
and blocks only its caller until the reply is there. Callers keep the plain blocking
API; nothing else in Pearlpoint needs to know about asyncio.

Contract: `request(method, url, json_body, headers, timeout)` returns a `Reply`
(status, headers, body bytes; `json()`, `text`, `reason_phrase`) for any HTTP status,
or raises `ConnectTimeout` (nothing was sent), `ConnectFailed` (nothing was sent),
`ReadTimeout` (sent; no answer within `timeout`) or `Disconnected` (the connection broke
mid-request). The caller computes trace headers in its own thread (the loop thread has
no OpenTelemetry context of the caller). The loop thread is a daemon, restarted after
a fork, and every session is closed at interpreter exit.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import threading
import weakref
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any


class TransportError(Exception):
    """The request got no HTTP reply."""


class ConnectFailed(TransportError):
    """Nothing answers at the address (connection refused, unknown host): nothing was sent."""


class ConnectTimeout(ConnectFailed):
    """Connecting timed out: nothing was sent."""


class ReadTimeout(TransportError):
    """The request was sent but no reply came within the read timeout."""


class Disconnected(TransportError):
    """The connection broke while the request was under way."""


@dataclass
class Reply:
    """An HTTP reply, with the parts of `httpx.Response` the client reads."""

    status_code: int
    content: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    @property
    def reason_phrase(self) -> str:
        try:
            return HTTPStatus(self.status_code).phrase
        except ValueError:
            return ""


class _Loop:
    """The process's I/O loop thread (one per process; recreated after a fork)."""

    _lock = threading.Lock()
    _instance: "_Loop | None" = None

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="pearl-http-io", daemon=True)
        self.thread.start()

    @classmethod
    def get(cls) -> "_Loop":
        with cls._lock:
            if cls._instance is None or cls._instance.pid != os.getpid():
                cls._instance = cls()
            return cls._instance

    def run(self, coro, timeout: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


_live: "weakref.WeakSet[AsyncTransport]" = weakref.WeakSet()


class AsyncTransport:
    """One aiohttp connection pool, driven by the process's I/O loop (see the module docstring)."""

    def __init__(self, *, timeout: float, connect_timeout: float, headers: dict[str, str] | None = None,
                 max_connections: int = 1024):
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self.headers = dict(headers or {})
        self.max_connections = max_connections
        self._session = None
        self._session_pid = None
        self._finalizer = None
        self._lock = threading.Lock()
        _live.add(self)

    async def _open(self):
        import aiohttp

        connector = aiohttp.TCPConnector(limit=self.max_connections, ttl_dns_cache=300)
        return aiohttp.ClientSession(connector=connector, headers=self.headers, cookie_jar=aiohttp.DummyCookieJar(),
                                     auto_decompress=True)

    def _session_on(self, io: _Loop):
        with self._lock:
            if self._session is None or self._session_pid != io.pid:
                self._session = io.run(self._open())
                self._session_pid = io.pid
                # closes the pool once this transport is collected; holds the session, not the transport
                self._finalizer = weakref.finalize(self, _close_session, self._session, io)
            return self._session

    async def _request(self, session, method: str, url: str, body: Any, headers: dict[str, str],
                       timeout: float) -> Reply:
        import aiohttp

        limits = aiohttp.ClientTimeout(total=None, connect=min(self.connect_timeout, timeout), sock_read=timeout)
        data = None if body is None else json.dumps(body).encode()
        sent = dict(headers)
        if data is not None:
            sent["Content-Type"] = "application/json"
        try:
            async with session.request(method, url, data=data, headers=sent, timeout=limits) as response:
                content = await response.read()
                return Reply(response.status, content, dict(response.headers))
        except aiohttp.ConnectionTimeoutError as exc:
            raise ConnectTimeout(f"connecting to {url} timed out") from exc
        except (aiohttp.ServerTimeoutError, asyncio.TimeoutError) as exc:
            raise ReadTimeout(f"no reply from {url} within {timeout:g} s") from exc
        except aiohttp.ClientConnectorError as exc:
            raise ConnectFailed(f"{exc.__class__.__name__}: {exc}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise Disconnected(f"{exc.__class__.__name__}: {exc}") from exc

    def request(self, method: str, url: str, body: Any = None, *, headers: dict[str, str] | None = None,
                timeout: float | None = None) -> Reply:
        """Send one request from any thread; block the caller until its reply (see the module docstring)."""
        io = _Loop.get()
        wait = self.timeout if timeout is None else float(timeout)
        return io.run(self._request(self._session_on(io), method, url, body, headers or {}, wait))

    def close(self) -> None:
        """Close the pool (also done when the client is collected, and at interpreter exit)."""
        with self._lock:
            finalizer, self._finalizer, self._session = self._finalizer, None, None
        if finalizer is not None:
            finalizer()


def _close_session(session, io: _Loop) -> None:
    """Schedule `session.close()` on the loop (never blocks: a collector may run in any thread)."""
    if session.closed or io.pid != os.getpid() or not io.loop.is_running():
        return
    try:
        asyncio.run_coroutine_threadsafe(session.close(), io.loop)
    except RuntimeError:  # the loop stopped meanwhile
        pass


@atexit.register
def _close_at_exit() -> None:
    """Close every pool still open, and let the closes finish while the loop still runs."""
    io = _Loop._instance
    if io is None or io.pid != os.getpid():
        return
    for transport in list(_live):
        transport.close()
    try:
        io.run(asyncio.sleep(0.05), timeout=2)
    except Exception:  # noqa: BLE001 - best effort at exit
        pass
