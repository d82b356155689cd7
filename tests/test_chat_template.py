"""Client-side chat templates (`pearl.lm.chat_template`), rendered as transformers does."""

from __future__ import annotations

import json

import pytest

from pearl.errors import BackendError
from pearl.lm.chat_template import ChatTemplate, find_template

TEMPLATE = ("{{ bos_token }}{% for m in messages %}\n    {% if true %}[{{ m['role'] }}]{% endif %}\n"
            "{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}[assistant]\n{% endif %}")


def test_bos_is_dropped_when_the_tokenizer_adds_it(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"bos_token": {"content": "<s>"}, "chat_template": TEMPLATE}))
    text = find_template(tmp_path).render([{"role": "user", "content": "hi"}])
    assert text == "[user]hi\n[assistant]\n"  # trim_blocks + lstrip_blocks, as in transformers


def test_bos_is_kept_when_the_tokenizer_does_not_add_it(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": "<s>", "add_bos_token": False, "chat_template": [{"name": "default", "template": TEMPLATE}]}))
    assert find_template(tmp_path).render([{"role": "user", "content": "hi"}]).startswith("<s>[user]")


def test_chat_template_jinja_file_wins_and_helpers_exist(tmp_path):
    (tmp_path / "chat_template.jinja").write_text(
        "{% if messages[0]['role'] != 'user' %}{{ raise_exception('user first') }}{% endif %}{{ messages | tojson }}")
    tmpl = find_template(tmp_path)
    assert tmpl.render([{"role": "user", "content": "é"}]) == '[{"role": "user", "content": "é"}]'
    with pytest.raises(BackendError, match="rejected the messages .*user first"):
        tmpl.render([{"role": "system", "content": "x"}])


def test_unusable_sources():
    assert find_template(None) is None and find_template("/no/such/folder") is None
    with pytest.raises(BackendError, match="does not compile"):
        ChatTemplate("{% for %}")
