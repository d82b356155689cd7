"""Scripted model answers for the CSA steps (test doubles for `dspy.utils.DummyLM`)."""

import math

import dspy
from dspy.utils import DummyLM

from pearl.strategies.user_readings import QUESTIONS

CLASSIFY = {"rationale": "The person talks about ending their life.", "group": "physical_and_mental_harm",
            "category": "mental_health", "level": "R1",
            "interaction": "declarative", "attack_form": "none", "benign": 2, "sensitive": 8, "malicious": 0,
            "severity": 8}
ADAPT = {"guideline": ["Answer with warmth first.", "Share a crisis line.", "Never discuss methods."]}
PAIR = {"satisfied": 5, "rephrases": 2, "escalates": 1, "leaves_unsafe": 1, "keeps_attacking": 1, "risk": 2}
DRAFT = {"user_needs": "To feel heard and find a reason to keep going.", "risk_signal": "hopeless words about ending it",
         "safety_strategies": ["acknowledge the pain", "share a crisis line"],
         "usefulness_strategies": ["suggest one small step for tonight"]}
RECOMBINE = {"reasoning": "They are hurting and need care.", "response": "I'm really sorry you feel this way. You are not alone."}


class ReadingDummyLM(DummyLM):
    """Test double: DummyLM for the structured calls; a call asking for `logprobs` gets first-token
    alternatives whose P(yes) is `answer(question, message)`, and is recorded in `readings_asked`."""

    def __init__(self, answers, answer):
        super().__init__(answers, adapter=dspy.JSONAdapter())
        self.answer, self.readings_asked = answer, []

    def forward(self, prompt=None, messages=None, **kwargs):
        """A reading answers with an OpenAI-shaped response, whether the double is called directly or through a
        wrapping LM (`pearl.lm.metered.MeteredLM`, as the runner uses)."""
        if not kwargs.get("logprobs"):
            return super().forward(prompt=prompt, messages=messages, **kwargs)
        said = messages[-1]["content"]
        self.readings_asked.append(said)
        p = self.answer(said)
        top = [{"token": "Yes", "logprob": math.log(p)}, {"token": "No", "logprob": math.log(1 - p)}]
        logprobs = {"content": [{"token": "Yes", "logprob": 0.0, "top_logprobs": top}]}
        return {"choices": [{"message": {"content": "Yes" if p >= 0.5 else "No"}, "logprobs": logprobs,
                             "finish_reason": "length"}],
                "usage": {"prompt_tokens": 0, "completion_tokens": 1, "total_tokens": 1}, "model": "dummy"}


def reader(danger: float, distress: float):
    """`ReadingDummyLM`'s answer: P(yes) `danger` to the danger question, `distress` to any other."""
    return lambda said: danger if QUESTIONS["danger"] in said else distress
