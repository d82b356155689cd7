"""One span per plugin hook call, through pluggy's hook-call monitoring.

`trace_hook_calls(pm)` installs `before`/`after` monitors on a `pluggy.PluginManager`
(`PluginManager.add_hookcall_monitoring`, as datasette does for its plugins) and returns
pluggy's undo function. Every call of a hook that has at least one implementation gets
a span `hook <name>` (attributes `pearl.hook.name`, `pearl.hook.plugins`), current while
the implementations run, ERROR when one raises. Hooks with no implementation cost nothing.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Callable

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from pearl.traces import semconv as sc
from pearl.traces.spans import mark_error, tracer

# Open hook spans of this context, innermost last: (span, context token) or None for
# a hook call that opened no span. before/after run in the caller's thread, nested.
_open: ContextVar[tuple] = ContextVar("pearl_hook_spans", default=())


def _before(hook_name: str, hook_impls, kwargs) -> None:
    entry = None
    if hook_impls:
        span = tracer().start_span(f"hook {hook_name}", attributes={
            sc.PEARL_HOOK_NAME: hook_name,
            sc.PEARL_HOOK_PLUGINS: [impl.plugin_name for impl in hook_impls],
        })
        entry = (span, otel_context.attach(trace.set_span_in_context(span)))
    _open.set(_open.get() + (entry,))


def _after(outcome, hook_name: str, hook_impls, kwargs) -> None:
    stack = _open.get()
    if not stack:
        return
    _open.set(stack[:-1])
    entry = stack[-1]
    if entry is None:
        return
    span, token = entry
    otel_context.detach(token)
    exc = outcome.exception
    if exc is not None:
        if isinstance(exc, Exception):
            mark_error(span, exc)
        else:
            span.set_status(Status(StatusCode.ERROR, f"interrupted ({exc.__class__.__name__})"))
    span.end()


def trace_hook_calls(pm: Any) -> Callable[[], None]:
    """Trace every hook call of plugin manager `pm`; returns the undo function."""
    return pm.add_hookcall_monitoring(_before, _after)
