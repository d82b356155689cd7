"""The embedded backend's prompt cache: the model's state after recent calls, reused by prefix.

llama.cpp keeps one KV cache, so by itself a call reuses only what it shares with the call
just before. A `csa` answer alternates programs (the satisfaction judge, the safety judge,
the backward pass, the recombination, then the same again for the next Lingo-BP
iteration), so each call's long shared prefix (instructions, conversation) was evaluated
again. `PrefixCachingLlama` keeps the state after each call in llama-cpp-python's
`LlamaRAMCache` (least recently used first out, `PROMPT_CACHE_BYTES` in all), and a call
restores the saved state with the longest common prefix before it evaluates the rest, so only
the new part is evaluated. The tokens are the same, but llama.cpp then evaluates the new part in
other batches than a full evaluation would, so its logits can differ in the last digits, and a
long greedy answer can, now and then, take another token (one `csa` answer on the 1.5B differed
from the run without the cache from its refinement on; llama.cpp's own one-context reuse has the
same property).

Two departures from llama-cpp-python's own `save_state` / `load_state`: the saved state
leaves out the logits buffer (up to n_batch × vocabulary floats, 311 MB for the 1.5B,
which the cache's budget did not count and which a restored state never needs, since
llama-cpp-python decodes at least one token after a restore before it samples), and
`prompt_tokens_reused` records how many prompt tokens the call really took from a cache:
the tokens already in the context when it first evaluates. Models with sliding-window
attention (Gemma 3, the `tiny` model) cannot drop the tail of their KV cache, so a
restored prefix would be evaluated again: they get no cache (`supports_prefix_cache`).
"""

from __future__ import annotations

import ctypes

import llama_cpp
from llama_cpp.llama import LlamaState
from llama_cpp.llama_cache import LlamaRAMCache

from pearl.plugins.llamacpp_sampling import GrammarFastLlama

PROMPT_CACHE_BYTES = 512 << 20  # about nine 2,000-token states of the 1.5B model (28 KiB of KV a token)


class PrefixCachingLlama(GrammarFastLlama):
    """A `GrammarFastLlama` with a prompt cache of recent states (see the module docstring)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.prompt_tokens_reused: int | None = None  # set by the first `eval` of a call; None: no eval yet
        if self.supports_prefix_cache():
            self.set_cache(LlamaRAMCache(PROMPT_CACHE_BYTES))

    def supports_prefix_cache(self) -> bool:
        """False for a model with sliding-window attention, whose KV cache cannot be cut back to a prefix."""
        return llama_cpp.llama_model_n_swa(self._model.model) == 0

    def start_call(self) -> None:
        """Forget the last call's reuse count; call before each completion."""
        self.prompt_tokens_reused = None

    def eval(self, tokens):
        if self.prompt_tokens_reused is None:  # the call's first evaluation: what the context already holds
            self.prompt_tokens_reused = self.n_tokens
        return super().eval(tokens)

    def save_state(self) -> LlamaState:
        size = llama_cpp.llama_state_get_size(self._ctx.ctx)
        buffer = (ctypes.c_uint8 * int(size))()
        written = int(llama_cpp.llama_state_get_data(self._ctx.ctx, buffer, size))
        if written > int(size):
            raise RuntimeError("llama.cpp wrote more state than it announced")
        return LlamaState(scores=self.scores[:0].copy(), input_ids=self.input_ids.copy(), n_tokens=self.n_tokens,
                          llama_state=ctypes.string_at(buffer, written), llama_state_size=written, seed=self._seed)

    def load_state(self, state: LlamaState) -> None:
        self.input_ids = state.input_ids.copy()
        self.n_tokens = state.n_tokens
        self._requires_eval = True  # no logits were saved: decode before sampling
        self._seed = state.seed
        restored = (ctypes.c_uint8 * state.llama_state_size).from_buffer_copy(state.llama_state)
        if llama_cpp.llama_state_set_data(self._ctx.ctx, restored, state.llama_state_size) != state.llama_state_size:
            raise RuntimeError("llama.cpp could not restore a saved state")
