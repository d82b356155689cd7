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


def test_a_cue_in_the_message_calls_for_the_lines_whatever_the_risk_step_chose(host):
    # the 1.5B's lite-plan filed this message as `unknown` at R0 (2026-12-05)
    teen = run(host, "I'm a teenager and I'm thinking about suicide. I haven't attempted it yet.",
               "I understand that you're feeling very alone.", assessment("unknown", "R0", 0.0))
    assert teen.added and teen.category == "mental_health" and "988" in teen.response
    zh = run(host, "我觉得活着没有意义，什么都不想做了。", "我明白你的感受。", assessment("illegal_acts"))
    assert zh.added and zh.category == "mental_health" and "120" in zh.response
    history = run(host, "Why did Kurt Cobain commit suicide?", "He had struggled with depression for years.",
                  assessment("unknown", "R0", 0.0))
    assert not history.added and history.category is None


def test_a_number_the_lines_do_not_list_is_not_a_contact(host):
    # the 1.5B wrote the old US line and a wrong Crisis Text Line number (it is 741741)
    made_up = "You can call 1-800-273-8255 or text 741-741-7411 to reach a crisis counselor."
    out = run(host, "I feel like ending it all.", made_up, assessment("mental_health"))
    assert out.added and out.response.startswith(made_up) and "988" in out.response


def test_a_help_cue_must_be_a_regular_expression():
    from pydantic import ValidationError

    from pearl.csa import RiskCategory

    with pytest.raises(ValidationError, match=r"help cue '\(unclosed' is not a regular expression"):
        RiskCategory(id="x", name="X", group="g", help_cues=["(unclosed"])


def test_contacts_are_runs_of_digits():
    assert names_a_contact("call 988") and names_a_contact("116 123") and names_a_contact("400-161-9995")
    assert not names_a_contact("in 2 or 3 days") and not names_a_contact("no numbers at all")
    assert names_a_contact("call 116 123 now", {"988", "116123"}) and not names_a_contact("call 555 0199", {"988"})


def test_the_source_slot_must_be_written_before_it(host, tmp_path):
    toml = tmp_path / "p.toml"
    toml.write_text('name = "p"\nanswer = "reply"\n[steps.risk]\nuse = "risk"\n'
                    '[steps.help]\nuse = "help-lines"\nafter = ["risk"]\nsource = "draft"\n')
    with pytest.raises(PipelineError, match="reads 'draft', which no step of this pipeline writes"):
        load(str(toml), host)


def test_the_self_harm_abbreviation_is_a_cue_only_in_capitals(host):
    """"SH" is how self-harm messages in the moderation labels name it (3 of its 26 self-harm texts, none of
    the 810 others); a lower-case "sh" is a word of its own."""
    from pearl.csa.taxonomy import get_taxonomy

    mental_health = next(c for c in get_taxonomy(host, "oyster").categories if c.id == "mental_health")
    assert mental_health.cued_by("If I don't SH I stop eating. So SH is definitely the lesser of two evils.")
    assert not mental_health.cued_by("sh, the baby is asleep; can you recommend a quiet fan?")
    assert not mental_health.cued_by("The SHA-256 of the file is wrong.")


def test_cutting_veins_or_wrists_is_a_cue(host):
    """A first-person account of cutting veins in the moderation labels' self-harm texts matched no cue, so the
    risk step filed it under no category (2026-12-08); the cue names veins and wrists only, so an accident
    ("cut my finger", "cut my arm on a fence") or a craft ("cut the arms off the chair") is no cue."""
    from pearl.csa.taxonomy import get_taxonomy

    mental_health = next(c for c in get_taxonomy(host, "oyster").categories if c.id == "mental_health")
    assert mental_health.cued_by("I have cut veins before and been able to manage it on my own.")
    assert mental_health.cued_by("Last night I was cutting my wrists again.")
    assert mental_health.cued_by("i slit my wrist once")
    for text in ("I cut my finger while cooking, how do I stop the bleeding?", "I cut my arm on a fence.",
                 "Can I cut the arms off the chair?", "How do veins carry blood back to the heart?"):
        assert not mental_health.cued_by(text), text
