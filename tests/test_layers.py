"""The import contract holds: `lint-imports` passes (pyproject.toml's [tool.importlinter]).

`pearl` is installed from five folders (core/ is `pearl`, plugins/ is `pearl.plugins`, ...).
Under an editable install import-linter reads the package's files from core/ alone, so
core/ holds a symbolic link to each of the other four folders (core/traces -> ../traces,
...): the folder on disk is then the whole package, and a bare `lint-imports` from the
repository root checks every layer. The wheel is unaffected: setuptools takes each
sub-package from its own folder (`package-dir`). Run `lint-imports` for the report.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contract_holds():
    executable = Path(sys.executable).parent / "lint-imports"
    assert executable.exists(), f"{executable} is missing: pip install -e '.[test]' (it brings import-linter)"
    result = subprocess.run([str(executable), "--no-cache", "--no-logo"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    report = result.stdout + result.stderr
    print(report)
    assert "Contracts: " in report, report  # the contracts were read and checked, not a crash before them
    assert result.returncode == 0, report


def test_core_links_every_mapped_subpackage():
    package_dir = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for package, folder in package_dir.items():
        if package == "pearl":
            continue
        link = ROOT / package_dir["pearl"] / package.split(".", 1)[1]
        assert link.is_symlink() and link.resolve() == (ROOT / folder).resolve(), link
        assert (link / "__init__.py").exists(), link
