"""The request and result types every pipeline speaks.

A `Conversation` goes in, a `Result` comes out. Steps exchange their own pydantic
models through the run state (see `pearl.state`); the `Result` keeps each step's
output as JSON so it can be written to disk and read back.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Role = Literal["user", "assistant"]
M = TypeVar("M", bound=BaseModel)


def type_name(cls: type) -> str:
    """The fully qualified name a `StepRecord` stores for an output type: `module.QualName`."""
    return f"{cls.__module__}.{cls.__qualname__}"


class Message(BaseModel):
    """One turn of the conversation."""

    model_config = ConfigDict(extra="forbid")

    role: Role
    content: str

    @field_validator("content")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("message content is empty: write the message text")
        return value


class Conversation(BaseModel):
    """The user's conversation so far; the last message is the user's turn to answer."""

    model_config = ConfigDict(extra="forbid")

    messages: list[Message]
    system: str | None = None
    language: str | None = Field(default=None, description="BCP-47 tag, e.g. 'en', 'zh'; None = detect")
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _ends_with_user(self) -> "Conversation":
        if not self.messages:
            raise ValueError("the conversation has no messages: add at least one user message")
        if self.messages[-1].role != "user":
            raise ValueError("the last message must be the user's: the pipeline answers the user's last turn")
        return self

    @classmethod
    def from_text(cls, text: str, **fields: Any) -> "Conversation":
        return cls(messages=[Message(role="user", content=text)], **fields)

    @property
    def user_words(self) -> str:
        """Everything the user said, one message per line (no assistant or system text)."""
        return "\n".join(m.content for m in self.messages if m.role == "user")

    @property
    def last_user_message(self) -> str:
        return self.messages[-1].content

    def transcript(self) -> str:
        """The conversation as plain text, one `role: content` line per turn."""
        return "\n".join(f"{m.role}: {m.content}" for m in self.messages)


class Usage(BaseModel):
    """Language-model usage, summed over calls."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    seconds: float = Field(default=0.0, description="wall time spent inside backend calls")

    def add(self, other: "Usage") -> "Usage":
        return Usage(
            calls=self.calls + other.calls,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            seconds=self.seconds + other.seconds,
        )


class StepRecord(BaseModel):
    """What one step produced, and what it cost."""

    step: str = Field(description="the step's id in the pipeline")
    use: str = Field(description="the registered step plugin it ran")
    slot: str = Field(description="the run-state slot it wrote")
    type: str = Field(description="the pydantic type of its output, `module.QualName` (`type_name`); "
                                  "files written before 0.2 hold the bare class name")
    output: dict[str, Any]
    started: float = Field(description="seconds since the run started")
    seconds: float
    usage: Usage = Field(default_factory=Usage)
    program: str | None = Field(default=None, description="the compiled program file the step ran, if any")


class Result(BaseModel):
    """The outcome of one pipeline run."""

    pipeline: str
    response: str
    reasoning: str | None = None
    steps: dict[str, StepRecord] = Field(default_factory=dict)
    usage: Usage = Field(default_factory=Usage)
    seconds: float = 0.0
    backend: str | None = None
    model: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    def output(self, step: str) -> dict[str, Any]:
        """The JSON output of step `step`."""
        return self.steps[step].output

    def outputs_of(self, model: type[M]) -> list[M]:
        """The outputs of every step whose output type is `model`, validated, in step order.

        Steps are matched on the fully qualified type name the runner records
        (`type_name(model)`); a record holding only the bare class name (older result
        files) matches on that. Raises pydantic's `ValidationError` when a matched output
        does not fit `model` (a file from another version).
        """
        full, bare = type_name(model), model.__name__
        return [model.model_validate(r.output) for r in self.steps.values() if r.type in (full, bare)]

    def output_of(self, model: type[M]) -> M | None:
        """The first output of type `model` (see `outputs_of`), or None when no step wrote one."""
        found = self.outputs_of(model)
        return found[0] if found else None


class RunIdentity(BaseModel):
    """What a run's answers depend on besides their conversations: the pipeline, the `--set`s applied
    to it, the compiled folder loaded and the task model (`Session.identity()`).

    Results files store it with every record, so that resuming one with other settings is refused
    instead of mixing two runs' answers in one file.
    """

    pipeline: str
    set: list[str] = Field(default_factory=list)
    compiled: str | None = None
    model: str | None = None

    def mismatch(self, recorded: dict[str, Any]) -> str:
        """"" when the fields present in `recorded` (a stored run) equal this run's; else which differ, both ways."""
        differ = [k for k in type(self).model_fields if k in recorded and recorded[k] != getattr(self, k)]
        if not differ:
            return ""

        def shown(value: Any) -> str:
            return (" ".join(value) or "none") if isinstance(value, list) else "none" if value is None else str(value)

        return (", ".join(f"{k} {shown(recorded[k])}" for k in differ) + "; this run: "
                + ", ".join(f"{k} {shown(getattr(self, k))}" for k in differ))


class Answer(BaseModel):
    """The contract of a pipeline's answer slot: a response and optional reasoning.

    Any step output type with these two fields can be a pipeline's `answer`.
    """

    response: str
    reasoning: str | None = None
