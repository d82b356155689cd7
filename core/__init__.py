"""Pearlpoint: constructive safety alignment as pluggable reasoning programs.

The import package is `pearl`. Public API::

    from pearl import Conversation, run
    result = run("My landlord won't return my deposit, what can I do?")
"""

__version__ = "0.1.0"

from pearl.errors import PearlError  # noqa: E402
from pearl.host.hookspecs import hookimpl  # noqa: E402
from pearl.types import Conversation, Message, Result  # noqa: E402


def run(conversation, pipeline: str = "minimal", **options) -> Result:
    """Run `pipeline` on `conversation` (a string, a list of messages or a Conversation)."""
    from pearl.runtime.session import run as _run

    return _run(conversation, pipeline=pipeline, **options)


__all__ = ["hookimpl", "Conversation", "Message", "PearlError", "Result", "run", "__version__"]
