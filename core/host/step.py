"""The step contract: what a pipeline step plugin is.

A step is a subclass of the abstract base class `Step`, registered with `register_steps`
(`register(MyStep)`). Pipelines name it by `name` (`use = "<name>"` in a step's table).

What a subclass must provide (class attributes, and `run`)::

    name     the registry key pipelines use; unique among installed plugins
    output   (slot, ModelClass): the run-state slot the step writes and the pydantic
             model type of its value; `run` must return an instance of exactly that type
    run(state) -> BaseModel
             compute the output from `state`

What it may provide::

    Params       pydantic model of the step's TOML parameters (default `NoParams`; give
                 it `extra="forbid"` so misspelled keys are errors)
    inputs       slot -> model type the step reads from `state`; the compiler checks that
                 an earlier step (or the conversation, slot "conversation") provides each
                 (a step whose parameters name a slot sets its own in `__init__`)
    description  one line, shown by `pearl plugins`
    uses_lm      False for a step that never calls a language model (shown by `pearl
                 plugins`; default True)
    program      a DSPy module built in `__init__`, for steps that call an LM, so that
                 optimizers can compile it and a pipeline can load a compiled state into
                 it (`program = "PATH"` in the step's table)

What it may assume:

- `__init__(params, context)` is called once per compiled pipeline, in the thread that
  loads it, with validated `params` and a `StepContext` (step id, pipeline name, the host).
  It may build DSPy programs and look things up in the host (taxonomies, judges); it must
  not call a language model.
- `run(state)` is called once per request, after every step it depends on has finished,
  inside `dspy.context(lm=<the step's LM role>)` — so DSPy modules find their LM — and
  possibly from several threads at once (batched runs), so it must only read its inputs
  and its own configuration. Every slot in `inputs` is present in `state`.
- Failures: raise `pearl.errors.StepError` (or any `PearlError`) with a message naming
  the problem; the runner wraps any other exception in a `StepError` naming the step.
  Returning a value of the wrong type is a `StepError`.
- The runner meters LM usage, times the step, records a span, and calls the observer hooks
  around `run`; a step does none of that itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from pydantic import BaseModel, ConfigDict

from pearl.types import Conversation


class NoParams(BaseModel):
    """For steps without parameters: any key given is an error."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class StepContext:
    """What a step may look at when it is built: its id, its pipeline's name and the plugin host."""

    step_id: str
    host: Any
    pipeline: str = ""


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


class Step(ABC):
    """Base class of every pipeline step (see the module docstring for the contract)."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Params: ClassVar[type[BaseModel]] = NoParams
    inputs: ClassVar[Mapping[str, type[BaseModel]]] = {}
    output: ClassVar[tuple[str, type[BaseModel]]]
    uses_lm: ClassVar[bool] = True

    program: Any = None
    compiled_from: str | None = None  # the compiled state file loaded into `program`, if any (set by the loader)

    def __init__(self, params: BaseModel, context: StepContext):
        self.params = params
        self.context = context

    @abstractmethod
    def run(self, state: RunState) -> BaseModel:
        """Compute this step's output (an `output[1]` instance) from `state`; raise `StepError` on failure."""

    @property
    def output_slot(self) -> str:
        return self.output[0]

    @property
    def output_type(self) -> type[BaseModel]:
        return self.output[1]
