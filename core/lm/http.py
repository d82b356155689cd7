"""`HttpClient`: the one HTTP transport every server backend (`openai`, `sglang`) uses.

Its I/O runs on the process's one event-loop thread (`pearl.lm.transport`: aiohttp
under the blocking API), so hundreds of calling threads cost little CPU.

What it does for every request, so that backends do not repeat it:

- sends the caller's W3C `traceparent` (and `tracestate`) header, injected from the
  current OpenTelemetry context with `opentelemetry.propagate.inject`, so a server
  that traces (SGLang with `--enable-trace`, vLLM) joins the caller's trace;
- applies a connect timeout and a read timeout (a hanging server becomes a
  `BackendError` after `timeout` seconds, never a hang);
- retries with exponential backoff on connection errors, HTTP 5xx and 429
  (`max_retries` extra attempts, waits `backoff * 2**attempt` seconds), never on
  4xx, never on a read timeout (the request may be running: retrying would double it);
- turns every failure into a `BackendError` whose message names the URL and the fix:
  the `unreachable` advice for a server that is not there, the server's own error
  message for a 4xx, "not JSON" for a malformed body.

Secrets: an API key is held in the client's headers only; it is never part of an error
message, a log line or a span attribute. A server that echoes the key back (in an error
body) or a URL with credentials (`http://user:KEY@host`) is masked by `pearl.redact`,
which every `PearlError` message and `HttpStatusError.detail` pass through.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable

from opentelemetry import propagate

from pearl.errors import BackendError
from pearl.lm import transport
from pearl.lm.transport import AsyncTransport, Reply
from pearl.redact import clean

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class HttpStatusError(BackendError):
    """The server answered with an error status (a 4xx, or a 5xx on every attempt);
    `status` and `detail` hold what it said."""

    def __init__(self, message: str, status: int, detail: str):
        super().__init__(message)
        self.status = status
        self.detail = clean(detail)  # a server may echo the request's Authorization header


def trace_headers() -> dict[str, str]:
    """The W3C trace-context headers of the current OpenTelemetry context (may be empty)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def server_message(response: Reply, limit: int = 300) -> str:
    """The error text a server put in its body (OpenAI and SGLang shapes), shortened."""
    try:
        data = response.json()
    except ValueError:
        text = response.text.strip().replace("\n", " ")
        return text[:limit] or response.reason_phrase
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:limit]
        if isinstance(err, str):
            return err[:limit]
        for key in ("message", "detail"):
            if data.get(key):
                return str(data[key])[:limit]
    return json.dumps(data)[:limit]


class HttpClient:
    """A thread-safe JSON-over-HTTP client with retries, timeouts and trace propagation.

    `base_url` is the server root the paths are joined to; `unreachable` is the advice
    used when nothing answers there (e.g. "start one with `pearl backend launch ...`").
    """

    def __init__(self, base_url: str, *, label: str, unreachable: str, timeout: float = 120.0,
                 connect_timeout: float = 5.0, max_retries: int = 3, backoff: float = 0.5,
                 headers: dict[str, str] | None = None, sleep: Callable[[float], None] = time.sleep):
        self.base_url = base_url.rstrip("/")
        self.label = label
        self.unreachable = unreachable
        self.timeout = float(timeout)
        self.max_retries = max(0, int(max_retries))
        self.backoff = float(backoff)
        self._sleep = sleep
        self._transport = AsyncTransport(timeout=self.timeout, connect_timeout=min(connect_timeout, self.timeout),
                                         headers=headers)
        self._lock = threading.Lock()
        self.requests_sent = 0

    def pause(self, seconds: float) -> None:
        """Wait `seconds` with the client's sleep (a backoff pause between a caller's own retries)."""
        if seconds > 0:
            self._sleep(seconds)

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def close(self) -> None:
        self._transport.close()

    def __deepcopy__(self, memo):  # an LM copy shares its connection pool
        return self

    # ------------------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None, *, timeout: float | None = None,
                retries: int | None = None, headers: dict[str, str] | None = None,
                retry_statuses: frozenset[int] | None = None) -> Any:
        """Send one request and return the decoded JSON body (see the module docstring).

        `retry_statuses` replaces `RETRY_STATUS` for this request: a caller that sends
        several prompts in one request passes `frozenset()`, so an error status comes back
        at once (as `HttpStatusError`) instead of resending work the server may have done.
        """
        retry_on = RETRY_STATUS if retry_statuses is None else retry_statuses
        url = self.url(path)
        attempts = 1 + (self.max_retries if retries is None else max(0, retries))
        last: str = ""
        last_status, last_detail = 0, ""
        for attempt in range(attempts):
            if attempt:
                self._sleep(self.backoff * (2 ** (attempt - 1)))
            sent_headers = {**trace_headers(), **(headers or {})}
            try:
                with self._lock:
                    self.requests_sent += 1
                response = self._transport.request(method, url, body, headers=sent_headers, timeout=timeout)
            except (transport.ConnectTimeout, transport.ReadTimeout) as exc:
                if isinstance(exc, transport.ConnectTimeout):
                    last = f"connecting to {url} timed out"
                    continue
                wait = timeout if timeout is not None else self.timeout
                raise BackendError(
                    f"the {self.label} at {self.base_url} did not answer {method} {path} within {wait:g} s: "
                    f"check that the server is not stuck or overloaded, or raise the timeout "
                    f"(--timeout SECONDS, or the backend option timeout)"
                ) from None
            except transport.TransportError as exc:  # nothing answered, or the connection broke
                last = f"{exc.__class__.__name__}: {exc}"
                continue
            if response.status_code in retry_on:
                last_status, last_detail = response.status_code, server_message(response)
                last = f"HTTP {last_status}: {last_detail}"
                continue
            if response.status_code >= 400:
                detail = server_message(response)
                raise HttpStatusError(
                    f"the {self.label} at {self.base_url} refused {method} {path} "
                    f"(HTTP {response.status_code}: {detail}): {self._advice_for(response)}",
                    response.status_code, detail,
                )
            try:
                return response.json()
            except ValueError:
                snippet = response.text[:120].replace("\n", " ")
                raise BackendError(
                    f"the {self.label} at {self.base_url} answered {method} {path} with a body that is not JSON "
                    f"({snippet!r}): is that URL really a {self.label}? check --backend-url"
                ) from None
        if last.startswith("HTTP"):
            raise HttpStatusError(
                f"the {self.label} at {self.base_url} kept failing on {method} {path} after {attempts} attempts "
                f"({last}): check the server's log", last_status, last_detail,
            )
        raise BackendError(f"{self.unreachable} ({last}; {attempts} attempts)")

    def _advice_for(self, response: Reply) -> str:
        if response.status_code in (401, 403):
            return "check the API key (PEARL_API_KEY or OPENAI_API_KEY)"
        if response.status_code == 404:
            return "check --backend-url (an OpenAI-compatible URL usually ends in /v1) and the model name"
        return "check the request parameters and the model name"

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any, **kw: Any) -> Any:
        return self.request("POST", path, body, **kw)

    def probe(self, path: str, timeout: float = 3.0) -> int | None:
        """The HTTP status of one quick GET (no retries), or None when nothing answers."""
        try:
            return self._transport.request("GET", self.url(path), headers=trace_headers(), timeout=timeout).status_code
        except transport.TransportError:
            return None
