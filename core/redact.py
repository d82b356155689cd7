"""Secrets never leave in a message: redaction of known secrets and URL credentials.

`redact(text)` returns `text` with

- every **known secret** replaced by `***`: values given to `register_secret` (a backend
  registers the API key it reads) and the values of environment variables whose names
  say they hold one (`*_KEY`, `*_TOKEN`, `*SECRET*`, `*PASSWORD*`), when at least
  `MIN_SECRET_CHARS` long and not a path;
- the **credentials of a URL** (`http://user:KEY@host` -> `http://***@host`);
- the token of a **bearer authorization** (`Bearer abc…` -> `Bearer ***`; 8 characters or more).

`clip(text)` bounds a message to `MAX_MESSAGE_CHARS`, saying how much was cut.

Where it applies: every `pearl.errors.PearlError` message (redacted and clipped when the
error is made), span statuses and exception events (`pearl.traces.spans.mark_error`), and
log records once `install_log_redaction()` has run (the `pearl` command does it at start).
"""

from __future__ import annotations

import logging
import os
import re
import threading

MIN_SECRET_CHARS = 6
MAX_MESSAGE_CHARS = 2000
MASK = "***"

_SECRET_NAME = re.compile(r"(_KEY|_TOKEN|PASSWD)$|SECRET|PASSWORD", re.IGNORECASE)
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@?#]+@")
_AUTH_VALUE = re.compile(r"(?i)\b(Bearer)\s+[A-Za-z0-9._~+/=\-]{8,}")

_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Redact `value` from every message from now on (no-op for None or values under `MIN_SECRET_CHARS`)."""
    if value and len(value) >= MIN_SECRET_CHARS:
        with _lock:
            _secrets.add(value)


def known_secrets() -> list[str]:
    """Registered secrets and secret-named environment values, longest first."""
    found = {v for k, v in os.environ.items()
             if _SECRET_NAME.search(k) and len(v) >= MIN_SECRET_CHARS and not v.startswith(("/", "~"))}
    with _lock:
        found |= _secrets
    return sorted(found, key=len, reverse=True)


def redact_url(url: str) -> str:
    """`url` without its user-info part (`scheme://user:pass@host` -> `scheme://***@host`)."""
    return _URL_USERINFO.sub(lambda m: m.group(1) + MASK + "@", url)


def redact(text: str) -> str:
    """`text` with known secrets, URL credentials and authorization tokens masked (see the module docstring)."""
    if not text:
        return text
    for secret in known_secrets():
        if secret in text:
            text = text.replace(secret, MASK)
    text = redact_url(text)
    return _AUTH_VALUE.sub(lambda m: f"{m.group(1)} {MASK}", text)


def clip(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`text` cut to about `limit` characters, ending with how many were left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters not shown)"


def clean(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`redact` then `clip`: what every user-facing message goes through."""
    return clip(redact(text), limit)


class _RedactingFactory:
    """A `logging` record factory whose records carry redacted, clipped messages."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, *args, **kwargs) -> logging.LogRecord:
        record = self.inner(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed log call: leave it to logging's own error path
            return record
        record.msg, record.args = clean(message, 4 * MAX_MESSAGE_CHARS), None
        return record


def install_log_redaction() -> None:
    """Make every log record of this process redacted and clipped (idempotent)."""
    factory = logging.getLogRecordFactory()
    if not isinstance(factory, _RedactingFactory):
        logging.setLogRecordFactory(_RedactingFactory(factory))
