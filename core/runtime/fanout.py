"""Prefix-aware fan-out: how a step sends sibling LM calls (anticipation per user type,
judges, Lingo-BP levels) so that servers compute their shared prefix once.

The rules (the contract for plugin authors):

1. **Shared first, varying last.** DSPy renders a program's prompt as the system
   message (instructions, field descriptions, demos), then the input fields *in the
   order the Signature declares them*. Declare the inputs every sibling shares
   (policy, conversation, assessment...) before the ones that differ (user type,
   candidate strategy...). `fan_out` checks this and refuses a signature that
   declares a varying input before a shared one.
2. **Byte-identical.** Siblings get the very same shared values (one dict), so their
   prompts share a byte-identical prefix: no timestamps, ids or per-sibling wording in
   shared fields.
3. **Sent together.** The siblings start at once (`pearl.runtime.concurrency.map_in_context`,
   which keeps the caller's context): on SGLang they land in one micro-batch and go as
   ONE native `/generate` batch (radix cache + `lpm` scheduling share the prefix); on an
   OpenAI-compatible server they are concurrent requests (vLLM's prefix caching, llama.cpp
   slots); on the embedded backend they run one by one and llama.cpp reuses the KV cache
   of the common prefix.
4. **Optional warm-up** (`warm_up=True`): the first sibling runs alone, then the rest
   together, so servers whose cache fills only when a request completes (llama.cpp's
   server) serve the shared prefix from cache for every later sibling.

Each sibling goes through `pearl.runtime.programs.call_program` (one retry, then `StepError`).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import dspy

from pearl.runtime.concurrency import map_in_context
from pearl.errors import PluginError
from pearl.runtime.programs import call_program


def signature_of(program: dspy.Module):
    """The signature of the (first) predictor inside `program`."""
    if isinstance(program, dspy.Predict):
        return program.signature
    predictors = program.predictors()
    if not predictors:
        raise PluginError(f"{type(program).__name__} has no DSPy predictor to fan out")
    return predictors[0].signature


def check_prefix_order(signature, shared: Sequence[str], varying: Sequence[str]) -> None:
    """Raise `PluginError` unless every shared input is declared before every varying one."""
    order = list(signature.input_fields)
    unknown = [n for n in (*shared, *varying) if n not in order]
    if unknown:
        raise PluginError(f"{signature.__name__} has no input field(s) {', '.join(unknown)}: "
                          f"its inputs are {', '.join(order)}")
    overlap = set(shared) & set(varying)
    if overlap:
        raise PluginError(f"input(s) {', '.join(sorted(overlap))} given both as shared and as varying: pick one")
    if shared and varying:
        last_shared = max(order.index(n) for n in shared)
        first_varying = min(order.index(n) for n in varying)
        if first_varying < last_shared:
            raise PluginError(
                f"{signature.__name__} declares varying input '{order[first_varying]}' before shared input "
                f"'{order[last_shared]}', so sibling prompts diverge early and no prefix is shared: declare the "
                f"shared inputs first in the Signature"
            )


def fan_out(step_id: str, program: dspy.Module, shared: Mapping[str, Any], variants: Sequence[Mapping[str, Any]],
            *, warm_up: bool = False, max_workers: int | None = None,
            config: dict[str, Any] | None = None) -> list[dspy.Prediction]:
    """Run `program` once per variant, all with the same `shared` inputs (see the module docstring).

    Returns the predictions in the order of `variants`.
    """
    variants = [dict(v) for v in variants]
    if not variants:
        return []
    keys = set(variants[0])
    if any(set(v) != keys for v in variants):
        raise PluginError(f"step '{step_id}': every fan-out variant must set the same inputs ({', '.join(sorted(keys))})")
    check_prefix_order(signature_of(program), list(shared), sorted(keys))
    shared = dict(shared)
    extra = {"config": config} if config else {}

    def one(variant: dict[str, Any]) -> dspy.Prediction:
        return call_program(step_id, program, **shared, **variant, **extra)

    if warm_up and len(variants) > 1:
        first = one(variants[0])
        return [first, *map_in_context(one, variants[1:], max_workers=max_workers)]
    return map_in_context(one, variants, max_workers=max_workers)
