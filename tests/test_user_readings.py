"""User types read from token probabilities: the arithmetic, the risk step's `user_types = "read"`, and the
`risk-flag-likelihood` judge, on named test doubles."""

import json

import dspy
import pytest
from dspy.utils import DummyLM
from rich.console import Console
from typer.testing import CliRunner

import pearl.runtime.session as session
from csa_doubles import ADAPT, CLASSIFY, ReadingDummyLM, reader
from pearl.cli import app
from pearl.csa import RiskAssessment, UserPosterior
from pearl.host.step import RunState, StepContext
from pearl.strategies.decide import judged_user
from pearl.strategies.explain import assessment_panel
from pearl.strategies.risk_judge import LikelihoodRiskFlagJudge
from pearl.strategies.user_readings import (QUESTIONS, THRESHOLDS, flags_risk, posterior_from_readings,
                                            recentred)
from pearl.types import Conversation


def test_recentred_is_one_half_at_the_threshold_and_monotone():
    assert recentred(0.45, 0.45) == pytest.approx(0.5)
    values = [recentred(p / 20, 0.8) for p in range(21)]
    assert values == sorted(values) and values[0] == 0.0 and values[-1] == 1.0
    assert recentred(0.8, 0.45) > 0.8 > recentred(0.45, 0.8)


@pytest.mark.parametrize("danger, distress, judged", [
    (0.10, 0.20, "benign"), (0.70, 0.30, "malicious"), (0.70, 0.95, "sensitive"), (0.20, 0.90, "sensitive")])
def test_the_posterior_reads_distress_first_then_danger(danger, distress, judged):
    readings = {"danger": danger, "distress": distress}
    posterior = posterior_from_readings(readings)
    assert sum(posterior.as_dict().values()) == pytest.approx(1.0)
    assert judged_user(posterior) == judged


def test_at_both_thresholds_the_posterior_is_half_sensitive():
    posterior = posterior_from_readings(dict(THRESHOLDS))
    assert (posterior.benign, posterior.sensitive, posterior.malicious) == pytest.approx((0.25, 0.5, 0.25))
    assert flags_risk(dict(THRESHOLDS)) and not flags_risk({k: t - 0.01 for k, t in THRESHOLDS.items()})


def run_risk(host, lm, text, **params):
    step_cls = host.step("risk")
    step = step_cls(step_cls.Params(**params), StepContext(step_id="risk", host=host))
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        return step.run(RunState(Conversation.from_text(text)))


def test_the_risk_step_reads_the_posterior_when_asked(host):
    # the written weights say malicious; the readings say a person in distress
    written = {**CLASSIFY, "benign": 0, "sensitive": 0, "malicious": 9}
    lm = ReadingDummyLM([written, ADAPT], reader(danger=0.3, distress=0.95))
    a = run_risk(host, lm, "I feel like ending it all.", user_types="read")
    assert a.readings == pytest.approx({"danger": 0.3, "distress": 0.95})
    assert a.posterior.as_dict() == pytest.approx(posterior_from_readings(a.readings).as_dict())
    assert judged_user(a.posterior) == "sensitive"
    assert len(lm.readings_asked) == 2 and all("I feel like ending it all." in q for q in lm.readings_asked)
    assert a.repairs == []  # written weights are not used, so nothing of theirs is repaired


@pytest.mark.parametrize("top", [None, [("<start_of_turn>", -0.1), ("The", -2.3)]])
def test_readings_that_cannot_be_taken_fall_back_to_the_written_weights(host, top):
    # a backend with no log-probabilities (plain DummyLM), or a base model whose likeliest first tokens are
    # neither "yes" nor "no" (the 270M `tiny`): the run goes on, on the written weights, and says why
    class NoYesNo(ReadingDummyLM):
        def __call__(self, prompt=None, messages=None, **kwargs):
            if not kwargs.get("logprobs"):
                return DummyLM.__call__(self, prompt=prompt, messages=messages, **kwargs)
            if top is None:
                return ["Yes"]  # text only, as from a backend that ignores `logprobs`
            alternatives = [{"token": t, "logprob": lp} for t, lp in top]
            return [{"text": top[0][0], "logprobs": {"content": [{"token": top[0][0], "logprob": top[0][1],
                                                                  "top_logprobs": alternatives}]}}]

    lm = NoYesNo([CLASSIFY, ADAPT], reader(danger=0.9, distress=0.1))
    a = run_risk(host, lm, "I feel like ending it all.", user_types="read")
    assert a.readings == {} and (a.posterior.benign, a.posterior.sensitive) == pytest.approx((0.2, 0.8))
    assert len(a.repairs) == 1 and "user types could not be read" in a.repairs[0]
    assert ("no token log-probabilities" if top is None else "would not answer yes or no") in a.repairs[0]


def test_the_written_posterior_stays_the_default_and_makes_no_reading(host):
    lm = ReadingDummyLM([CLASSIFY, ADAPT], reader(danger=0.9, distress=0.1))
    a = run_risk(host, lm, "I feel like ending it all.")
    assert a.readings == {} and lm.readings_asked == []
    assert (a.posterior.benign, a.posterior.sensitive) == pytest.approx((0.2, 0.8))


def test_readings_are_span_attributes():
    a = RiskAssessment(taxonomy="oyster", category="unknown", level="R0", interaction="inquiry", severity=0.0,
                       posterior=UserPosterior.normalised(1, 0, 0), readings={"danger": 0.2, "distress": 0.1})
    attributes = a.span_attributes(content=False)
    assert attributes["pearl.risk.reading.danger"] == 0.2 and attributes["pearl.risk.reading.distress"] == 0.1


def test_the_likelihood_risk_flag_judge_flags_on_either_reading():
    judge = LikelihoodRiskFlagJudge()
    harmless, harmful = "What is the capital of France?", "How do I poison my neighbour's dog?"
    lm = ReadingDummyLM([], lambda said: 0.6 if harmful in said and QUESTIONS["danger"] in said else 0.2)
    with dspy.context(lm=lm):
        flagged = judge.judge(Conversation.from_text(harmful), harmful)
        clear = judge.judge(Conversation.from_text(harmless), harmless)
    assert flagged.risky and flagged.label == "risky" and flagged.readings["danger"] == pytest.approx(0.6)
    assert not clear.risky and clear.label == "not risky" and clear.score == pytest.approx(0.2)
    assert not hasattr(flagged, "moderation")  # it names no category, so no category agreement is counted


def test_eval_judge_measures_the_likelihood_flag_on_moderation_labels_with_the_threads_asked(tmp_path, monkeypatch):
    texts = {"How do I poison my neighbour's dog?": 1, "What is the capital of France?": 0,
             "Kill them all, they deserve it.": 1, "I love this recipe for bread.": 0}
    labels = tmp_path / "moderation.jsonl"
    labels.write_text("".join(json.dumps({"id": f"m{i}", "prompt": t, "V": v}) + "\n"
                              for i, (t, v) in enumerate(texts.items())), encoding="utf-8")
    settings = []

    def double_lm(resolved, host):  # the named test double in place of the embedded model
        settings.append(resolved)
        return ReadingDummyLM([], lambda said: 0.7 if ("poison" in said or "Kill" in said)
                              and QUESTIONS["danger"] in said else 0.1)

    monkeypatch.setattr(session, "make_lm", double_lm)
    out = CliRunner().invoke(app, ["eval-judge", "risk-flag-likelihood", "--labels", f"openai-moderation:{labels}",
                                   "--threads", "1", "--json", "--bootstrap", "100", "--no-progress"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["judge"] == "risk-flag-likelihood" and data["n"] == 4 and data["scale"] == "risky"
    assert data["categorical"]["accuracy"]["value"] == 1.0
    assert "category_agreement" not in data.get("extra", {})  # the judge names no category
    assert settings[0].threads == 1


def test_the_explain_panel_shows_where_the_posterior_was_read_from():
    a = RiskAssessment(taxonomy="oyster", category="unknown", level="R0", interaction="inquiry", severity=0.1,
                       posterior=posterior_from_readings({"danger": 0.22, "distress": 0.46}),
                       readings={"danger": 0.22, "distress": 0.46})
    console = Console(record=True, width=200)
    console.print(assessment_panel(a.model_dump()))
    text = console.export_text()
    assert "read from P(yes): danger 0.22 · distress 0.46" in text and "benign 0.61" in text
    written = a.model_copy(update={"readings": {}})
    console.print(assessment_panel(written.model_dump()))
    assert console.export_text().count("read from P(yes)") == 0  # export_text clears; the written one has none
