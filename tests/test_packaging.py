"""A built wheel installs the `pearl.*` namespace (and its data) without `core`/`plugins` modules."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_imports_from_its_own_files(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, timeout=600)
    wheel = next(tmp_path.glob("pearlpoint-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "pearl/pipelines/minimal.toml" in names
    assert "pearl/plugins/data/oyster.json" in names
    assert not any(n.startswith(("core/", "plugins/", "strategies/")) for n in names)
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = ("import pearl, pearl.plugins, pearl.strategies, pearl.pipelines, pearl.traces, pearl.cli;"
             "from pearl.runtime.pipeline import shipped_pipelines; import sys;"
             "assert pearl.__file__.startswith(sys.argv[1]), pearl.__file__;"
             "assert 'minimal' in shipped_pipelines()")
    subprocess.run([sys.executable, "-c", probe, str(site)], check=True, cwd=tmp_path,
                   env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}, timeout=120)


def test_editable_install_maps_folders():
    import pearl
    import pearl.plugins
    import pearl.strategies

    assert Path(pearl.__file__).parent.name == "core"
    assert Path(pearl.plugins.__file__).parent.name == "plugins"
    assert Path(pearl.strategies.__file__).parent.name == "strategies"
