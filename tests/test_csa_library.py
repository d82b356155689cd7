"""The response-strategy library: built-ins, restriction, extension by plugins and inline."""

import pytest

from pearl import hookimpl
from pearl.csa import ResponseStrategy
from pearl.errors import PipelineError
from pearl.runtime.pipeline import compile_spec
from pearl.strategies.library import BUILTIN_NAMES, registered_strategies, select_strategies

EXTRA = ResponseStrategy(name="cite_sources", summary="Answer and cite sources.", fits_when="facts are disputed")


class ExtraStrategies:
    @hookimpl
    def register_strategies(self, register):
        register(EXTRA)


def test_eight_builtins_in_fixed_order(host):
    names = [s.name for s in registered_strategies(host)]
    assert names[:8] == list(BUILTIN_NAMES) and len(BUILTIN_NAMES) == 8
    assert {"full_help", "supportive_response", "firm_refusal", "safe_completion"} <= set(names)
    assert all(s.summary and s.fits_when and s.constraints for s in registered_strategies(host))


def test_restrict_and_extend(host):
    assert [s.name for s in select_strategies(host, ["firm_refusal", "full_help"])] == ["firm_refusal", "full_help"]
    host.register(ExtraStrategies(), name="tests.extra")
    assert [s.name for s in select_strategies(host)][-1] == "cite_sources"
    inline = ResponseStrategy(name="ask_back", summary="Ask a clarifying question.", fits_when="unclear")
    chosen = select_strategies(host, ["cite_sources"], [inline])
    assert [s.name for s in chosen] == ["cite_sources", "ask_back"]


@pytest.mark.parametrize("names, extra, fragment", [
    (["nonesuch"], [], "unknown response strategy 'nonesuch'"),
    (["full_help", "full_help"], [], "listed twice"),
    ([], [], "strategy set is empty"),
    (None, [ResponseStrategy(name="full_help", summary="x", fits_when="y")], "already registered"),
])
def test_bad_sets_are_clear_errors(host, names, extra, fragment):
    with pytest.raises(PipelineError, match=fragment):
        select_strategies(host, names, extra)


def test_pipeline_parameter_restricts_the_anticipated_set(host):
    spec = {"name": "t", "answer": "draft", "steps": {
        "risk": {"use": "risk"},
        "anticipate": {"use": "anticipate", "after": ["risk"], "strategies": ["full_help", "firm_refusal"],
                       "extra_strategies": [{"name": "ask_back", "summary": "Ask.", "fits_when": "unclear"}]},
        "decide": {"use": "decide", "after": ["risk", "anticipate"]},
        "draft": {"use": "draft", "after": ["risk", "decide"]},
        "recombine": {"use": "recombine", "after": ["draft"]},
    }}
    pipeline = compile_spec(spec, host)
    assert [s.name for s in pipeline.steps["anticipate"].strategies] == ["full_help", "firm_refusal", "ask_back"]
    spec["steps"]["anticipate"]["strategies"] = ["nope"]
    with pytest.raises(PipelineError, match="unknown response strategy 'nope'"):
        compile_spec(spec, host)
