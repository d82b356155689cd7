"""The import contract holds: `lint-imports` passes (pyproject.toml's [tool.importlinter]).

`pearl` is installed from five folders (core/ is `pearl`, plugins/ is `pearl.plugins`, ...),
so its folder on disk holds only part of the package, and import-linter, which reads the
package's files from that folder, would see only `core/`. The check therefore builds a
view of the whole package from symbolic links in a temporary folder, puts it first on
PYTHONPATH, and runs `lint-imports` there. Run `python tests/test_layers.py` for the report.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def package_view(into: Path) -> Path:
    """A `pearl` folder under `into` that holds every sub-package, per setuptools' package-dir."""
    package_dir = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    view = into / "pearl"
    view.mkdir()
    for entry in (ROOT / package_dir["pearl"]).iterdir():
        if entry.name != "__pycache__":
            (view / entry.name).symlink_to(entry)
    subpackages = {package.split(".", 1)[1]: folder for package, folder in package_dir.items() if package != "pearl"}
    for name, folder in subpackages.items():
        (view / name).symlink_to(ROOT / folder)  # a nested name (pearl.a.b) fails here, loudly
    return into


def lint_imports() -> subprocess.CompletedProcess:
    """Run the venv's `lint-imports` against the package view; its exit code and report."""
    executable = Path(sys.executable).parent / "lint-imports"
    assert executable.exists(), f"{executable} is missing: pip install -e '.[test]' (it brings import-linter)"
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(package_view(Path(tmp))),
                                                            os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        return subprocess.run([str(executable), "--no-cache", "--no-logo", str(ROOT / "pyproject.toml")],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_import_contract_holds():
    result = lint_imports()
    report = result.stdout + result.stderr
    print(report)
    assert "Contracts: " in report, report  # the contracts were read and checked, not a crash before them
    assert result.returncode == 0, report


def test_package_view_holds_every_subpackage(tmp_path):
    view = package_view(tmp_path) / "pearl"
    for name in ("host", "runtime", "csa", "cli", "plugins", "strategies", "traces", "pipelines"):
        assert (view / name / "__init__.py").exists(), name


if __name__ == "__main__":
    completed = lint_imports()
    print(completed.stdout + completed.stderr)
    sys.exit(completed.returncode)
