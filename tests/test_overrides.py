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


@pytest.mark.parametrize("item", ["decide.alpha=NaN", "decide.alpha=Infinity", "decide.alpha=-inf", "decide.alpha=[1, NaN]"])
def test_a_value_that_is_not_a_finite_number_is_refused_by_name(item):
    with pytest.raises(InputError, match="is not a finite number"):
        parse_overrides([item])


def test_true_or_false_for_a_number_parameter_is_refused(host):
    with pytest.raises(InputError, match=r"--set decide.tau=true: 'tau' takes a number, not true or false"):
        load("csa", host, parse_overrides(["decide.tau=true"]))
    assert load("csa", host, parse_overrides(["decide.tau=0.5"])).overrides


def test_an_empty_model_name_is_an_error_not_the_default():
    from pearl.host.backend import BackendSettings, resolve_settings

    with pytest.raises(InputError, match="model: is empty"):
        resolve_settings(BackendSettings(), model="  ")
