"""What the plugin host promises a plugin author: hooks go through pluggy (spans, wrappers),
failures name the plugin and the hook, observers cannot break a run, and the extension
points are abstract base classes."""

from __future__ import annotations

import sys
import textwrap
import warnings

import pytest
from dspy.utils import DummyLM

from otel_support import spans  # noqa: F401  (fixture)
from pearl import hookimpl
from pearl.errors import PluginError, StepError
from pearl.host.dataset import Dataset
from pearl.host.judge import Judge
from pearl.host.manager import Host, PluginWarning
from pearl.host.step import Step
from pearl.runtime.pipeline import compile_spec
from pearl.runtime.runner import Runner
from pearl.types import Conversation

from conftest import EchoStep, ShoutStep

ECHO_SHOUT = {"name": "t", "steps": {"e": {"use": "test-echo"}, "response": {"use": "test-shout", "after": ["e"]}}}


def run_echo_shout(host, text="hi there"):
    pipeline = compile_spec(ECHO_SHOUT, host)
    return Runner(pipeline, {"task": DummyLM([])}, host).run(Conversation.from_text(text))


# Registration through pluggy -------------------------------------------------------------
def test_registration_hooks_are_hook_spans(spans):
    host = Host(third_party=False)
    host.registries
    names = [s.name for s in spans.get_finished_spans()]
    assert "hook register_steps" in names and "hook register_backends" in names
    plugins = {p for s in spans.get_finished_spans() if s.name == "hook register_steps"
               for p in s.attributes["pearl.hook.plugins"]}
    assert "pearl.strategies.minimal" in plugins


def test_a_hook_wrapper_sees_every_registration_call(host):
    seen = []

    class Wrapper:
        @hookimpl(wrapper=True)
        def register_steps(self, register):
            seen.append("before")
            result = yield
            seen.append("after")
            return result

    host.register(Wrapper(), name="tests.wrapper")
    assert "test-echo" in host.registries["steps"]
    steps_plugins = {e.plugin for e in host.registries["steps"].entries.values()}
    assert seen == ["before", "after"] * len(steps_plugins)
    assert "tests.wrapper" not in steps_plugins


def test_registrations_follow_plugin_load_order(host):
    plugins = [entry.plugin for entry in host.registries["steps"].entries.values()]
    order = host.plugin_names()
    assert plugins == sorted(plugins, key=order.index)
    assert [n for n in order if n.startswith("pearl.")] == sorted(n for n in order if n.startswith("pearl."))


def test_a_raising_register_hook_names_plugin_and_hook(host):
    class Broken:
        @hookimpl
        def register_judges(self, register):
            raise ValueError("cannot find my model card")

    host.register(Broken(), name="tests.broken")
    with pytest.raises(PluginError, match=r"plugin 'tests.broken' failed in hook register_judges: "
                                          r"ValueError: cannot find my model card"):
        host.registries


def test_register_with_wrong_arguments_names_plugin_and_hook(host):
    class Wrong:
        @hookimpl
        def register_steps(self, register):
            register("a", EchoStep, "extra")

    host.register(Wrong(), name="tests.wrong")
    with pytest.raises(PluginError, match=r"plugin 'tests.wrong' called register\(\) with 3 arguments "
                                          r"in hook register_steps"):
        host.registries


def test_a_nameless_registration_names_plugin_and_hook(host):
    class Nameless:
        @hookimpl
        def register_datasets(self, register):
            register(object())

    host.register(Nameless(), name="tests.nameless")
    with pytest.raises(PluginError, match=r"plugin 'tests.nameless' registered a dataset without a name "
                                          r"in hook register_datasets"):
        host.registries


def test_a_hook_argument_that_does_not_exist_is_refused(host):
    class BadArgs:
        @hookimpl
        def register_steps(self, register, colour):
            pass

    with pytest.raises(PluginError, match=r"plugin 'tests.bad-args' has a bad hook implementation.*colour"):
        host.register(BadArgs(), name="tests.bad-args")


def test_a_misspelled_hook_is_a_warning_naming_plugin_and_hook(host):
    class Typo:
        @hookimpl
        def register_step(self, register):
            register(EchoStep)

    with pytest.warns(PluginWarning, match=r"plugin 'tests.typo' implements 'register_step', which is not a "
                                           r"Pearlpoint hook.*did you mean 'register_steps'"):
        host.register(Typo(), name="tests.typo")


# Entry points ----------------------------------------------------------------------------
def install_entry_point(tmp_path, monkeypatch, name: str, source: str) -> None:
    module = f"ep_{name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
    dist = tmp_path / f"{module}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[pearl]\n{name} = {module}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("PEARL_PLUGINS", raising=False)
    monkeypatch.delitem(sys.modules, module, raising=False)


def test_a_plugin_exiting_at_import_is_a_plugin_error(tmp_path, monkeypatch):
    install_entry_point(tmp_path, monkeypatch, "quitter", "raise SystemExit(0)\n")
    with pytest.raises(PluginError, match=r"plugin 'quitter' \(ep_quitter\) failed to load: SystemExit.*"
                                          r"PEARL_PLUGINS"):
        Host()


def test_a_plugin_raising_at_import_is_a_plugin_error(tmp_path, monkeypatch):
    install_entry_point(tmp_path, monkeypatch, "crasher", "import no_such_module_anywhere\n")
    with pytest.raises(PluginError, match=r"plugin 'crasher' .*failed to load: ModuleNotFoundError"):
        Host()
    monkeypatch.setenv("PEARL_PLUGINS", "")  # leaving it out is the way around it
    assert "llamacpp" in Host().registries["backends"]


def test_builtins_are_entry_points_and_third_party_ones_can_be_left_out(tmp_path, monkeypatch):
    install_entry_point(tmp_path, monkeypatch, "extra", """
        from pearl import hookimpl
        from conftest import EchoStep

        @hookimpl
        def register_steps(register):
            register(EchoStep)
    """)
    full = Host()
    assert full.registries["steps"].entries["test-echo"].plugin == "extra"
    assert "extra" not in Host(third_party=False).plugin_names()
    slim = Host(third_party=False, exclude=["pearl.strategies.judges"])
    assert "satisfaction" not in slim.registries["judges"] and "refusal" in slim.registries["judges"]


# Observers ---------------------------------------------------------------------------------
class RaisingObserver:
    @hookimpl
    def step_started(self, run_id, step_id, use):
        raise RuntimeError("observer broke on start")

    @hookimpl
    def step_finished(self, run_id, step_id, use, output, seconds, error):
        raise KeyError("observer broke on finish")


class RecordingObserver:
    def __init__(self):
        self.events = []

    @hookimpl
    def step_finished(self, run_id, step_id, use, output, seconds, error):
        self.events.append((step_id, error is not None))


def test_a_raising_observer_does_not_mask_the_result(host, spans):
    recorder = RecordingObserver()
    host.register(RaisingObserver(), name="tests.raising-observer")
    host.register(recorder, name="tests.recorder")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_echo_shout(host)
    reported = {str(w.message).split(" (")[0] for w in caught if issubclass(w.category, PluginWarning)}
    assert reported == {f"observer plugin 'tests.raising-observer' raised in hook {hook}"
                        for hook in ("step_started", "step_finished")}
    assert result.response == "HI THERE"
    assert recorder.events == [("e", False), ("response", False)]  # the other observer still ran
    step_span = next(s for s in spans.get_finished_spans() if s.attributes.get("pearl.step.id") == "e")
    events = [e for e in step_span.events if e.name == "pearl.observer.error"]
    assert {e.attributes["pearl.hook.name"] for e in events} == {"step_started", "step_finished"}
    assert {e.attributes["pearl.plugin"] for e in events} == {"tests.raising-observer"}


class Boom(Step):
    name = "test-boom"
    uses_lm = False
    inputs = {"conversation": Conversation}
    output = ShoutStep.output

    def run(self, state):
        raise RuntimeError("kaput")


def test_a_raising_observer_does_not_mask_the_step_error(host):
    class BoomPlugin:
        @hookimpl
        def register_steps(self, register):
            register(Boom)

    host.register(BoomPlugin(), name="tests.boom")
    host.register(RaisingObserver(), name="tests.raising-observer")
    pipeline = compile_spec({"name": "b", "steps": {"response": {"use": "test-boom"}}}, host)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(StepError, match="step 'response': RuntimeError: kaput"):
            Runner(pipeline, {"task": DummyLM([])}, host).run(Conversation.from_text("x"))
    messages = [str(w.message) for w in caught if issubclass(w.category, PluginWarning)]
    assert any("step_finished" in m and "KeyError" in m for m in messages)


# Contracts as abstract base classes ------------------------------------------------------
@pytest.mark.parametrize("base", [Step, Judge, Dataset])
def test_extension_points_are_abstract(base):
    class Incomplete(base):
        name = "incomplete"

    with pytest.raises(TypeError, match="abstract"):
        Incomplete(*([None, None] if base is Step else []))
