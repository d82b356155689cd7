"""Step outputs on spans: risk, decision and judgements as `pearl.*` attributes and
`gen_ai.evaluation.result` events; OpenInference kinds; free text only with content on."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel

from otel_support import ScriptedLM, spans  # noqa: F401  (fixture)
from pearl.csa import Decision, RiskAssessment, UserPosterior, UtilityRow
from pearl.host.hookspecs import hookimpl
from pearl.host.judge import Judgement
from pearl.runtime.pipeline import load
from pearl.runtime.runner import Runner
from pearl.host.step import Step
from pearl.traces import semconv as sc
from pearl.traces.attributes import describe, evaluation_event, find_described, span_kind_for
from pearl.traces.content import set_capture_content
from pearl.types import Conversation

RISK = RiskAssessment(
    taxonomy="oyster", category="weapons", group="physical", level="R1", interaction="inquiry",
    posterior=UserPosterior(benign=0.5, sensitive=0.3, malicious=0.2), severity=0.6,
    guideline=["no synthesis routes"], rationale="asks how a thing works; the user said 'my neighbour'",
)
DECISION = Decision(
    strategy="safe_redirect", admissible=True, reason="highest utility inside the boundary",
    table=[UtilityRow(strategy="safe_redirect", expected_utility=0.42, expected_retention=0.7, expected_risk=0.1,
                      worst_risk=0.2, cost=0.3, admissible=True),
           UtilityRow(strategy="comply", expected_utility=0.5, expected_retention=0.9, expected_risk=0.6,
                      worst_risk=0.9, cost=0.5, admissible=False)],
    alpha=1.0, beta=1.0, gamma=0.1, tau=0.5, epsilon=0.05,
)


class Round(BaseModel):
    response: str
    safety: Judgement
    satisfaction: Judgement


class History(BaseModel):
    """Shaped like a Lingo-BP output: rounds of judged responses."""

    response: str
    rounds: list[Round]


def judged(i, safety, satisfaction):
    return Round(response=f"draft {i}",
                 safety=Judgement(judge="safety", score=safety, label="safe" if safety == 1 else "mostly safe",
                                  suggestion="drop the dosage"),
                 satisfaction=Judgement(judge="satisfaction", score=satisfaction, label="ok"))


def evaluations(events):
    return [dict(a) for name, a in events if name == sc.GEN_AI_EVALUATION_RESULT]


def test_risk_assessment_attributes_and_event():
    set_capture_content(None)
    attributes, events = describe(RISK)
    assert attributes["pearl.risk.category"] == "weapons"
    assert attributes["pearl.risk.level"] == "R1"
    assert attributes["pearl.risk.severity"] == 0.6
    assert attributes["pearl.risk.posterior.malicious"] == 0.2
    assert attributes["pearl.risk.is_risky"] is True
    assert "pearl.risk.rationale" not in attributes
    (event,) = evaluations(events)
    assert event[sc.GEN_AI_EVALUATION_NAME] == "risk"
    assert event[sc.GEN_AI_EVALUATION_SCORE_VALUE] == 0.6
    assert event[sc.GEN_AI_EVALUATION_SCORE_LABEL] == "R1"
    assert sc.GEN_AI_EVALUATION_EXPLANATION not in event  # the rationale quotes the user


def test_free_text_only_with_content(monkeypatch):
    set_capture_content(True)
    try:
        attributes, events = describe(RISK)
        assert attributes["pearl.risk.rationale"] == RISK.rationale
        assert evaluations(events)[0][sc.GEN_AI_EVALUATION_EXPLANATION] == RISK.rationale
        _, events = describe(judged(0, 1.0, 0.5))
        assert evaluations(events)[0][sc.GEN_AI_EVALUATION_EXPLANATION] == "drop the dosage"
    finally:
        set_capture_content(None)


def test_decision_attributes_and_event():
    attributes, events = describe(DECISION)
    assert attributes["pearl.decision.strategy"] == "safe_redirect"
    assert attributes["pearl.decision.expected_utility"] == 0.42
    assert attributes["pearl.decision.candidates"] == 2
    assert attributes["pearl.decision.admissible_candidates"] == 1
    (event,) = evaluations(events)
    assert event[sc.GEN_AI_EVALUATION_NAME] == "decision"
    assert event[sc.GEN_AI_EVALUATION_SCORE_VALUE] == 0.42
    assert event[sc.GEN_AI_EVALUATION_SCORE_LABEL] == "safe_redirect"


def test_judgements_are_found_anywhere():
    history = History(response="final", rounds=[judged(0, 0.5, -0.2), judged(1, 1.0, 0.6)])
    assert [p for p, _ in find_described(history)] == [
        "rounds[0].safety", "rounds[0].satisfaction", "rounds[1].safety", "rounds[1].satisfaction"]
    attributes, events = describe(history)
    events = evaluations(events)
    assert [(e[sc.GEN_AI_EVALUATION_NAME], e[sc.GEN_AI_EVALUATION_SCORE_VALUE]) for e in events] == [
        ("safety", 0.5), ("satisfaction", -0.2), ("safety", 1.0), ("satisfaction", 0.6)]
    assert events[2]["pearl.judgement.path"] == "rounds[1].safety"
    # attributes keep each judge's last verdict
    assert attributes["pearl.judgement.safety.score"] == 1.0
    assert attributes["pearl.judgement.satisfaction.label"] == "ok"
    assert attributes["pearl.judgement.count"] == 4
    # a bare Judgement (a judge step's output) works too
    _, events = describe(Judgement(judge="refusal", score=0.0, label="no refusal"))
    assert evaluations(events)[0][sc.GEN_AI_EVALUATION_SCORE_LABEL] == "no refusal"


class Plain(BaseModel):
    text: str
    mood: Literal["calm", "angry"]
    count: int
    maybe: Literal["a", "b"] | None = None


def test_other_outputs_show_scalars_but_not_free_text():
    attributes, events = describe(Plain(text="secret words", mood="calm", count=3, maybe="b"))
    assert attributes["pearl.output.mood"] == "calm"
    assert attributes["pearl.output.count"] == 3
    assert attributes["pearl.output.maybe"] == "b"
    assert "pearl.output.text" not in attributes and events == []


def test_span_kinds_from_output_types():
    assert span_kind_for(RiskAssessment) == "GUARDRAIL"
    assert span_kind_for(Judgement) == "EVALUATOR"
    assert span_kind_for(History) == "EVALUATOR"  # holds judgements, however deep
    assert span_kind_for(Decision) == "CHAIN"
    assert span_kind_for(Plain) == "CHAIN"


class Verdict(BaseModel):
    """A third-party output that describes itself (the `SpanDescribed` protocol)."""

    span_kind: ClassVar[str] = "GUARDRAIL"
    flagged: bool
    why: str

    def span_attributes(self, content: bool) -> dict:
        return {"acme.flagged": self.flagged, "acme.why": self.why if content else None}

    def span_events(self, content: bool) -> list:
        return [evaluation_event("acme", 1.0 if self.flagged else 0.0, "flagged", self.why if content else None)]


def test_outputs_describe_themselves():
    assert span_kind_for(Verdict) == "GUARDRAIL"
    set_capture_content(None)
    attributes, events = describe(Verdict(flagged=True, why="quotes the user"))
    assert attributes["acme.flagged"] is True and "acme.why" not in attributes
    assert "pearl.output.flagged" not in attributes  # a self-described output chooses its own attributes
    (event,) = evaluations(events)
    assert event[sc.GEN_AI_EVALUATION_NAME] == "acme" and sc.GEN_AI_EVALUATION_EXPLANATION not in event
    set_capture_content(True)
    try:
        attributes, events = describe(Verdict(flagged=True, why="quotes the user"))
        assert attributes["acme.why"] == "quotes the user"
        assert evaluations(events)[0][sc.GEN_AI_EVALUATION_EXPLANATION] == "quotes the user"
    finally:
        set_capture_content(None)


# --- on real step spans ----------------------------------------------------------------

class RiskStep(Step):
    """Test double: a fixed risk assessment."""

    name = "test-risk"
    uses_lm = False
    output = ("risk", RiskAssessment)

    def run(self, state):
        return RISK


class JudgeStep(Step):
    """Test double: a fixed Lingo-BP-like history."""

    name = "test-judged"
    uses_lm = False
    output = ("response", History)

    def run(self, state):
        return History(response="final", rounds=[judged(0, 1.0, 0.6)])


class Plugin:
    @hookimpl
    def register_steps(self, register):
        register(RiskStep)
        register(JudgeStep)


def test_step_spans_carry_scores(host, spans, tmp_path):
    host.register(Plugin(), name="tests.scored")
    path = tmp_path / "scored.toml"
    path.write_text('name = "scored"\nanswer = "response"\n[steps.risk]\nuse = "test-risk"\n'
                    '[steps.judge]\nuse = "test-judged"\nafter = ["risk"]\n')
    Runner(load(str(path), host), {"task": ScriptedLM([])}, host).run(Conversation.from_text("hi"))
    steps = {s.name: s for s in spans.get_finished_spans()}
    risk, judge = steps["step risk"], steps["step judge"]
    assert risk.attributes[sc.OPENINFERENCE_SPAN_KIND] == "GUARDRAIL"
    assert risk.attributes["pearl.risk.level"] == "R1"
    assert [e.attributes[sc.GEN_AI_EVALUATION_NAME] for e in risk.events] == ["risk"]
    assert judge.attributes[sc.OPENINFERENCE_SPAN_KIND] == "EVALUATOR"
    assert [e.name for e in judge.events] == [sc.GEN_AI_EVALUATION_RESULT] * 2
    assert judge.attributes["pearl.judgement.safety.score"] == 1.0
