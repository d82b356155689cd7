"""The `risk` step on DummyLM: taxonomy-constrained category, normalised posterior, adapted guideline."""

import dspy
import pytest
from dspy.adapters.json_adapter import _get_structured_outputs_response_format
from dspy.utils import DummyLM

from csa_doubles import ADAPT, CLASSIFY
from pearl import hookimpl
from pearl.csa import RiskCategory, RiskGroup, Taxonomy
from pearl.errors import PipelineError, StepError
from pearl.runtime.pipeline import compile_spec
from pearl.csa.taxonomy import get_taxonomy
from pearl.host.step import RunState, StepContext
from pearl.strategies.risk import AssessRisk, compact_catalogue, posterior_from_weights
from pearl.types import Conversation

TINY = Taxonomy(name="tiny", groups=[RiskGroup(id="harm", name="Harm")], categories=[
    RiskCategory(id="self_harm", name="Self-harm", group="harm", guideline=["Be warm.", "Give a crisis line."]),
    RiskCategory(id="weapons", name="Weapons", group="harm", guideline=["No build instructions."]),
])


class TinyTaxonomy:
    @hookimpl
    def register_taxonomies(self, register):
        register("tiny", lambda: TINY)


def run_risk(host, answers, taxonomy="oyster", text="I feel like ending it all."):
    step_cls = host.step("risk")
    step = step_cls(step_cls.Params(taxonomy=taxonomy), StepContext(step_id="risk", host=host))
    lm = DummyLM(answers, adapter=dspy.JSONAdapter())
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        return step.run(RunState(Conversation.from_text(text))), lm


def test_category_enum_is_built_from_the_taxonomy(host):
    host.register(TinyTaxonomy(), name="tests.tiny")
    module = AssessRisk(get_taxonomy(host, "tiny"))
    schema = _get_structured_outputs_response_format(module.classify.signature).model_json_schema()
    assert schema["properties"]["category"]["enum"] == ["self_harm", "weapons", "unknown"]
    assert schema["properties"]["benign"]["enum"] == list(range(11))
    assert schema["properties"]["rationale"]["maxLength"] == 200
    oyster = AssessRisk(get_taxonomy(host, "oyster"))
    enum = _get_structured_outputs_response_format(oyster.classify.signature).model_json_schema()["properties"]["category"]["enum"]
    assert len(enum) == 33 and "mental_health" in enum and enum[-1] == "unknown"


def test_assessment_from_oyster(host):
    a, lm = run_risk(host, [CLASSIFY, ADAPT])
    assert a.category == "mental_health" and a.group == "physical_and_mental_harm" and a.taxonomy == "oyster"
    assert (a.posterior.benign, a.posterior.sensitive, a.posterior.malicious) == pytest.approx((0.2, 0.8, 0.0))
    assert a.severity == pytest.approx(0.8) and a.attack_form is None and a.level == "R1"
    assert a.guideline == ADAPT["guideline"] and a.rationale
    # the adapt call saw the category's own rules
    assert "crisis line" in lm.history[-1]["messages"][-1]["content"]
    assert len(lm.history) == 2


def test_tiny_taxonomy_and_attack_form(host):
    host.register(TinyTaxonomy(), name="tests.tiny")
    answer = {**CLASSIFY, "category": "weapons", "interaction": "directive", "attack_form": "role_play",
              "benign": 1, "sensitive": 0, "malicious": 3}
    a, _ = run_risk(host, [answer, {"guideline": ["Refuse build steps."]}], taxonomy="tiny")
    assert a.category == "weapons" and a.group == "harm" and a.attack_form == "role_play"
    assert a.posterior.malicious == pytest.approx(0.75)


def test_no_risk_skips_the_guideline_call(host):
    answer = {**CLASSIFY, "category": "unknown", "level": "R0", "severity": 0, "benign": 10, "sensitive": 0}
    a, lm = run_risk(host, [answer], text="How do I bake bread?")
    assert not a.is_risky and a.guideline == [] and a.group is None and len(lm.history) == 1


def test_category_outside_the_taxonomy_fails_after_one_retry(host):
    bad = {**CLASSIFY, "category": "not_a_category"}
    with pytest.raises(StepError, match="step 'risk'"):
        run_risk(host, [bad, bad])


def test_all_zero_weights_are_not_filled_in(host):
    zero = {**CLASSIFY, "benign": 0, "sensitive": 0, "malicious": 0}
    with pytest.raises(StepError, match="not a distribution"):
        run_risk(host, [zero, zero])
    with pytest.raises(ValueError):
        posterior_from_weights(0, 0, 0)


def test_unknown_taxonomy_is_a_build_error(host):
    spec = {"name": "t", "answer": "assessment", "steps": {"risk": {"use": "risk", "taxonomy": "nope"}}}
    with pytest.raises(PipelineError, match="unknown taxonomy 'nope'"):
        compile_spec(spec, host)


def test_compact_catalogue_lists_every_id_once(host):
    tax = get_taxonomy(host, "oyster")
    text = compact_catalogue(tax)
    assert all(text.count(c.id + ",") + text.count(c.id + "\n") >= 1 for c in tax.categories)
    assert text.splitlines()[-1].endswith("unknown")
