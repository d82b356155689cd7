"""`--set STEP.PARAM=VALUE`: parsed once (`pearl.runtime.overrides`), set on the pipeline document before compiling."""

import pytest

from pearl.errors import InputError
from pearl.runtime.overrides import Override, parse_overrides
from pearl.runtime.pipeline import load


def test_values_are_json_when_they_parse_else_text():
    assert parse_overrides(["refine.schedule=[]", "decide.beta=3", "anticipate.mode=rank", "x.y=\"q\""]) == [
        Override("refine", "schedule", []), Override("decide", "beta", 3), Override("anticipate", "mode", "rank"),
        Override("x", "y", "q")]
    assert str(Override("refine", "schedule", [])) == "refine.schedule=[]"
    for bad in ("mode=rank", "anticipate.mode", ".mode=1", "anticipate.=1"):
        with pytest.raises(InputError, match="write STEP.PARAM=VALUE"):
            parse_overrides([bad])


def test_an_override_reaches_the_step_before_it_builds_its_programs(host):
    from pearl.strategies.anticipate import ForecastRank, ForecastTable

    plain = load("csa", host)
    assert isinstance(plain.steps["anticipate"].program, ForecastTable) and plain.overrides == ()
    ranked = load("csa", host, parse_overrides(["anticipate.mode=rank", "nosuchstep.x=1"]))
    assert ranked.steps["anticipate"].params.mode == "rank"
    assert isinstance(ranked.steps["anticipate"].program, ForecastRank)  # built from the overridden mode
    assert [str(o) for o in ranked.overrides] == ['anticipate.mode="rank"']  # a step the pipeline lacks: skipped


def test_an_unknown_parameter_or_a_bad_value_is_one_clear_error(host):
    from pearl.errors import PipelineError

    with pytest.raises(InputError, match="step 'anticipate' has no parameter 'nope'; it has mode"):
        load("csa", host, parse_overrides(["anticipate.nope=1"]))
    with pytest.raises(PipelineError, match="mode"):
        load("csa", host, parse_overrides(["anticipate.mode=sideways"]))
