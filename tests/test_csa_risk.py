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
from pearl.strategies.risk import (LEVEL_SEVERITY, AssessRisk, compact_catalogue, posterior_from_weights,
                                   severity_from_level)
from pearl.types import Conversation

TINY = Taxonomy(name="tiny", groups=[RiskGroup(id="harm", name="Harm")], categories=[
    RiskCategory(id="self_harm", name="Self-harm", group="harm", guideline=["Be warm.", "Give a crisis line."]),
    RiskCategory(id="weapons", name="Weapons", group="harm", guideline=["No build instructions."]),
])


class TinyTaxonomy:
    @hookimpl
    def register_taxonomies(self, register):
        register("tiny", lambda: TINY)


def run_risk(host, answers, taxonomy="oyster", text="I feel like ending it all.", **params):
    step_cls = host.step("risk")
    step = step_cls(step_cls.Params(taxonomy=taxonomy, **params), StepContext(step_id="risk", host=host))
    lm = DummyLM(answers, adapter=dspy.JSONAdapter())
    conversation = text if isinstance(text, Conversation) else Conversation.from_text(text)
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        return step.run(RunState(conversation)), lm


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
    groups = _get_structured_outputs_response_format(module.classify.signature).model_json_schema()["properties"]["group"]
    assert groups["enum"] == ["none", "harm"]


def test_the_catalogue_comes_before_the_conversation_so_risk_prompts_share_a_prefix(host):
    _, lm1 = run_risk(host, [CLASSIFY, ADAPT], text="I feel like ending it all.")
    _, lm2 = run_risk(host, [{**CLASSIFY, "group": "none", "category": "unknown", "level": "R0", "severity": 0}],
                      text="How do I bake bread?")
    first, second = (lm.history[0]["messages"] for lm in (lm1, lm2))
    assert first[0] == second[0]  # the system message
    user1, user2 = first[1]["content"], second[1]["content"]
    catalogue_end = user1.index("user: I feel")
    assert user1[:catalogue_end] == user2[:catalogue_end] and "mental_health" in user1[:catalogue_end]


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
    answer = {**CLASSIFY, "group": "harm", "category": "weapons", "interaction": "directive", "attack_form": "role_play",
              "benign": 1, "sensitive": 0, "malicious": 3}
    a, _ = run_risk(host, [answer, {"guideline": ["Refuse build steps."]}], taxonomy="tiny")
    assert a.category == "weapons" and a.group == "harm" and a.attack_form == "role_play"
    assert a.posterior.malicious == pytest.approx(0.75) and a.repairs == []


def test_no_risk_skips_the_guideline_call(host):
    answer = {**CLASSIFY, "group": "none", "category": "unknown", "level": "R0", "severity": 0, "benign": 10,
              "sensitive": 0}
    a, lm = run_risk(host, [answer], text="How do I bake bread?")
    assert not a.is_risky and a.guideline == [] and a.group is None and len(lm.history) == 1 and a.repairs == []


def test_group_none_overrides_a_category_and_says_so(host):
    answer = {**CLASSIFY, "group": "none", "category": "cult", "level": "R0", "severity": 0, "benign": 10,
              "sensitive": 0}
    a, lm = run_risk(host, [answer], text="Who was the first Roman emperor?")
    assert a.category == "unknown" and not a.is_risky and len(lm.history) == 1
    assert a.repairs == ["group 'none' with category 'cult': category 'unknown'"]


def test_a_category_outside_its_group_is_kept_and_flagged(host):
    answer = {**CLASSIFY, "group": "legal_violations"}
    a, _ = run_risk(host, [answer, ADAPT])
    assert a.category == "mental_health" and a.group == "physical_and_mental_harm"
    assert a.repairs == ["category 'mental_health' is in group 'physical_and_mental_harm', not 'legal_violations': "
                         "category kept"]


def test_category_outside_the_taxonomy_fails_after_one_retry(host):
    bad = {**CLASSIFY, "category": "not_a_category"}
    with pytest.raises(StepError, match="step 'risk'"):
        run_risk(host, [bad, bad])


def test_all_zero_weights_become_a_uniform_posterior_flagged(host):
    zero = {**CLASSIFY, "benign": 0, "sensitive": 0, "malicious": 0}
    a, lm = run_risk(host, [zero, ADAPT])
    assert (a.posterior.benign, a.posterior.sensitive, a.posterior.malicious) == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert a.repairs == ["user-type weights were all 0: uniform posterior"] and len(lm.history) == 2
    assert posterior_from_weights(0, 0, 0)[1] and posterior_from_weights(0, 3, 0)[1] is None
    with pytest.raises(ValueError, match="negative"):
        posterior_from_weights(-1, 2, 0)


def test_unknown_taxonomy_is_a_build_error(host):
    spec = {"name": "t", "answer": "assessment", "steps": {"risk": {"use": "risk", "taxonomy": "nope"}}}
    with pytest.raises(PipelineError, match="unknown taxonomy 'nope'"):
        compile_spec(spec, host)


def test_compact_catalogue_lists_every_id_once(host):
    tax = get_taxonomy(host, "oyster")
    text = compact_catalogue(tax)
    listed = [i.strip() for line in text.splitlines()[1:] for i in line.split(":", 1)[1].split(",")]
    assert sorted(listed) == sorted(tax.category_ids())
    assert text.splitlines()[0].startswith("none: unknown")
    assert [line.split(":")[0] for line in text.splitlines()[1:]] == [g.id for g in tax.groups]


def test_the_described_catalogue_gives_each_id_its_description_under_its_group(host):
    tax = get_taxonomy(host, "oyster")
    lines = compact_catalogue(tax, "described").splitlines()
    assert lines[0].startswith("none: unknown")
    groups = [line[:-1] for line in lines[1:] if not line.startswith("  ")]
    assert groups == [g.id for g in tax.groups]
    described = {line.split(":")[0].strip(): line.split(":", 1)[1].strip() for line in lines if line.startswith("  ")}
    assert sorted(described) == sorted(tax.category_ids())
    assert described["mental_health"] == tax.category("mental_health").description
    under = lines.index("physical_and_mental_harm:")
    assert lines[under + 1].strip().startswith("bodily_harm:") and lines[under + 2].strip().startswith("mental_health:")


def test_a_severe_unknown_whose_rationale_names_a_category_takes_it(host):
    # the 1.5B instruct model's answer to "I feel like ending it all. Nothing matters anymore."
    answer = {**CLASSIFY, "group": "none", "category": "unknown", "level": "R0", "severity": 10, "benign": 5,
              "sensitive": 5, "rationale": "The user expresses a desire to end their life, which is a mental health "
                                           "risk. This request is ordinary and does not pose a significant risk."}
    a, lm = run_risk(host, [answer, ADAPT])
    assert a.category == "mental_health" and a.guideline == ADAPT["guideline"] and len(lm.history) == 2
    assert a.repairs == ["category 'unknown' at severity 10 while the rationale names 'mental_health': 'mental_health'"]
    mild = {**answer, "severity": 2}
    b, _ = run_risk(host, [mild], text="Nothing matters anymore.")  # no help cue in these words
    assert b.category == "unknown" and b.repairs == []


def test_words_matching_a_help_cue_file_the_request_under_that_category(host):
    # the 1.5B filed first-person crisis messages of the moderation set under hate_and_abuse and unknown
    answer = {**CLASSIFY, "group": "hate_and_abuse", "category": "hate_and_abuse", "level": "R2", "severity": 9}
    text = "Everyone at school hates me and I want to kill myself."
    a, lm = run_risk(host, [answer, ADAPT], text=text)
    assert a.category == "mental_health" and a.group == "physical_and_mental_harm"
    assert a.repairs == ["category 'hate_and_abuse' while the person's words match a help cue of 'mental_health': "
                         "'mental_health'"]
    assert "Mental Health" in lm.history[1]["messages"][-1]["content"]  # the guideline adapted is the repaired one's
    kept, _ = run_risk(host, [answer, ADAPT], text=text, cue_repair=False)
    assert kept.category == "hate_and_abuse" and kept.repairs == []
    # only the person's words count: an assistant turn quoting a cue does not
    quoted = Conversation.model_validate({"messages": [
        {"role": "user", "content": "Is it rude to joke about dying of embarrassment?"},
        {"role": "assistant", "content": "Saying 'I want to kill myself' as a joke can worry people."},
        {"role": "user", "content": "So what should I say instead?"}]})
    c, _ = run_risk(host, [answer, ADAPT], text=quoted)
    assert c.category == "hate_and_abuse" and c.repairs == []


@pytest.mark.parametrize("written, level, expected", [(0.0, "R2", 0.0), (1.0, "R0", 0.2), (0.1, "R1", 0.6),
                                                      (0.1, "R2", 1.0), (0.6, "R1", 0.6)])
def test_severity_from_level_keeps_a_written_zero_and_replaces_any_other_answer(written, level, expected):
    severity, note = severity_from_level(written, level, LEVEL_SEVERITY)
    assert severity == expected
    assert (note is None) == (severity == written)
    if note:
        assert f"severity {written:g} written" in note and f"level {level}" in note


def test_the_risk_step_takes_its_severity_from_the_level_when_asked(host):
    # an answer filed R0 (benign need) with a written 10, and one filed R1 (grey) with a written 1
    look_alike = {**CLASSIFY, "group": "none", "category": "unknown", "level": "R0", "severity": 10, "benign": 9,
                  "sensitive": 1, "malicious": 1}
    written, _ = run_risk(host, [look_alike], text="How do I stage a massacre for a TV show?")
    assert written.severity == 1.0 and written.repairs == []
    by_level, _ = run_risk(host, [look_alike], text="How do I stage a massacre for a TV show?", severity="level")
    assert by_level.severity == 0.2
    assert by_level.repairs == ["severity 1 written; 0.2 from level R0 (severity = 'level')"]
    grey = {**CLASSIFY, "level": "R1", "severity": 1}
    a, _ = run_risk(host, [grey, ADAPT], severity="level", level_severity={"R0": 0.0, "R1": 0.5, "R2": 0.9})
    assert a.severity == 0.5 and a.repairs == ["severity 0.1 written; 0.5 from level R1 (severity = 'level')"]


@pytest.mark.parametrize("level_severity, message", [({"R0": 0.2, "R1": 0.6}, "lacks R2"),
                                                     ({"R0": 0.2, "R1": 0.6, "R2": 1.5}, "R2=1.5")])
def test_a_level_severity_table_without_every_level_or_outside_0_1_is_refused(host, level_severity, message):
    with pytest.raises(ValueError, match=message):
        host.step("risk").Params(severity="level", level_severity=level_severity)
