"""The llamacpp backend's default thread count (no model is loaded)."""


def test_threads_default_to_the_cpus_this_process_may_use(monkeypatch):
    import os

    from pearl.plugins import llamacpp

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {1}, raising=False)
    assert llamacpp.usable_cpus() == 1  # pinned (taskset) or a container's cpuset: not the machine's count
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert llamacpp.usable_cpus() == 6
