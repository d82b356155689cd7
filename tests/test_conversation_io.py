from pathlib import Path

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


def test_an_endless_or_huge_input_is_refused_after_a_bounded_read(tmp_path, monkeypatch, run_cli):
    from pearl.io import jsonl

    if Path("/dev/zero").exists():  # the real case: it used to be read until memory ran out
        endless = run_cli(["run", "--file", "/dev/zero"])
        assert endless.returncode == 2 and "/dev/zero: longer than 64 MiB" in endless.stderr, endless.stderr
        batch = run_cli(["run", "--batch", "/dev/zero", "--out", str(tmp_path / "out.jsonl")])
        assert batch.returncode == 2 and "'/dev/zero' is not a regular file" in batch.stderr, batch.stderr
        dataset = run_cli(["eval", "jsonl:/dev/zero", "--out", str(tmp_path / "r.jsonl")])
        assert dataset.returncode == 2 and "/dev/zero: not a regular file" in dataset.stderr, dataset.stderr
    monkeypatch.setattr(jsonl, "MAX_INPUT_BYTES", 10)
    big = tmp_path / "big.json"
    big.write_text('{"prompt": "twelve chars"}', encoding="utf-8")
    with pytest.raises(InputError, match="big.json: longer than 0 MiB"):
        jsonl.read_text(big)
    rows = tmp_path / "rows.jsonl"
    rows.write_text('"short"\n"a longer line"\n', encoding="utf-8")
    read = jsonl.read_lines(rows)
    assert next(read).text == '"short"'  # the lines before the long one are read
    with pytest.raises(InputError, match="rows.jsonl:2: a line longer than"):
        next(read)
    (tmp_path / "ten.jsonl").write_bytes(b"123456789\n")  # exactly the limit, newline included
    assert [line.text for line in jsonl.read_lines(tmp_path / "ten.jsonl")] == ["123456789"]
