"""No command writes over a file it is reading.

`refuse_overwrite(output, inputs, flag=...)` is called by every command that reads some
files and writes another (`pearl export-pairs`, `pearl eval --out`, `pearl report`)
before it reads or writes anything. It raises `InputError` when the output *is* one of
the inputs (the same path, a symlink to it, or a hard link: compared with
`os.path.samefile`) or, for a file output, when the output path is a folder. Nothing is
created or changed when it raises.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from pearl.errors import InputError


def same_file(a: Path, b: Path) -> bool:
    """Whether `a` and `b` name the same existing file (or, for paths not yet made, the same path)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return Path(a).resolve() == Path(b).resolve()


def refuse_overwrite(output: Path, inputs: Iterable[Path], *, flag: str = "the output", folder_ok: bool = False) -> None:
    """Raise `InputError` when writing `output` would replace one of `inputs` (see the module docstring)."""
    output = Path(output)
    for source in inputs:
        if same_file(output, Path(source)):
            raise InputError(f"{flag} {output} is the input file {source}: writing it would destroy what is "
                             f"being read; name another output file")
    if not folder_ok and output.is_dir():
        raise InputError(f"{flag} {output} is a folder: name the file to write, such as {output / 'out.jsonl'}")
