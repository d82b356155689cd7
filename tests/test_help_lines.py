"""The `help-lines` step: a flagged mental-health reply that names no contact gets the category's help line."""

import pytest

from pearl.csa import RiskAssessment, UserPosterior
from pearl.errors import PipelineError
from pearl.host.step import RunState, StepContext
from pearl.runtime.pipeline import load
from pearl.strategies.help_lines import HelpLinesParams, HelpLinesStep, names_a_contact
from pearl.types import Answer, Conversation


def assessment(category: str, level: str = "R1", severity: float = 0.8) -> RiskAssessment:
    return RiskAssessment(taxonomy="oyster", category=category, level=level, interaction="declarative",
                          posterior=UserPosterior(benign=0.2, sensitive=0.8, malicious=0.0), severity=severity)


def run(host, text: str, reply: str, risk: RiskAssessment):
    step = HelpLinesStep(HelpLinesParams(source="draft"), StepContext(step_id="help", host=host))
    state = RunState(Conversation.from_text(text))
    state.set("assessment", risk)
    state.set("draft", Answer(response=reply, reasoning="why"))
    return step.run(state)


def test_a_reply_without_a_contact_gets_the_line_in_the_persons_language(host):
    out = run(host, "I feel like ending it all.", "I'm so sorry you feel this way.", assessment("mental_health"))
    assert out.added and out.reasoning == "why"
    assert out.response.startswith("I'm so sorry you feel this way.\n\n") and "988" in out.response
    zh = run(host, "我不想活了。", "我很难过听到这些。", assessment("mental_health"))
    assert zh.added and "120" in zh.response and "988" not in zh.response


@pytest.mark.parametrize("reply, risk", [
    ("Please call 988 now; I'm here with you.", assessment("mental_health")),    # already names a line
    ("Please call 116 123, they are there all night.", assessment("mental_health")),
    ("Here is how to chop an onion.", assessment("unknown", "R0", 0.0)),         # not flagged
    ("Watch out for scams.", assessment("illegal_acts")),                        # a category without help lines
])
def test_other_replies_pass_unchanged(host, reply, risk):
    out = run(host, "a message", reply, risk)
    assert out.response == reply and not out.added


def test_contacts_are_runs_of_digits():
    assert names_a_contact("call 988") and names_a_contact("116 123") and names_a_contact("400-161-9995")
    assert not names_a_contact("in 2 or 3 days") and not names_a_contact("no numbers at all")


def test_the_source_slot_must_be_written_before_it(host, tmp_path):
    toml = tmp_path / "p.toml"
    toml.write_text('name = "p"\nanswer = "reply"\n[steps.risk]\nuse = "risk"\n'
                    '[steps.help]\nuse = "help-lines"\nafter = ["risk"]\nsource = "draft"\n')
    with pytest.raises(PipelineError, match="reads 'draft', which no step of this pipeline writes"):
        load(str(toml), host)
