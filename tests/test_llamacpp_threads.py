"""The llamacpp backend's thread count and the errors of its settings (no model is loaded)."""


def test_threads_default_to_the_cpus_this_process_may_use(monkeypatch):
    import os

    from pearl.plugins import llamacpp

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {1}, raising=False)
    assert llamacpp.usable_cpus() == 1  # pinned (taskset) or a container's cpuset: not the machine's count
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert llamacpp.usable_cpus() == 6


def test_more_threads_than_usable_cpus_is_an_error_naming_the_most_allowed(monkeypatch):
    import os

    import pytest

    from pearl.errors import BackendError
    from pearl.host.backend import BackendSettings
    from pearl.plugins import llamacpp

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    loaded = []
    monkeypatch.setattr(llamacpp, "LlamaCppLM", lambda *a, **k: loaded.append(k) or "an LM")
    with pytest.raises(BackendError, match=r"--threads 100000: this process may use 2 CPU\(s\); pass at most 2"):
        llamacpp.LlamaCppBackend().create(BackendSettings(model="tiny", threads=100000))
    assert not loaded  # refused before any model loads
    assert llamacpp.LlamaCppBackend().create(BackendSettings(model="tiny", threads=2)) == "an LM"


def test_a_context_that_cannot_be_allocated_names_n_ctx_not_the_file(monkeypatch):
    import pytest

    from pearl.errors import BackendError
    from pearl.host.backend import BackendSettings
    from pearl.plugins import llamacpp

    def fails(*a, **k):
        raise ValueError("Failed to create llama_context")

    monkeypatch.setattr(llamacpp, "LlamaCppLM", fails)
    with pytest.raises(BackendError, match=r"could not allocate a context of 100000000 tokens .*: lower --n-ctx"):
        llamacpp.LlamaCppBackend().create(BackendSettings(model="tiny", n_ctx=100_000_000))
