"""Grammar-constrained sampling for llama-cpp-python that checks the likely tokens first.

llama-cpp-python puts llama.cpp's grammar sampler in its chain, which checks every token
of the vocabulary against the grammar at every step. With Gemma 3's 262,144-token
vocabulary that check is most of the cost of a constrained call on a CPU.

`TopKGrammarSampler` takes its place: it checks the `k` highest-logit candidates first
and keeps the valid ones; only when none of them is valid does it check the whole
vocabulary. Under greedy decoding (Pearlpoint's default, temperature 0) the chosen token
is the same as with the full check, since the best valid token is among the top `k`
whenever any of them is valid. When sampling, the choice is among the valid tokens of
the top `k`, which is what top-k sampling (llama-cpp-python's default k is 40) keeps anyway.

`GrammarFastLlama` is a `llama_cpp.Llama` that builds its sampler chain this way for
grammar-constrained calls and leaves every other call untouched.
"""

from __future__ import annotations

import ctypes

import llama_cpp
import numpy as np
from llama_cpp import _internals as internals

TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)], align=True)
DEFAULT_TOP_K = 64


class TopKGrammarSampler:
    """A llama.cpp sampler (custom interface) enforcing `grammar` on the top-k candidates first."""

    def __init__(self, vocab, grammar, k: int = DEFAULT_TOP_K):
        self.k = k
        self.grammar = llama_cpp.llama_sampler_init_grammar(vocab, grammar._grammar.encode("utf-8"),
                                                             grammar._root.encode("utf-8"))
        if not self.grammar:
            raise ValueError("llama.cpp could not parse the grammar")
        self._small = (llama_cpp.llama_token_data * k)()
        self._small_view = np.frombuffer(self._small, dtype=TOKEN_DATA, count=k)
        self._small_array = llama_cpp.llama_token_data_array(
            data=ctypes.cast(self._small, llama_cpp.llama_token_data_p), size=k, selected=-1, sorted=False)
        # The callbacks must outlive the chain: they are kept on the instance.
        self._callbacks = (llama_cpp.llama_sampler_i_apply(self._apply), llama_cpp.llama_sampler_i_accept(self._accept),
                           llama_cpp.llama_sampler_i_reset(self._reset))
        iface = llama_cpp.llama_sampler_i()
        iface.apply, iface.accept, iface.reset = self._callbacks
        iface.name = llama_cpp.llama_sampler_i_name(0)
        iface.clone = llama_cpp.llama_sampler_i_clone(0)
        iface.free = llama_cpp.llama_sampler_i_free(0)
        self._iface = iface
        self.sampler = llama_cpp.llama_sampler()
        self.sampler.iface = ctypes.pointer(iface)
        self.sampler.ctx = None

    def _apply(self, _sampler, cur_p) -> None:
        array = cur_p.contents
        n = int(array.size)
        k = min(self.k, n)
        raw = (ctypes.c_char * (n * TOKEN_DATA.itemsize)).from_address(ctypes.addressof(array.data.contents))
        candidates = np.frombuffer(raw, dtype=TOKEN_DATA, count=n)
        top = np.argpartition(candidates["logit"], n - k)[n - k:]
        small = self._small_view[:k]
        small[:] = candidates[top]
        self._small_array.size, self._small_array.selected, self._small_array.sorted = k, -1, False
        llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(self._small_array))
        valid = small[np.isfinite(small["logit"])]  # the grammar sets rejected logits to -inf
        if len(valid):
            candidates[: len(valid)] = valid
            array.size, array.selected, array.sorted = len(valid), -1, False
        else:
            llama_cpp.llama_sampler_apply(self.grammar, cur_p)

    def _accept(self, _sampler, token) -> None:
        llama_cpp.llama_sampler_accept(self.grammar, token)

    def _reset(self, _sampler) -> None:
        llama_cpp.llama_sampler_reset(self.grammar)

    def add_to(self, chain: internals.LlamaSampler) -> None:
        """Append to a llama-cpp-python chain, which then keeps this object alive and
        detaches it before freeing itself (as it does for its own custom samplers)."""
        llama_cpp.llama_sampler_chain_add(chain.sampler, ctypes.pointer(self.sampler))
        chain.custom_samplers.append((llama_cpp.llama_sampler_chain_n(chain.sampler) - 1, self))

    def __del__(self):
        grammar, self.grammar = getattr(self, "grammar", None), None
        if grammar:
            try:
                llama_cpp.llama_sampler_free(grammar)
            except Exception:  # interpreter teardown
                pass


class GrammarFastLlama(llama_cpp.Llama):
    """`llama_cpp.Llama` whose grammar-constrained calls use `TopKGrammarSampler`."""

    grammar_top_k: int = DEFAULT_TOP_K

    def _init_sampler(self, **kw):
        grammar = kw.get("grammar")
        if grammar is None or kw.get("logits_processor") is not None or kw.get("mirostat_mode"):
            return super()._init_sampler(**kw)
        chain = internals.LlamaSampler()
        chain.add_penalties(n_vocab=self._n_vocab, penalty_last_n=self.last_n_tokens_size,
                            penalty_repeat=kw.get("repeat_penalty", 1.0), penalty_freq=kw.get("frequency_penalty", 0.0),
                            penalty_present=kw.get("presence_penalty", 0.0))
        TopKGrammarSampler(self._model.vocab, grammar, self.grammar_top_k).add_to(chain)
        temp = kw.get("temp", 0.8)
        if temp < 0.0:
            chain.add_dist(self._seed)
        elif temp == 0.0:
            chain.add_greedy()
        else:
            chain.add_top_k(kw.get("top_k", 40))
            chain.add_typical(kw.get("typical_p", 1.0), 1)
            chain.add_top_p(kw.get("top_p", 0.95), 1)
            chain.add_min_p(kw.get("min_p", 0.05), 1)
            chain.add_temp(temp)
            chain.add_dist(self._seed)
        return chain
