"""Calling a step's DSPy program with one retry and a typed error.

A tiny model can still produce an answer that does not parse, even under constrained
decoding (truncation at `max_tokens`, for one). `call_program` retries once with a
little sampling temperature, then raises `StepError` naming the step; a run never
fills in defaults silently.
"""

from __future__ import annotations

from typing import Any

import dspy

from pearl.errors import PearlError, StepError

RETRY_TEMPERATURE = 0.7


def call_program(step_id: str, program: dspy.Module, **inputs: Any) -> dspy.Prediction:
    """`program(**inputs)`, retried once on a parse failure."""
    try:
        return program(**inputs)
    except PearlError:
        raise
    except Exception as first:
        lm = dspy.settings.lm
        retry_lm = lm.copy(temperature=RETRY_TEMPERATURE, seed=(getattr(lm, "seed", 0) or 0) + 1) if lm is not None else None
        try:
            with dspy.context(lm=retry_lm):
                return program(**inputs)
        except PearlError:
            raise
        except Exception as second:
            raise StepError(
                step_id,
                f"the model's answer could not be used twice ({_short(first)}; then {_short(second)}): "
                f"try a larger model (--model), a higher max_tokens, or a compiled program",
            ) from second


def sampled():
    """A context in which the current LM samples at `RETRY_TEMPERATURE`: for a step that asks
    again because an answer parsed but was unusable (wrong language, leaked notes...)."""
    lm = dspy.settings.lm
    return dspy.context(lm=lm.copy(temperature=RETRY_TEMPERATURE) if lm is not None else None)


def _short(exc: BaseException, limit: int = 200) -> str:
    text = f"{exc.__class__.__name__}: {exc}".replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"
