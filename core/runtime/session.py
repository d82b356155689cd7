"""The Python API: build a session (pipeline + backends) once, run many conversations."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pearl.host.backend import BackendSettings, resolve_settings
from pearl.io.conversations import to_conversation
from pearl.errors import BackendError, InputError, PluginError
from pearl.host.manager import Host, get_host
from pearl.lm.metered import MeteredLM, instrument
from pearl.pipelines import NO_COMPILED
from pearl.runtime.pipeline import Pipeline, load
from pearl.runtime.runner import Runner
from pearl.types import Conversation, Result, RunIdentity

# Room the prompts' instructions and the answer need beside the conversation itself.
PROMPT_HEADROOM_TOKENS = 1024


def make_lm(settings: BackendSettings, host: Host) -> MeteredLM:
    """The LM of the backend named in `settings`: its `create(settings)`, wrapped in
    `pearl.lm.metered.MeteredLM` so that usage and spans work for any `dspy.BaseLM`.

    Every LM role is made here: the task LM, the judge LM, the optimizer's LMs.
    """
    try:
        backend_cls = host.backend(settings.name)
    except PluginError as exc:
        raise BackendError(f"{exc} (choose one with --backend)") from None
    lm = backend_cls().create(settings)
    if lm is None:
        raise BackendError(f"backend '{settings.name}' ({backend_cls.__name__}.create) returned None: "
                           f"it must return a dspy.BaseLM")
    return instrument(lm)


@dataclass
class Session:
    """A loaded pipeline bound to its language models; reusable across requests."""

    pipeline: Pipeline
    runner: Runner
    settings: BackendSettings
    compiled: str | None = None  # the compiled folder loaded into the pipeline's steps, if any

    def identity(self) -> RunIdentity:
        """What this session's answers depend on besides their conversations (see `RunIdentity`)."""
        return RunIdentity(pipeline=self.pipeline.name, set=[str(o) for o in self.pipeline.overrides],
                           compiled=self.compiled, model=getattr(self.runner.lms["task"], "model", None))

    def run(self, conversation: Any) -> Result:
        conv = to_conversation(conversation)
        self.check_fits(conv)
        return self.runner.run(conv)

    def run_batch(self, input_path, out_path, *, concurrency: int = 4, progress: bool = False):
        """Run a JSONL file of conversations, K at once, results appended as they finish
        (resumable; see `pearl.runtime.batch`). Returns a `pearl.runtime.batch.BatchSummary`."""
        from pearl.runtime.batch import run_batch

        return run_batch(self, input_path, out_path, concurrency=concurrency, progress=progress)

    def check_fits(self, conv: Conversation) -> None:
        lm = self.runner.lms["task"]
        count = getattr(lm, "count_tokens", None)
        n_ctx = getattr(lm, "n_ctx", None)
        if count is None or n_ctx is None:
            return
        text = conv.transcript() + (conv.system or "")
        if len(text) < n_ctx:  # a token is at least one character: cheap accept
            return
        tokens = count(text)
        if tokens + PROMPT_HEADROOM_TOKENS > n_ctx:
            raise InputError(
                f"the conversation is {tokens} tokens, too long for the model's context of {n_ctx} "
                f"(with {PROMPT_HEADROOM_TOKENS} tokens for instructions and answer): shorten it or raise --n-ctx"
            )


def open_session(pipeline: str = "minimal", *, backend: str | None = None, model: str | None = None,
                 url: str | None = None, seed: int | None = None,
                 judge: BackendSettings | Mapping[str, Any] | None = None,
                 host: Host | None = None, compiled: str | None = None, overrides: list | tuple = (),
                 **backend_options: Any) -> Session:
    """Load `pipeline` and create its backends.

    The task LM's settings: `resolve_settings` of the pipeline file's `[backend]` table
    with the explicit arguments and `PEARL_BACKEND` / `PEARL_BACKEND_URL` / `PEARL_MODEL`.
    `judge`: None (judges use the task LM), `BackendSettings` used as given, or a mapping
    of choices (`name`, `model`, `url`, sampling fields; None = not chosen) resolved
    against the task's settings (`resolve_settings(task, environment=False, ...)`), so a
    judge on another backend never inherits the task's model path or URL.
    `compiled` is a folder written by `pearl optimize`: every step in its manifest is loaded.
    Without one, the folder the pipeline file names for the task LM's model (`[compiled]`,
    `Pipeline.compiled_for`) is loaded; `compiled="none"` runs the steps' own programs.
    `session.compiled` is the folder loaded (None: none).
    `overrides` (`pearl.runtime.overrides.Override`s, `--set`) are set on the pipeline's step
    parameters before it compiles; `session.pipeline.overrides` holds those that applied.
    """
    host = host or get_host()
    loaded = load(pipeline, host, overrides)
    settings = resolve_settings(loaded.spec.backend, name=backend, model=model, url=url, seed=seed, **backend_options)
    lms = {"task": make_lm(settings, host)}
    if compiled is None:
        compiled = loaded.compiled_for(getattr(lms["task"], "model", None))
    elif str(compiled).strip().lower() == NO_COMPILED:
        compiled = None
    if compiled:
        from pearl.runtime.compiled import apply_compiled

        apply_compiled(loaded, compiled)
    if isinstance(judge, Mapping):
        judge = resolve_settings(settings, environment=False, **judge)
    if judge is not None:
        lms["judge"] = make_lm(judge, host)
    runner = Runner(loaded, lms, host, backend_name=settings.name)
    return Session(pipeline=loaded, runner=runner, settings=settings, compiled=str(compiled) if compiled else None)


def run(conversation: Any, pipeline: str = "minimal", **options: Any) -> Result:
    """One-shot convenience: open a session and run one conversation."""
    return open_session(pipeline, **options).run(conversation)
