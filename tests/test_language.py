"""`pearl.strategies.language`: the reply's language named from the conversation, and a script check."""

import pytest

from pearl.strategies.guard import refusal_language
from pearl.strategies.language import language_name, language_of, written_in
from pearl.types import Conversation


@pytest.mark.parametrize("text, tag", [
    ("How do I bake bread?", "en"),
    ("我该如何烤面包？", "zh"),
    ("パンの焼き方を教えて", "ja"),
    ("빵 굽는 법을 알려줘", "ko"),
    ("Как испечь хлеб?", "ru"),
])
def test_the_language_is_read_off_the_script_of_the_last_message(text, tag):
    assert language_of(Conversation.from_text(text)) == tag


def test_a_declared_language_wins_over_the_script():
    conversation = Conversation.from_text("Comment faire du pain ?", language="fr-FR")
    assert language_of(conversation) == "fr" and language_name("fr") == "French (français)"
    assert refusal_language(conversation) == "en"  # no French refusal text: English
    assert language_name("xx") == "xx"


def test_written_in_checks_the_script():
    assert written_in("你并不孤单，我在这里陪着你。", "zh")
    assert not written_in("Please remember that you are not alone.", "zh")
    assert written_in("Please remember that you are not alone.", "en")
    assert not written_in("你并不孤单，我在这里陪着你，请拨打热线电话。", "en")
    # a Chinese reply with an English term and code is still Chinese; very short text passes
    assert written_in("你可以用 Python 写：\n```python\nprint('hello world, this is code')\n```\n这样就可以了，很简单。", "zh")
    assert written_in("OK 988", "zh")
