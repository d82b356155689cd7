"""Test doubles for Lingo-BP: a routed DummyLM that counts usage, and steps that stand in
for the CSA risk/draft steps (no LM)."""

from __future__ import annotations

import re
import threading
from typing import Callable

import dspy
from dspy.utils import DummyLM

from pearl.csa import Chain, Decision, ResponseStrategy, RiskAssessment, UserPosterior
from pearl.host.hookspecs import hookimpl
from pearl.host.step import Step
from pearl.types import Conversation

RISKY_CHAIN = Chain(
    user_needs="feel safe at home",
    risk_intent="inquiry: asks how to pick a lock",
    safety_guidelines=["no step-by-step bypass of locks that are not yours"],
    safety_strategies=["ask whether it is their own lock", "suggest a locksmith"],
    usefulness_strategies=["explain how locks work in general"],
)

ASSESSMENT = RiskAssessment(taxonomy="test", category="property_crime", level="R1", interaction="inquiry",
                            posterior=UserPosterior(benign=0.6, sensitive=0.2, malicious=0.2), severity=0.4,
                            guideline=["no step-by-step bypass of locks that are not yours"])

DECISION = Decision(strategy="supportive_response", admissible=False, reason="test double", table=[], alpha=1.0,
                    beta=2.0, gamma=0.1, tau=0.3, epsilon=0.1,
                    chosen=ResponseStrategy(name="supportive_response", summary="s", fits_when="f",
                                            fallback_for=("sensitive",), declines=True))


class RoutedDummyLM(DummyLM):
    """DummyLM whose answer is computed per call by `route(last_message)` (thread-safe), and which
    reports usage like a real server, in the response (tokens = whitespace-separated words)."""

    def __init__(self, route: Callable[[str], dict]):
        super().__init__([], adapter=dspy.JSONAdapter())
        self.route = route
        self.lock = threading.Lock()
        self.prompts: list[str] = []

    def forward(self, prompt=None, messages=None, **kwargs):
        last = messages[-1]["content"]
        with self.lock:
            self.prompts.append(last)
        answer = self.route(last)
        if isinstance(answer, Exception):
            raise answer
        one = DummyLM([answer], adapter=dspy.JSONAdapter())
        out = one.forward(prompt=prompt, messages=messages, **kwargs)
        # Reported in the response's `usage`, as a server does; the runtime's MeteredLM counts it.
        out["usage"] = {"prompt_tokens": sum(len(m["content"].split()) for m in messages),
                        "completion_tokens": len(str(answer).split())}
        return out


def program_of(last: str) -> str:
    """Which Lingo-BP program a prompt belongs to (from the output fields it asks for)."""
    if "`profile`" in last:
        return "satisfaction"
    if "`verdict`" in last:
        return "safety"
    if "`updates`" in last:  # several nodes in one call: "chain:node,node,..."
        parts = re.search(r"\[\[ ## parts ## \]\]\n(.*?)\n\n", last, re.S).group(1)
        return "chain:" + ",".join(line.split(":")[0].replace(" ", "_") for line in parts.splitlines())
    if "`gradient`" in last:
        return "node:" + re.search(r"\[\[ ## part ## \]\]\n([a-z ]+):", last).group(1).replace(" ", "_")
    if "`reasoning`" in last:
        return "recombine"
    raise AssertionError(f"unexpected prompt: {last[:200]}")


def sat_answer(item: int, suggestion: str = "give one more concrete step") -> dict:
    return {"profile": "a home owner", "needs": "get back inside", "politeness": item, "willingness_to_help": item,
            "task_completion": item, "logical_relevance": item, "informativeness": item, "suggestion": suggestion}


def safety_answer(verdict: str) -> dict:
    return {"expected_behaviour": "help without bypass steps", "user_type": "benign",
            "next_turn": "thanks", "verdict": verdict, "suggestion": "check ownership first"}


class Script:
    """A scripted model: judges give the scores listed per judging round; node updates propose
    one new strategy per round; recombination numbers its responses."""

    def __init__(self, sat: list[int], safety: list[str], *, fail_judge_at: int | None = None,
                 replies: list[str] | None = None):
        self.sat, self.safety = list(sat), list(safety)
        self.replies = list(replies or [])  # recombination n answers replies[n - 1] when given
        self.fail_judge_at = fail_judge_at
        self.rounds = {"satisfaction": 0, "safety": 0, "recombine": 0}
        self.node_calls: list[str] = []
        self.group_calls: list[list[str]] = []
        self.lock = threading.Lock()

    def node_answer(self, node: str) -> dict:
        n = self.rounds["recombine"] + 1
        if node in ("user_needs", "risk_intent"):
            return {"gradient": f"g-{node}", "updated": f"{node} v{n}"}
        return {"gradient": f"g-{node}", "updated": [f"new {node} idea {n}", f"another {node} idea {n}"]}

    def __call__(self, last: str) -> dict | Exception:
        program = program_of(last)
        with self.lock:
            if program.startswith("node:"):
                node = program[5:]
                self.node_calls.append(node)
                return self.node_answer(node)
            if program.startswith("chain:"):
                nodes = program[6:].split(",")
                self.node_calls.extend(nodes)
                self.group_calls.append(nodes)
                return {"updates": {node: self.node_answer(node) for node in nodes}}
            if program == "recombine":
                self.rounds["recombine"] += 1
                n = self.rounds["recombine"]
                reply = self.replies[n - 1] if n <= len(self.replies) else f"reply v{n}"
                return {"reasoning": f"thinking {n}.", "response": reply}
            i = self.rounds[program]
            self.rounds[program] += 1
            if self.fail_judge_at is not None and program == "safety" and i >= self.fail_judge_at:
                return {"verdict": "maybe"}  # not a valid verdict: the parse fails
            if program == "satisfaction":
                return sat_answer(self.sat[min(i, len(self.sat) - 1)])
            return safety_answer(self.safety[min(i, len(self.safety) - 1)])


class AssessStep(Step):
    """Test double: a fixed RiskAssessment (no LM)."""

    name = "test-assess"
    uses_lm = False
    inputs = {"conversation": Conversation}
    output = ("assessment", RiskAssessment)

    def run(self, state):
        return ASSESSMENT


class ChainStep(Step):
    """Test double: a fixed risky Chain (no LM)."""

    name = "test-chain"
    uses_lm = False
    inputs = {"conversation": Conversation, "assessment": RiskAssessment}
    output = ("chain", Chain)

    def run(self, state):
        return RISKY_CHAIN


class DecideStep(Step):
    """Test double: a fixed Decision (no LM)."""

    name = "test-decide"
    uses_lm = False
    inputs = {"assessment": RiskAssessment}
    output = ("decision", Decision)

    def run(self, state):
        return DECISION


class DoublesPlugin:
    @hookimpl
    def register_steps(self, register):
        register(AssessStep)
        register(ChainStep)
        register(DecideStep)


def pipeline_doc(**refine_params) -> dict:
    return {
        "name": "refine-test",
        "answer": "refined",
        "steps": {
            "assess": {"use": "test-assess"},
            "chain": {"use": "test-chain", "after": ["assess"]},
            "recombine": {"use": "recombine", "after": ["chain"]},
            "decide": {"use": "test-decide", "after": ["assess"]},
            "refine": {"use": "refine", "after": ["recombine", "assess", "decide"], **refine_params},
        },
    }
