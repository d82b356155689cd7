"""Declarative pipelines: a TOML file validated by pydantic, compiled into a DAG.

File format::

    name = "minimal"
    description = "one line"
    answer = "response"            # run-state slot holding the final answer

    [backend]                      # optional defaults; CLI and environment override
    name = "llamacpp"

    [steps.screen]
    use = "screen"                 # a registered step plugin

    [steps.respond]
    use = "respond"
    after = ["screen"]             # steps that must finish first
    lm = "task"                    # which LM role the step uses: "task" or "judge"
    program = "compiled/respond.json"  # optional compiled DSPy state
    max_words = 200                # any other key is a parameter of the step

    [compiled]                     # optional: compiled folders (`pearl optimize --out`) per model,
    "qwen2.5-coder-1.5b" = "compiled/qwen2.5-coder-1.5b"   # loaded when the task LM is that model

A `[compiled]` entry is keyed by the model's name as its backend reports it (`pearl run`
prints it: `llamacpp/qwen2.5-coder-1.5b`) or by that name without the backend's prefix
(`qwen2.5-coder-1.5b`, the catalogue name); the full name wins when both are listed. The
folder is relative to the pipeline file. `pearl.runtime.session.open_session` loads it
unless the run names its own folder, or `none`.

Every error names the file and the step, and says what to change.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pearl.host.backend import BackendSettings
from pearl.runtime.overrides import apply_overrides, parse_overrides
from pearl.errors import InputError, PipelineError, PluginError
from pearl.host.step import Step, StepContext

RESERVED_STEP_KEYS = ("use", "after", "lm", "program")
LM_ROLES = ("task", "judge")


class StepSpec(BaseModel):
    """One `[steps.<id>]` table; keys other than the reserved ones are parameters."""

    model_config = ConfigDict(extra="allow")

    use: str
    after: list[str] = Field(default_factory=list)
    lm: str = "task"
    program: str | None = None

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class PipelineSpec(BaseModel):
    """The whole file."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    answer: str = "response"
    backend: BackendSettings = Field(default_factory=BackendSettings)
    steps: dict[str, StepSpec]
    compiled: dict[str, str] = Field(default_factory=dict,
                                     description="model name -> compiled folder loaded for that model")


@dataclass
class Pipeline:
    """A validated, compiled pipeline: step instances and their dependency DAG."""

    spec: PipelineSpec
    source: str
    graph: nx.DiGraph
    steps: dict[str, Step]
    overrides: tuple = ()  # the `--set` overrides applied to its document (`pearl.runtime.overrides`)

    @property
    def name(self) -> str:
        return self.spec.name

    def compiled_for(self, model: str | None) -> Path | None:
        """The compiled folder this pipeline file names for `model` (`[compiled]`), or None.

        The entry for the full name (`llamacpp/tiny`) wins, else the one for the name after
        the backend's prefix (`tiny`). A relative folder is resolved beside the pipeline
        file; a named folder that is missing is a `PipelineError`, never a silent run
        without its programs.
        """
        names = [model or "", *([model.split("/", 1)[1]] if model and "/" in model else [])]
        key = next((name for name in names if name in self.spec.compiled), None)
        if key is None:
            return None
        folder = self.spec.compiled[key]
        path = Path(folder)
        if not path.is_absolute() and Path(self.source).is_file():
            path = Path(self.source).parent / path
        if not path.is_dir():
            raise PipelineError(f"{self.source}: [compiled] names '{folder}' for model '{key}', which is not a folder: "
                                f"fix the entry, or run with --compiled none")
        return path

    def order(self) -> list[str]:
        """A deterministic topological order (ties broken by step id)."""
        return list(nx.lexicographical_topological_sort(self.graph))


def shipped_pipelines() -> dict[str, Path]:
    """Name → path of the pipelines that ship with the package."""
    folder = resources.files("pearl.pipelines")
    return {Path(p.name).stem: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".toml")}


def resolve(ref: str) -> Path:
    """A shipped pipeline name, or a path to a TOML file."""
    shipped = shipped_pipelines()
    if ref in shipped:
        return shipped[ref]
    path = Path(ref)
    if path.suffix == ".toml" or path.exists():
        if path.is_dir():
            raise PipelineError(f"pipeline '{ref}' is a folder: pass the .toml file inside it")
        if not path.is_file():
            raise PipelineError(f"pipeline file '{ref}' does not exist: check the path")
        return path
    raise PipelineError(
        f"unknown pipeline '{ref}': shipped pipelines are {', '.join(sorted(shipped))}; or pass a path to a .toml file"
    )


def _format_validation(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(x) for x in err["loc"]) or "(top level)"
        parts.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def cycle_message(source: str, loop: list[str], shown: int = 8) -> str:
    """The error for steps `loop[0] -> loop[1] -> ... -> loop[0]`: the cycle only, at most `shown` steps named."""
    names = loop + [loop[0]]
    if len(loop) > shown:
        half = shown // 2
        names = names[:half] + [f"… {len(loop) - shown} more …"] + names[-half - 1:]
    return (f"{source}: {len(loop)} steps form a cycle ({' -> '.join(names)}): remove one of these `after` "
            f"entries, e.g. '{loop[-1]}' from the `after` of step '{loop[0]}'")


def load(ref: str, host, overrides: list | tuple = ()) -> Pipeline:
    """Load, validate and compile a pipeline from a shipped name or a file path, with `overrides`
    (`pearl.runtime.overrides.Override`s) set on its steps' parameters first."""
    path = resolve(ref)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PipelineError(f"pipeline file '{path}' cannot be read ({exc.strerror or exc}): check its permissions") from None
    try:
        text = raw.decode("utf-8-sig")  # an editor's byte-order mark is dropped
    except UnicodeDecodeError as exc:  # TOML files are UTF-8 by definition
        raise PipelineError(f"{path}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1}): "
                            f"save the pipeline file as UTF-8") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PipelineError(f"{path}: not valid TOML ({exc}): fix the syntax") from None
    applied = apply_overrides(data, list(overrides), host)
    try:
        pipeline = compile_spec(data, host, source=str(path))
    except PipelineError as exc:  # a value given by --set may be the cause: name them
        if not applied:
            raise
        raise PipelineError(f"{exc} (with --set {' '.join(str(o) for o in applied)})") from None
    pipeline.overrides = tuple(applied)
    return pipeline


def checked_overrides(pipelines: str | list[str], sets: list[str], host) -> list:
    """`--set` items parsed and tried on `pipelines` (one, or those a command runs in turn) before any
    model loads: a malformed item, an unknown parameter or a step no pipeline has is an `InputError`
    that names it. With a list of pipelines, an item applies to those that have its step."""
    names = [pipelines] if isinstance(pipelines, str) else list(pipelines)
    overrides = parse_overrides(sets)
    if overrides:
        loaded = [load(name, host, overrides) for name in names]
        applied = [o for pipeline in loaded for o in pipeline.overrides]  # a list: values may be lists
        for o in overrides:
            if o in applied:
                continue
            if isinstance(pipelines, str):
                raise InputError(f"--set {o}: pipeline '{loaded[0].name}' has no step '{o.step}'; its steps are "
                                 f"{', '.join(loaded[0].spec.steps)}")
            raise InputError(f"--set {o}: no listed pipeline ({', '.join(names)}) has a step '{o.step}'")
    return overrides


def compile_spec(data: dict[str, Any], host, source: str = "<pipeline>") -> Pipeline:
    """Validate a parsed pipeline document and compile it (see the module docstring)."""
    try:
        spec = PipelineSpec.model_validate(data)
    except ValidationError as exc:
        raise PipelineError(f"{source}: {_format_validation(exc)}") from None
    if not spec.steps:
        raise PipelineError(f"{source}: the pipeline has no steps: add at least one [steps.<id>] table")

    graph = nx.DiGraph()
    for step_id, step_spec in spec.steps.items():
        graph.add_node(step_id)
        for dep in step_spec.after:
            if dep not in spec.steps:
                raise PipelineError(
                    f"{source}: step '{step_id}' runs after '{dep}', which is not a step of this pipeline: "
                    f"steps are {', '.join(spec.steps)}"
                )
            graph.add_edge(dep, step_id)
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        raise PipelineError(cycle_message(source, [a for a, _ in cycle]))

    steps: dict[str, Step] = {}
    for step_id in nx.lexicographical_topological_sort(graph):
        step_spec = spec.steps[step_id]
        try:
            step_cls = host.step(step_spec.use)
        except PluginError as exc:
            raise PipelineError(f"{source}: step '{step_id}': {exc}") from None
        if step_spec.lm not in LM_ROLES:
            raise PipelineError(f"{source}: step '{step_id}': lm = '{step_spec.lm}' is not one of {', '.join(LM_ROLES)}")
        try:
            params = step_cls.Params.model_validate(step_spec.params)
        except ValidationError as exc:
            raise PipelineError(f"{source}: step '{step_id}' ({step_spec.use}): bad parameter: {_format_validation(exc)}") from None
        context = StepContext(step_id=step_id, host=host, pipeline=spec.name)
        try:
            step = step_cls(params, context)
        except PipelineError:
            raise
        except Exception as exc:
            raise PipelineError(f"{source}: step '{step_id}' ({step_spec.use}) could not be built: {exc}") from exc
        if step_spec.program:
            load_program(step, step_spec.program, source, step_id)
        steps[step_id] = step

    _check_slots(spec, graph, steps, source)
    return Pipeline(spec=spec, source=source, graph=graph, steps=steps)


def load_program(step: Step, program_path: str, source: str, step_id: str) -> None:
    """Load a compiled DSPy state into a step's program (see `pearl.runtime.compiled.load_into_step`).

    A relative path is looked up beside the pipeline file first, then in the working folder.
    """
    from pearl.runtime.compiled import load_into_step

    path = Path(program_path)
    if not path.is_absolute() and Path(source).is_file():
        beside = Path(source).parent / path
        if beside.exists():
            path = beside
    load_into_step(step, path, where=source, step_id=step_id)


def _check_slots(spec: PipelineSpec, graph: nx.DiGraph, steps: dict[str, Step], source: str) -> None:
    writers: dict[str, str] = {}
    for step_id, step in steps.items():
        slot = step.output_slot
        if slot == "conversation":
            raise PipelineError(f"{source}: step '{step_id}' writes the reserved slot 'conversation'")
        if slot in writers:
            raise PipelineError(
                f"{source}: steps '{writers[slot]}' and '{step_id}' both write '{slot}': keep one of them"
            )
        writers[slot] = step_id
    for step_id, step in steps.items():
        ancestors = nx.ancestors(graph, step_id)
        for slot, expected in step.inputs.items():
            if slot == "conversation":
                continue
            writer = writers.get(slot)
            if writer is None:
                raise PipelineError(
                    f"{source}: step '{step_id}' ({step.name}) reads '{slot}', which no step of this pipeline writes: "
                    f"add a step that produces it"
                )
            if writer not in ancestors:
                raise PipelineError(
                    f"{source}: step '{step_id}' reads '{slot}', written by step '{writer}', which does not run before it: "
                    f"add after = [\"{writer}\"] to step '{step_id}'"
                )
            produced = steps[writer].output_type
            if not issubclass(produced, expected):
                raise PipelineError(
                    f"{source}: step '{step_id}' reads '{slot}' as {expected.__name__}, "
                    f"but step '{writer}' writes a {produced.__name__}"
                )
    if spec.answer not in writers:
        raise PipelineError(f"{source}: answer = '{spec.answer}' but no step writes that slot: name a step's output")
    answer_type = steps[writers[spec.answer]].output_type
    if "response" not in answer_type.model_fields:
        raise PipelineError(
            f"{source}: answer slot '{spec.answer}' holds a {answer_type.__name__}, which has no `response` field"
        )
