"""The embedded backend's prompt cache (`pearl.plugins.llamacpp_cache`) and its count of reused prompt tokens.

Two programs take turns, as Lingo-BP's judges do: A, then B, then A again on a new reply. Without the
cache the third call shares almost nothing with the call before it; with it, the third call starts
from A's saved state and evaluates only the new reply. On these short answers the replies are the same
as a fresh context's (a long greedy answer can take another token: see the module's docstring).
"""

from __future__ import annotations

import pytest
from llama_cpp.llama_cache import LlamaRAMCache

from pearl.lm.base import ChatRequest
from pearl.plugins import models
from pearl.plugins.llamacpp import LlamaCppLM

CONVERSATION = "My landlord kept my whole deposit after I moved out, claiming damages that were there before. " * 6


def ask(instructions: str, reply: str) -> ChatRequest:
    return ChatRequest(messages=[{"role": "system", "content": instructions * 12},
                                 {"role": "user", "content": f"{CONVERSATION}\nThe reply to judge: {reply}"}],
                       max_tokens=12)


SATISFIED, SAFE = "You judge how satisfied the person is with a reply. ", "You judge how safe a reply is. "
TURNS = [ask(SATISFIED, "one."), ask(SAFE, "one."), ask(SATISFIED, "two, a new reply.")]


def fresh_lm(path, seed: int) -> LlamaCppLM:
    """An LM on a context of its own (contexts are shared per path, size, threads and seed)."""
    return LlamaCppLM(path, n_ctx=2048, threads=1, seed=seed)


def run(lm: LlamaCppLM) -> list:
    return [lm.complete(request) for request in TURNS]


def test_a_restored_state_answers_as_a_fresh_context_does():
    """On `tiny` (sliding-window attention: no cache by default) with a cache forced on, the saved and restored
    states go through `PrefixCachingLlama.save_state/load_state`, and every answer equals a fresh context's."""
    path, _ = models.resolve("tiny")
    cached = fresh_lm(path, seed=101)
    assert cached.llama.cache is None  # sliding-window attention: a prefix cannot be cut back, so no cache
    cached.llama.set_cache(LlamaRAMCache(64 << 20))
    answers = [c.text for c in run(cached)]
    assert len(cached.llama.cache.cache_state) == 3
    assert cached.llama.cache.cache_size < 64 << 20  # the states hold no logits buffer
    alone = fresh_lm(path, seed=102).complete(TURNS[2]).text
    assert answers[2] == alone
    for c in run(cached):
        assert 0 <= c.cached_tokens <= c.prompt_tokens


@pytest.mark.skipif(not models.is_cached(models.lookup("qwen2.5-coder-0.5b")),
                    reason="needs the 0.5B instruct model: pearl models pull qwen2.5-coder-0.5b")
def test_the_third_call_starts_from_the_first_calls_state():
    path, _ = models.resolve("qwen2.5-coder-0.5b", fetch=False)
    lm = fresh_lm(path, seed=103)
    assert lm.llama.cache is not None
    first, second, third = run(lm)
    shared = first.prompt_tokens - 12  # the instructions and the conversation; the reply differs
    assert third.cached_tokens >= shared and third.cached_tokens < third.prompt_tokens
    assert second.cached_tokens < 20  # another program: only the template's opening is shared
    plain = fresh_lm(path, seed=104)
    plain.llama.cache = None  # llama.cpp's own single context only
    texts = [c.text for c in run(plain)]
    assert texts == [first.text, second.text, third.text]
    assert run(plain)[2].cached_tokens < 20
