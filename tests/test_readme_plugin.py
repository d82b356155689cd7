"""The plugin example in README.md, executed as written."""

import re
from pathlib import Path

from dspy.utils import DummyLM

from pearl.runtime.pipeline import compile_spec
from pearl.runtime.runner import Runner
from pearl.types import Conversation

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_plugin_example_runs(host):
    text = README.read_text()
    block = re.search(r"## Writing a plugin.*?```python\n(.*?)```", text, re.S).group(1)
    assert len(block.strip().splitlines()) <= 30
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)

    class Plugin:
        register_steps = staticmethod(namespace["register_steps"])

    host.register(Plugin(), name="readme-example")
    pipeline = compile_spec({"name": "readme", "steps": {"shout": {"use": "shout"}}}, host)
    result = Runner(pipeline, {"task": DummyLM([])}, host).run(Conversation.from_text("hi there"))
    assert result.response == "HI THERE"
