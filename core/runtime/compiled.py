"""Compiled programs: a step's optimized DSPy state on disk, and the manifest beside it.

A compiled folder (what `pearl optimize --out DIR` writes) holds::

    DIR/manifest.json        # CompiledManifest: pipeline, optimizer, metric, scores, versions, date
    DIR/<step id>.json       # the step program's DSPy state (`program.save(path)`)

Each state file is self-describing too: DSPy's own `metadata` table gets a `pearl`
entry (`ProgramStamp`: step id, step plugin, signature fingerprint), so a file copied
out of its folder and named with `program = "PATH"` in a pipeline is still checked.

The contract for loading (`load_into_step`): a program compiled for another step
plugin, or for a program whose signatures differ (fields added, removed, renamed or
retyped; instructions and demos may differ, that is what optimizers change), is a
`PipelineError` that names both, never a silent partial load.

A state file is data, never configuration: any `lm` entry in it (DSPy saves a
predictor's own LM settings there: provider, model, API base) is dropped on loading and
never written on saving, so a compiled program always runs on the session's backend
(`--backend`), never on a provider a file names. The files a manifest lists must lie
inside its folder (no absolute paths, no `..`, no symlink out of it).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import dspy
from pydantic import BaseModel, Field, ValidationError

from pearl.errors import PipelineError

MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = 1


class ProgramStamp(BaseModel):
    """What a saved state was compiled for (stored under `metadata.pearl` in the state file)."""

    step: str = Field(description="the step id in the pipeline it was compiled in")
    use: str = Field(description="the registered step plugin it belongs to")
    fingerprint: str = Field(description="signature_fingerprint(program) at compile time")


class CompiledStep(BaseModel):
    """One compiled step in a manifest."""

    step: str
    use: str
    file: str = Field(description="state file name, relative to the manifest's folder")
    fingerprint: str
    optimizer: str
    metric: str
    score_before: float | None = None
    score_after: float | None = None
    demos: int = Field(default=0, description="few-shot demos in the compiled state, over all predictors")
    seconds: float = Field(default=0.0, description="wall time of the optimizer run")
    settings: dict[str, Any] = Field(default_factory=dict, description="the optimizer's budget settings")


class CompiledManifest(BaseModel):
    """`manifest.json` of a compiled folder."""

    format: int = MANIFEST_FORMAT
    pipeline: str
    pipeline_source: str = ""
    created: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    task_model: str | None = None
    judge_model: str | None = None
    trainset: str | None = None
    valset: str | None = None
    overrides: list[str] = Field(default_factory=list, description="the `--set STEP.PARAM=VALUE` applied when compiling")
    versions: dict[str, str] = Field(default_factory=dict)
    steps: dict[str, CompiledStep] = Field(default_factory=dict)


def signature_fingerprint(program: dspy.Module) -> str:
    """A short hash of every predictor's name and typed input/output fields (not instructions or demos)."""
    parts = []
    for name, predictor in program.named_predictors():
        sig = predictor.signature
        fields = [
            (field_name, "in" if field_name in sig.input_fields else "out", _type_name(info.annotation))
            for field_name, info in sig.fields.items()
        ]
        parts.append([name, fields])
    blob = json.dumps(parts, sort_keys=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) if isinstance(annotation, type) else str(annotation)


def dependency_versions() -> dict[str, str]:
    """Versions that decide whether a compiled state still fits: Python, DSPy, Pearlpoint, pydantic."""
    import platform

    import pydantic

    import pearl

    return {"python": platform.python_version(), "dspy": dspy.__version__, "pearlpoint": pearl.__version__,
            "pydantic": pydantic.__version__}


def drop_lm_settings(state: dict[str, Any]) -> list[str]:
    """Set every predictor's `lm` entry in a DSPy program state to None; returns where one was found.

    A predictor state is a mapping with a `signature` (DSPy's `Predict.dump_state`); the
    state of a module maps predictor names to them, and a bare `Predict` is one itself.
    """
    found = []
    candidates = [("self", state)] + [(k, v) for k, v in state.items() if isinstance(v, dict)]
    for name, own in candidates:
        if isinstance(own, dict) and "signature" in own and own.get("lm") is not None:
            own["lm"] = None
            found.append(name)
    return found


def save_program(program: dspy.Module, path: Path, stamp: ProgramStamp) -> Path:
    """`program.save(path)` without LM settings (`drop_lm_settings`), and add the stamp to the file's metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    program.save(str(path))
    state = json.loads(path.read_text(encoding="utf-8"))
    drop_lm_settings(state)
    state.setdefault("metadata", {})["pearl"] = stamp.model_dump()
    path.write_text(json.dumps(state, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def count_demos(program: dspy.Module) -> int:
    return sum(len(p.demos) for _, p in program.named_predictors())


def write_manifest(folder: Path, manifest: CompiledManifest) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MANIFEST_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_manifest(folder: str | Path) -> CompiledManifest:
    """The manifest of a compiled folder; a clear `PipelineError` if it is missing or malformed."""
    folder = Path(folder)
    path = folder / MANIFEST_FILE if folder.is_dir() or not folder.suffix else folder
    if not path.is_file():
        raise PipelineError(
            f"'{folder}' is not a compiled folder (no {MANIFEST_FILE}): point --compiled at the --out folder of `pearl optimize`"
        )
    try:
        return CompiledManifest.model_validate_json(path.read_bytes())  # bytes: invalid UTF-8 is a ValidationError too
    except ValidationError as exc:
        raise PipelineError(f"{path}: not a Pearlpoint compiled manifest ({exc.errors()[0]['msg']}): re-run `pearl optimize`") from None


def _read_state(path: Path, where: str) -> dict[str, Any]:
    if path.suffix != ".json":
        raise PipelineError(f"{where}: compiled program '{path}' must be a .json DSPy state (pickles are not loaded)")
    if not path.is_file():
        raise PipelineError(f"{where}: compiled program '{path}' does not exist: check the path or re-run `pearl optimize`")
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise PipelineError(f"{where}: '{path}' is not valid UTF-8: re-run `pearl optimize`") from None
    except json.JSONDecodeError as exc:
        raise PipelineError(f"{where}: '{path}' is not valid JSON ({exc.msg}): re-run `pearl optimize`") from None
    if not isinstance(state, dict):
        raise PipelineError(f"{where}: '{path}' is not a DSPy program state: re-run `pearl optimize`")
    return state


def read_stamp(path: str | Path) -> ProgramStamp | None:
    """The stamp of a saved state file, or None for a plain DSPy state without one."""
    return _stamp(_read_state(Path(path), str(path)))


def _stamp(state: dict[str, Any]) -> ProgramStamp | None:
    raw = (state.get("metadata") or {}).get("pearl")
    return ProgramStamp.model_validate(raw) if raw else None


def load_into_step(step, path: str | Path, *, where: str, step_id: str) -> ProgramStamp | None:
    """Load the compiled state at `path` into `step.program`, after checking it was compiled for it.

    `where` prefixes error messages (the pipeline file); `step_id` is the step's id there.
    """
    path = Path(path)
    if getattr(step, "program", None) is None:
        raise PipelineError(f"{where}: step '{step_id}' ({step.name}) has no DSPy program, so no compiled program can be loaded into it")
    state = _read_state(path, f"{where}: step '{step_id}'")
    stamp = _stamp(state)
    expected = signature_fingerprint(step.program)
    if stamp is not None:
        if stamp.use != step.name:
            raise PipelineError(
                f"{where}: step '{step_id}' runs '{step.name}', but '{path}' was compiled for step '{stamp.step}' "
                f"running '{stamp.use}': load it into a '{stamp.use}' step, or compile one for '{step.name}' with "
                f"`pearl optimize --step {step_id}`"
            )
        if stamp.fingerprint != expected:
            raise PipelineError(
                f"{where}: step '{step_id}' ({step.name}) has signature {expected}, but '{path}' was compiled for "
                f"signature {stamp.fingerprint} (step '{stamp.step}', {stamp.use}): the step's program changed since; "
                f"re-run `pearl optimize --step {step_id}`"
            )
    expected_keys = set(step.program.dump_state()) - {"fields"}
    saved_keys = set(state) - {"metadata", "fields"}
    if expected_keys != saved_keys:
        raise PipelineError(
            f"{where}: step '{step_id}' ({step.name}) saves state as {', '.join(sorted(expected_keys)) or 'nothing'}, "
            f"but '{path}' holds {', '.join(sorted(saved_keys)) or 'nothing'}: it was compiled for another program; "
            f"compile one for this step with `pearl optimize --step {step_id}`"
        )
    if stamp is None:
        _check_field_counts(step, state, path, where, step_id)
    drop_lm_settings(state)  # the session's LM runs the step, whatever the file names
    try:
        step.program.load_state(state)
        step.compiled_from = str(path)
    except Exception as exc:
        raise PipelineError(
            f"{where}: step '{step_id}' ({step.name}): '{path}' does not fit this step's program "
            f"({exc.__class__.__name__}: {exc}): compile it for this step with `pearl optimize --step {step_id}`"
        ) from None
    return stamp


def _check_field_counts(step, state: dict[str, Any], path: Path, where: str, step_id: str) -> None:
    """Unstamped files: at least the number of signature fields must match per predictor."""
    for name, predictor in step.program.named_predictors():
        own = state if name == "self" else (state.get(name) or {})
        saved = (own.get("signature") or {}).get("fields")
        if saved is not None and len(saved) != len(predictor.signature.fields):
            raise PipelineError(
                f"{where}: step '{step_id}' ({step.name}): predictor '{name}' has {len(predictor.signature.fields)} "
                f"fields but '{path}' saved {len(saved)}: it was compiled for another signature; "
                f"re-run `pearl optimize --step {step_id}`"
            )


def apply_compiled(pipeline, folder: str | Path) -> list[str]:
    """Load every step listed in the manifest of `folder` into `pipeline`; returns the step ids loaded.

    A manifest step that the pipeline lacks, or that runs another plugin, is an error naming both.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    base = folder if folder.is_dir() else folder.parent
    where = f"{pipeline.source} with --compiled {folder}"
    loaded = []
    for step_id, entry in manifest.steps.items():
        step = pipeline.steps.get(step_id)
        if step is None:
            raise PipelineError(
                f"{where}: the compiled folder has step '{step_id}' ({entry.use}, compiled on pipeline "
                f"'{manifest.pipeline}'), which pipeline '{pipeline.name}' lacks (steps: {', '.join(pipeline.steps)}): "
                f"run with --pipeline {manifest.pipeline}"
            )
        if entry.use != step.name:
            raise PipelineError(
                f"{where}: step '{step_id}' runs '{step.name}', but the compiled folder's '{step_id}' was compiled "
                f"for '{entry.use}' (pipeline '{manifest.pipeline}'): run with --pipeline {manifest.pipeline}, "
                f"or compile this pipeline's step with `pearl optimize --step {step_id}`"
            )
        load_into_step(step, inside_folder(base, entry.file, where=where, step_id=step_id), where=where,
                       step_id=step_id)
        loaded.append(step_id)
    return loaded


def inside_folder(base: Path, file: str, *, where: str, step_id: str) -> Path:
    """`base / file` when it lies inside `base` (after resolving `..` and symlinks), else a `PipelineError`.

    The error does not read the file: a manifest must not be a way to open files elsewhere.
    """
    root = base.resolve()
    target = (base / file).resolve()
    if Path(file).is_absolute() or not target.is_relative_to(root) or target == root:
        raise PipelineError(
            f"{where}: the manifest's step '{step_id}' names the file {file!r}, which is not inside the compiled "
            f"folder {base}: a manifest may name only files in its own folder; re-run `pearl optimize`")
    return base / file


def manifest_pipeline(folder: str | Path) -> str:
    """The pipeline a compiled folder was made for: its source file if it still exists, else its (shipped) name."""
    manifest = read_manifest(folder)
    if manifest.pipeline_source and Path(manifest.pipeline_source).is_file():
        return manifest.pipeline_source
    return manifest.pipeline
