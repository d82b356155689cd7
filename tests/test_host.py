import sys
import textwrap

import pytest

from pearl import hookimpl
from pearl.errors import PluginError
from pearl.host.manager import Host


def test_builtins_register_through_hooks(host):
    desc = host.describe()
    assert "llamacpp" in desc["pearl.plugins.llamacpp"]["backends"]
    assert {"screen", "respond"} <= set(desc["pearl.strategies.minimal"]["steps"])


def test_test_plugin_registers_its_steps(host):
    assert host.step("test-echo").name == "test-echo"
    assert host.registries["steps"].entries["test-shout"].plugin == "tests.steps"


def test_duplicate_name_names_both_plugins(host):
    class Clash:
        @hookimpl
        def register_steps(self, register):
            from conftest import EchoStep

            register(EchoStep)

    host.register(Clash(), name="clashing-plugin")
    with pytest.raises(PluginError) as err:
        host.registries
    assert "tests.steps" in str(err.value) and "clashing-plugin" in str(err.value)


def test_unknown_name_lists_known(host):
    with pytest.raises(PluginError, match="unknown backend 'nope'.*llamacpp"):
        host.backend("nope")


@pytest.fixture
def entry_point_plugin(tmp_path, monkeypatch):
    """Installs a distribution on sys.path that declares a `pearl` entry point."""
    (tmp_path / "sample_pearl_plugin.py").write_text(textwrap.dedent("""
        from pearl import hookimpl
        from pearl.host.backend import Backend

        class SampleBackend(Backend):
            name = "sample"

        @hookimpl
        def register_backends(register):
            register(SampleBackend)
    """))
    dist = tmp_path / "sample_pearl_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: sample-pearl-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[pearl]\nsample = sample_pearl_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("sample_pearl_plugin", None)


def test_entry_point_plugin_loads(entry_point_plugin, monkeypatch):
    monkeypatch.delenv("PEARL_PLUGINS", raising=False)
    h = Host()
    assert "sample" in h.registries["backends"]
    assert h.registries["backends"].entries["sample"].plugin == "sample"


def test_empty_pearl_plugins_loads_builtins_only(entry_point_plugin, monkeypatch):
    monkeypatch.setenv("PEARL_PLUGINS", "")
    h = Host()
    assert "sample" not in h.registries["backends"]
    assert "llamacpp" in h.registries["backends"]


def test_pearl_plugins_selects_and_rejects_unknown(entry_point_plugin, monkeypatch):
    monkeypatch.setenv("PEARL_PLUGINS", "sample")
    assert "sample" in Host().registries["backends"]
    monkeypatch.setenv("PEARL_PLUGINS", "sample,missing-one")
    with pytest.raises(PluginError, match="missing-one"):
        Host()


def test_every_builtin_plugin_module_is_an_entry_point_of_pearlpoint():
    """The kernel names no plugin: a module of plugins/ or strategies/ with hook
    implementations loads only if pyproject.toml declares it under [project.entry-points.pearl]."""
    from importlib.metadata import entry_points
    from pathlib import Path

    from pearl.host.manager import DISTRIBUTION

    root = Path(__file__).resolve().parent.parent
    with_hooks = {f"pearl.{folder}.{path.stem}" for folder in ("plugins", "strategies")
                  for path in (root / folder).glob("*.py") if "@hookimpl" in path.read_text(encoding="utf-8")}
    declared = {ep.name: ep.value for ep in entry_points(group="pearl") if ep.dist.name == DISTRIBUTION}
    assert set(declared) == with_hooks
    assert all(name == value for name, value in declared.items())
    source = (root / "core" / "host" / "manager.py").read_text(encoding="utf-8")
    assert "pearl.plugins." not in source and "pearl.strategies." not in source


def test_adding_an_observer_keeps_the_registries_and_a_registering_plugin_renews_them(host):
    from conftest import TestStepsPlugin

    before = host.registries

    class Observer:
        @hookimpl
        def step_started(self, run_id, step_id, use):
            pass

    host.register(Observer(), name="tests.observer")
    host.unregister("tests.observer")
    assert host.registries is before
    host.unregister("tests.steps")
    assert "test-echo" not in host.registries["steps"]
    host.register(TestStepsPlugin(), name="tests.steps")
    assert "test-echo" in host.registries["steps"]
    with pytest.raises(PluginError, match="no plugin named 'nope'"):
        host.unregister("nope")
