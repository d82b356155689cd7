"""The step contract: what a pipeline step plugin is.

A step is a subclass of `Step`, registered with `register_steps`. The pipeline
compiler instantiates it once per loaded pipeline and calls `run` once per request,
possibly from several threads at once (batched runs), so `run` must only read its
inputs and its own configuration.

Class attributes (the contract)::

    name    the key pipelines use: `use = "<name>"`
    Params  pydantic model of the step's TOML parameters (unknown keys are errors)
    inputs  run-state slot -> type the step reads; the slot "conversation" always exists
    output  (slot, type) the step writes; the type is a pydantic model
    uses_lm whether the step calls a language model

A step that calls a language model builds its DSPy module in `__init__` and exposes it
as `self.program`, so optimizers can compile it and pipelines can load a compiled
state into it (`program = "PATH"` in the step's table).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

from pydantic import BaseModel, ConfigDict

from pearl.types import Conversation


class NoParams(BaseModel):
    """For steps without parameters: any key given is an error."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class StepContext:
    """What a step may look at when it is built: its id and the plugin host."""

    step_id: str
    host: Any
    pipeline: str = ""
    options: dict[str, Any] = field(default_factory=dict)


class RunState:
    """The typed values of one run: `conversation` plus one slot per finished step."""

    def __init__(self, conversation: Conversation):
        self._values: dict[str, BaseModel] = {"conversation": conversation}

    @property
    def conversation(self) -> Conversation:
        return self._values["conversation"]  # type: ignore[return-value]

    def get(self, slot: str) -> BaseModel:
        return self._values[slot]

    def set(self, slot: str, value: BaseModel) -> None:
        self._values[slot] = value

    def __contains__(self, slot: str) -> bool:
        return slot in self._values

    def slots(self) -> list[str]:
        return list(self._values)


class Step:
    """Base class of every pipeline step (see the module docstring for the contract)."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Params: ClassVar[type[BaseModel]] = NoParams
    inputs: ClassVar[Mapping[str, type[BaseModel]]] = {}
    output: ClassVar[tuple[str, type[BaseModel]]]
    uses_lm: ClassVar[bool] = True

    program: Any = None

    def __init__(self, params: BaseModel, context: StepContext):
        self.params = params
        self.context = context

    def run(self, state: RunState) -> BaseModel:
        """Compute this step's output from `state`; raise `pearl.errors.StepError` on failure."""
        raise NotImplementedError

    @property
    def output_slot(self) -> str:
        return self.output[0]

    @property
    def output_type(self) -> type[BaseModel]:
        return self.output[1]
