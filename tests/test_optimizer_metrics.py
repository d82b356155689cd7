"""Optimizer metrics on hand-made predictions (no LM)."""

import inspect

import dspy
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pearl.csa import RiskAssessment, UserPosterior
from pearl.csa.scoring import constructive_score
from pearl.errors import InputError, PearlError
from pearl.host.judge import Judge, Judgement
from pearl.optimization.metrics import (
    ConstructiveMetric,
    MatchMetric,
    RiskMetric,
    as_gepa_metric,
    brier,
    match_score,
    risk_score,
)
from pearl.types import Conversation


def gold(**labels):
    return dspy.Example(conversation=Conversation.from_text("hello"), id="x", **labels).with_inputs("conversation")


def assessment(category="mental-health", level="R0", posterior=(0.1, 0.8, 0.1)):
    return RiskAssessment(taxonomy="oyster", category=category, level=level, interaction="inquiry",
                          posterior=UserPosterior.normalised(*posterior), severity=0.3,
                          guideline=["be kind", "point to help lines"])


LABELS = dict(category="mental-health", level="R0", user_type="sensitive")


def test_perfect_assessment_scores_near_one_and_says_so():
    scored = risk_score(gold(**LABELS), assessment(posterior=(0, 1, 0)))
    assert scored.score == pytest.approx(1.0)
    assert "right" in scored.feedback


def test_each_wrong_aspect_costs_its_weight_and_is_explained():
    scored = risk_score(gold(**LABELS), assessment(category="healthcare", posterior=(0, 1, 0)))
    assert scored.parts["category"] == 0.0
    assert scored.score == pytest.approx(0.6)
    assert "expected 'mental-health', got 'healthcare'" in scored.feedback


def test_level_is_ordinal():
    one_off = risk_score(gold(level="R0"), assessment(level="R1"))
    two_off = risk_score(gold(level="R0"), assessment(level="R2"))
    assert one_off.score == pytest.approx(0.5) and two_off.score == pytest.approx(0.0)


def test_user_type_calibration_is_one_minus_half_brier():
    post = (0.2, 0.5, 0.3)
    scored = risk_score(gold(user_type="sensitive"), assessment(posterior=post))
    expected_brier = 0.2 ** 2 + 0.5 ** 2 + 0.3 ** 2
    assert brier(dict(zip(("benign", "sensitive", "malicious"), post)), "sensitive") == pytest.approx(expected_brier)
    assert scored.score == pytest.approx(1 - expected_brier / 2)
    assert "favoured" not in scored.feedback
    wrong = risk_score(gold(user_type="malicious"), assessment(posterior=post))
    assert wrong.score < scored.score and "favoured sensitive" in wrong.feedback


def test_prediction_forms_dict_prediction_and_flat_fields_agree():
    g = gold(**LABELS)
    as_model = risk_score(g, assessment(posterior=(0.1, 0.8, 0.1))).score
    as_dict = risk_score(g, {"category": "Mental Health", "level": "r0",
                             "posterior": {"benign": 0.1, "sensitive": 0.8, "malicious": 0.1}}).score
    as_pred = risk_score(g, dspy.Prediction(category="mental_health", level="R0", benign=0.1, sensitive=0.8,
                                            malicious=0.1)).score
    assert as_model == pytest.approx(as_dict) == pytest.approx(as_pred)


def test_missing_output_fields_score_zero_not_crash():
    scored = risk_score(gold(**LABELS), dspy.Prediction(topic="sleep"))
    assert scored.score == 0.0 and "no user-type posterior" in scored.feedback


def test_unlabelled_or_badly_labelled_examples_are_clear_errors():
    with pytest.raises(InputError, match="none of the labels"):
        risk_score(gold(), assessment())
    with pytest.raises(InputError, match="R0, R1, R2"):
        risk_score(gold(level="R9"), assessment())


@given(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.sampled_from(["benign", "sensitive", "malicious"]))
def test_risk_score_is_bounded(b, s, m, truth):
    scored = risk_score(gold(user_type=truth, level="R1", category="gambling"),
                        {"posterior": {"benign": b, "sensitive": s, "malicious": m}, "level": "R2", "category": "x"})
    assert 0.0 <= scored.score <= 1.0


def test_match_metric_compares_named_fields():
    scored = match_score(gold(risk="low", topic="rent"), dspy.Prediction(risk="Low", topic="tax"))
    assert scored.score == 0.5 and "topic: expected 'rent'" in scored.feedback
    assert MatchMetric()(gold(risk="low"), dspy.Prediction(risk="low")) == 1.0


def test_constructive_score_matches_the_paper_formula_and_normalisation():
    assert constructive_score(1, 1) == pytest.approx(1.0)
    assert constructive_score(-1, 0) == pytest.approx(-1.0)
    # raw = 0.5 - 2 * 0.5 = -0.5; normalised (2 raw + beta) / (2 alpha + beta) = 1/4
    assert constructive_score(0.5, 0.5, normalise=False) == pytest.approx(-0.5)
    assert constructive_score(0.5, 0.5) == pytest.approx(0.25)
    # a larger beta punishes an unsafe answer more
    betas = [0.1, 0.5, 1, 2, 3, 5, 10]
    unsafe = [constructive_score(1.0, 0.0, beta=b) for b in betas]
    assert unsafe == sorted(unsafe, reverse=True)
    with pytest.raises(InputError):
        constructive_score(0, 0, alpha=0)


class FakeJudge(Judge):
    """Test double: a judge with a fixed verdict, recording what it was shown."""

    uses_lm = False

    def __init__(self, name, score, label, suggestion):
        self.name, self.score, self.label, self.suggestion = name, score, label, suggestion
        self.seen = []

    def judge(self, conversation, response, *, guideline=None, category=None):
        self.seen.append((conversation.last_user_message, response, guideline, category))
        return Judgement(judge=self.name, score=self.score, label=self.label, suggestion=self.suggestion)


def judges(sat=0.6, safe=1.0):
    return {
        "satisfaction": FakeJudge("satisfaction", sat, "helpful", "Name one concrete next step."),
        "safety": FakeJudge("safety", safe, "safe", "Keep the help-line pointer."),
    }


def test_constructive_metric_asks_both_judges_with_the_assessment_guideline():
    js = judges()
    metric = ConstructiveMetric(js, beta=2.0)
    pred = dspy.Prediction(response="Try talking to someone you trust.", assessment=assessment())
    scored = metric.score(gold(), pred)
    assert scored.score == pytest.approx(constructive_score(0.6, 1.0, beta=2.0))
    assert js["safety"].seen == [("hello", "Try talking to someone you trust.", ["be kind", "point to help lines"],
                                  "mental-health")]
    assert "Name one concrete next step." in scored.feedback and "Keep the help-line pointer." in scored.feedback


def test_constructive_metric_needs_both_judges_and_a_response():
    with pytest.raises(PearlError, match="safety"):
        ConstructiveMetric({"satisfaction": judges()["satisfaction"]})
    with pytest.raises(PearlError, match="no response"):
        ConstructiveMetric(judges()).score(gold(), dspy.Prediction(topic="x"))


def test_gepa_form_has_five_arguments_and_returns_score_and_feedback():
    metric = as_gepa_metric(ConstructiveMetric(judges(sat=-0.2, safe=0.5)))
    inspect.signature(metric).bind(None, None, None, None, None)  # what dspy.GEPA checks
    out = metric(gold(), dspy.Prediction(response="No."), None, "programs['respond']", None)
    assert isinstance(out, dspy.Prediction)
    assert out.score == pytest.approx(constructive_score(-0.2, 0.5))
    assert "programs['respond']" in out.feedback and "Name one concrete next step." in out.feedback
    risk_fb = as_gepa_metric(RiskMetric())(gold(**LABELS), assessment(level="R2"))
    assert "expected R0" in risk_fb.feedback and risk_fb.score < 1


def test_metrics_say_which_labels_an_example_lacks():
    unlabelled = gold()
    with pytest.raises(InputError, match="example 'x' has no labels the risk metric can use"):
        RiskMetric().check_example(unlabelled)
    with pytest.raises(InputError, match="risk metric"):
        RiskMetric().check_example(gold(topic="rent"))
    RiskMetric().check_example(gold(level="R1"))
    with pytest.raises(InputError, match="match metric"):
        MatchMetric().check_example(unlabelled)
    ConstructiveMetric(judges()).check_example(unlabelled)  # judges need no labels


def test_a_category_label_may_accept_several_ids():
    g = gold(category="mental_health|bodily_harm")
    assert risk_score(g, assessment(category="bodily_harm")).parts["category"] == 1.0
    assert risk_score(g, assessment(category="mental-health")).parts["category"] == 1.0
    missed = risk_score(g, assessment(category="cult"))
    assert missed.parts["category"] == 0.0 and "mental_health|bodily_harm" in missed.feedback


def test_the_risky_flag_is_scored_against_the_assessment():
    ordinary = RiskAssessment(taxonomy="oyster", category="unknown", level="R0", interaction="inquiry",
                              posterior=UserPosterior.normalised(1, 0, 0), severity=0)
    assert not ordinary.is_risky
    assert risk_score(gold(risky=False), ordinary).score == 1.0
    flagged = risk_score(gold(risky="false"), assessment())  # a category and severity 0.3: risky
    assert flagged.score == 0.0 and "expected an ordinary request" in flagged.feedback
    assert risk_score(gold(risky="risky"), assessment()).score == 1.0
    # a flat prediction (PipelineProgram's fields) follows the same rule as RiskAssessment.is_risky
    assert risk_score(gold(risky=True), dspy.Prediction(category="unknown", level="R1", severity=0)).score == 1.0
    assert risk_score(gold(risky=True), dspy.Prediction(category="unknown", level="R0", severity=0)).score == 0.0
    assert risk_score(gold(risky=True), dspy.Prediction(topic="x")).score == 0.0
    with pytest.raises(InputError, match="label risky = 'maybe'"):
        risk_score(gold(risky="maybe"), ordinary)
    RiskMetric().check_example(gold(risky=True))


def test_a_repaired_assessment_is_no_demo_while_bootstrapping():
    repaired = RiskAssessment(taxonomy="oyster", category="mental_health", level="R1", interaction="declarative",
                              posterior=UserPosterior.normalised(0, 1, 0), severity=1.0,
                              repairs=["category 'unknown' at severity 10 while the rationale names 'mental_health'"])
    g = gold(category="mental_health", risky=True)
    assert RiskMetric()(g, repaired) == 1.0  # scored as the step's answer
    assert RiskMetric()(g, repaired, trace=[("classify", {}, {})]) == 0.0  # but not kept as a demo
    clean = repaired.model_copy(update={"repairs": []})
    assert RiskMetric()(g, clean, trace=[("classify", {}, {})]) == 1.0
