"""Recombination: turn a reasoning chain into natural reasoning and a final response.

The response must read as if written without knowledge of the framework: the chain is
rendered under plain headings, and `find_leaks` checks that no framework vocabulary
("safety guideline", "usefulness strategy", node names...) reaches the user. A leaking
answer is regenerated once; if it still leaks, the offending sentences are removed and
the draft is marked `scrubbed`.

Used by the `recombine` step and by Lingo-BP (`pearl.strategies.refine`) after every
chain update.
"""

from __future__ import annotations

import re

import dspy

from pearl.csa import Chain, Draft
from pearl.host.hookspecs import hookimpl
from pearl.runtime.programs import RETRY_TEMPERATURE, call_program
from pearl.host.step import Step
from pearl.types import Conversation

FRAMEWORK_TERMS = (
    "safety guideline", "safety strateg", "usefulness strateg", "response strateg", "risk intent",
    "user needs analysis", "reasoning chain", "pearl point", "lingo-bp", "user_needs", "risk_intent",
    "safety_guidelines", "safety_strategies", "usefulness_strategies",
)


def find_leaks(text: str) -> list[str]:
    """The framework terms that appear in `text` (case-insensitive)."""
    lowered = text.lower()
    return [term for term in FRAMEWORK_TERMS if term in lowered]


def scrub(text: str) -> str:
    """Drop the sentences of `text` that contain framework terms."""
    sentences = re.split(r"(?<=[.!?。！？])\s+", text)
    return " ".join(s for s in sentences if not find_leaks(s)).strip()


def render_chain(chain: Chain) -> str:
    """The chain as private notes under plain headings (no framework vocabulary)."""
    def bullets(items: list[str]) -> str:
        return "\n".join(f"- {item}" for item in items) or "- (none)"

    parts = [f"What the person needs:\n{chain.user_needs}"]
    if not chain.simplified:
        parts.append(f"What to watch out for:\n{chain.risk_intent or '(nothing)'}")
        parts.append(f"Rules to respect:\n{bullets(chain.safety_guidelines)}")
    parts.append(f"How to keep the answer responsible:\n{bullets(chain.safety_strategies)}")
    parts.append(f"How to make the answer most useful:\n{bullets(chain.usefulness_strategies)}")
    return "\n\n".join(parts)


class RecombineSignature(dspy.Signature):
    """Using your private notes, think the request through in your own words, then write the reply.

    The reply speaks directly to the person, in their language, and never mentions the notes,
    their headings, rules or plans: it simply is the best answer those notes describe.
    """

    conversation: str = dspy.InputField(desc="the conversation so far, one 'role: text' line per turn")
    notes: str = dspy.InputField(desc="your private notes on how to answer")
    reasoning: str = dspy.OutputField(desc="your thinking, in natural first-person prose")
    response: str = dspy.OutputField(desc="the reply to the person")


class Recombine(dspy.Module):
    """chain + conversation -> reasoning + response."""

    def __init__(self):
        super().__init__()
        self.write = dspy.Predict(RecombineSignature)

    def forward(self, conversation: str, chain: Chain, max_tokens: int | None = None):
        config = {"max_tokens": max_tokens} if max_tokens else {}
        return self.write(conversation=conversation, notes=render_chain(chain), config=config)


def recombine(step_id: str, program: Recombine, conversation: Conversation, chain: Chain,
              max_tokens: int | None = None) -> Draft:
    """Run `program`, enforce the no-leak rule, and return a `Draft`."""
    transcript = conversation.transcript()
    pred = call_program(step_id, program, conversation=transcript, chain=chain, max_tokens=max_tokens)
    scrubbed = False
    if find_leaks(pred.response):
        lm = dspy.settings.lm
        with dspy.context(lm=lm.copy(temperature=RETRY_TEMPERATURE) if lm is not None else None):
            pred = call_program(step_id, program, conversation=transcript, chain=chain, max_tokens=max_tokens)
        if find_leaks(pred.response):
            cleaned = scrub(pred.response)
            if not cleaned:
                from pearl.errors import StepError

                raise StepError(step_id, "every sentence of the response mentions the framework's internals")
            pred.response, scrubbed = cleaned, True
    return Draft(response=pred.response.strip(), reasoning=(pred.reasoning or "").strip() or None,
                 simplified=chain.simplified, scrubbed=scrubbed)


class RecombineStep(Step):
    name = "recombine"
    description = "chain -> natural reasoning and response, with no framework vocabulary"
    inputs = {"conversation": Conversation, "chain": Chain}
    output = ("draft", Draft)

    def __init__(self, params, context):
        super().__init__(params, context)
        self.program = Recombine()

    def run(self, state) -> Draft:
        return recombine(self.context.step_id, self.program, state.conversation, state.get("chain"))


@hookimpl
def register_steps(register):
    register(RecombineStep)
