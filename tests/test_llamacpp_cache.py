"""How the embedded backend counts prompt tokens served from llama.cpp's KV cache."""

from pearl.plugins.llamacpp import reused_prefix


def test_reused_prefix_follows_llama_generate():
    assert reused_prefix([], [1, 2, 3]) == 0
    assert reused_prefix([1, 2, 9, 9], [1, 2, 3]) == 2
    assert reused_prefix([1, 2, 3, 4], [1, 2, 3]) == 2  # whole prompt cached: one token is re-evaluated
    assert reused_prefix([5], [1, 2]) == 0
