"""One error family for everything the user can fix.

Every `PearlError` carries a message that names the problem *and* the fix; the CLI
prints it on one line and exits with code 2, never with a traceback.
"""

from __future__ import annotations

from pearl.redact import clean


class PearlError(Exception):
    """Base of all errors the user can act on. `str(err)` is the full advice.

    The message is cleaned when the error is made (`pearl.redact.clean`): known secrets
    and URL credentials are masked, and it is cut to `pearl.redact.MAX_MESSAGE_CHARS`, so
    neither a key echoed by a server nor a 300 MB cell reaches a terminal, a results file
    or a trace.
    """

    exit_code = 2

    def __init__(self, *args):
        if args and isinstance(args[0], str):
            args = (clean(args[0]), *args[1:])
        super().__init__(*args)


class InputError(PearlError):
    """The conversation or a command-line value is malformed."""


class PipelineError(PearlError):
    """A pipeline file is invalid: unknown step, cycle, missing input, bad parameter."""


class PluginError(PearlError):
    """A plugin failed to load or registered a name that is already taken."""


class BackendError(PearlError):
    """A language-model backend could not be created or reached."""


class StepError(PearlError):
    """A step failed while running; the message names the step."""

    def __init__(self, step: str, message: str):
        self.step = step
        super().__init__(f"step '{step}': {message}")


class StepInputError(StepError, InputError):
    """A step's own input cannot be processed (its prompt does not fit the model's context,
    say): a `StepError` naming the step that stays an `InputError`."""


class DatasetError(PearlError):
    """A dataset file is missing, empty or malformed; the message names the file and column."""
