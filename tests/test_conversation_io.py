import pytest

from pearl.io.conversations import parse_conversation_json, to_conversation
from pearl.errors import InputError


def test_shapes_accepted():
    assert to_conversation("hi").messages[0].content == "hi"
    conv = parse_conversation_json(
        '[{"role": "system", "content": "be kind"}, {"role": "user", "content": "hello"}]', source="x")
    assert conv.system == "be kind" and len(conv.messages) == 1
    assert to_conversation({"prompt": "q"}).last_user_message == "q"


@pytest.mark.parametrize("value, message", [
    ("   ", "the message is empty"),
    ({"messages": []}, "no messages"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, "unknown role 'wizard'"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}, "last message must be the user's"),
    ({"messages": [{"role": "user", "content": "  "}]}, "content is empty"),
])
def test_bad_conversations(value, message):
    with pytest.raises(InputError, match=message):
        to_conversation(value)


def test_invalid_json_names_source():
    with pytest.raises(InputError, match=r"conv.json: not valid JSON"):
        parse_conversation_json("{nope", source="conv.json")


@pytest.mark.parametrize("text, reason", [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"prompt": "hi", "n": ' + "1" * 5000 + "}", "Exceeds the limit"),
])
def test_json_python_cannot_read_is_invalid_json_not_a_crash(text, reason):
    with pytest.raises(InputError, match=f"conv.json: not valid JSON .*{reason}"):
        parse_conversation_json(text, source="conv.json")


def test_a_prompt_that_is_not_text_is_named_as_such():
    with pytest.raises(InputError, match=r"'prompt' must be text \(a JSON string\), not int"):
        to_conversation({"prompt": 5}, source="line 1")
