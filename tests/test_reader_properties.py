"""Property-based tests of every reader (issue 15): no input file makes one crash or change.

Each reader — conversations (JSON files, JSONL files, stdin text), datasets (jsonl,
xstest csv, strata-sword xlsx), result files, traces, pipeline TOML, compiled
manifests — is fed arbitrary bytes and arbitrary near-valid structures. The result is
either a clean `PearlError` or a valid value of the reader's type, and the input file,
and the folder around it, are byte-for-byte unchanged afterwards.

Example counts are kept small (the suite's speed; `PEARL_PROPERTY_EXAMPLES=500` searches
deeper); every strategy mixes in the bytes that broke the readers before: invalid UTF-8,
a byte-order mark, a torn last line, NUL, lone-surrogate escapes.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pearl.errors import PearlError

EXAMPLES = int(os.environ.get("PEARL_PROPERTY_EXAMPLES", "40"))  # raise it for a deeper local search
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                              HealthCheck.too_slow])

# --- strategies ------------------------------------------------------------------------------

NASTY = st.sampled_from([b"\xff", b"\xfe\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\xef\xbb\xbf", b"\r",
                         b"\n", b"\\ud800", b'"', b"{", b"]", b"\xe4\xb8"])

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)


def splice(base: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """`base`'s bytes with up to three nasty byte strings inserted at random places, maybe cut short."""

    @st.composite
    def spliced(draw) -> bytes:
        data = draw(base)
        for _ in range(draw(st.integers(0, 3))):
            at = draw(st.integers(0, len(data)))
            data = data[:at] + draw(NASTY) + data[at:]
        if data and draw(st.booleans()):
            data = data[:draw(st.integers(0, len(data)))]  # a torn tail
        return data

    return spliced()


def jsonl_of(records: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    return st.lists(records, max_size=5).map(
        lambda rows: "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8", "surrogatepass"))


MESSAGE = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "robot"]),
                                 "content": st.one_of(st.text(max_size=20), json_scalars)})
CONVERSATION = st.one_of(
    st.text(max_size=30),
    st.fixed_dictionaries({"prompt": st.one_of(st.text(max_size=20), json_values)},
                          optional={"id": json_scalars, "labels": json_values, "label": json_scalars,
                                    "language": json_scalars, "system": json_scalars}),
    st.fixed_dictionaries({"messages": st.lists(MESSAGE, max_size=3)},
                          optional={"metadata": json_values, "system": json_scalars}),
    st.lists(MESSAGE, max_size=3),
    json_values,
)
conversation_bytes = st.one_of(st.binary(max_size=300), splice(jsonl_of(CONVERSATION)))

RESULT = st.fixed_dictionaries(
    {"id": json_scalars, "dataset": st.sampled_from(["d", 3, None]), "pipeline": st.sampled_from(["p", None]),
     "status": st.sampled_from(["ok", "error", "maybe"]),
     "conversation": st.sampled_from([{"messages": [{"role": "user", "content": "hi"}]}, {}, "hi"])},
    optional={"result": json_values, "labels": json_values, "judgements": json_values, "total_items": json_scalars,
              "timings": json_values, "error": json_scalars})
result_bytes = st.one_of(st.binary(max_size=300), splice(jsonl_of(RESULT)))

SPAN = st.fixed_dictionaries(
    {"name": st.text(max_size=10), "trace_id": st.sampled_from(["0" * 32, "x", 1]),
     "span_id": st.sampled_from(["1" * 16, ""]), "start_time_unix_nano": st.integers(-5, 10**12),
     "end_time_unix_nano": st.integers(-5, 10**12)},
    optional={"parent_span_id": json_scalars, "attributes": json_values, "status": json_values,
              "events": json_values, "kind": json_scalars, "resource": json_values})
trace_bytes = st.one_of(st.binary(max_size=300), splice(jsonl_of(SPAN)))


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


@st.composite
def pipeline_toml(draw) -> bytes:
    """A pipeline file near the real format: known and unknown keys, steps, dependencies, backend values."""
    ids = draw(st.lists(st.sampled_from(["a", "b", "c", "screen", "respond"]), min_size=0, max_size=4, unique=True))
    lines = []
    if draw(st.booleans()):
        lines.append(f"name = {toml_value(draw(st.one_of(st.text(max_size=8), st.integers())))}")
    if draw(st.booleans()):
        lines.append(f"answer = {toml_value(draw(st.sampled_from(['response', 'echo', 'nothing'])))}")
    if draw(st.booleans()):
        lines.append("[backend]")
        for key, values in (("name", st.sampled_from(["llamacpp", "openai", "nope"])),
                            ("temperature", st.floats()), ("max_tokens", st.integers(-10, 10**6)),
                            ("seed", st.integers(-2**40, 2**40)), ("url", st.sampled_from(
                                ["http://127.0.0.1:9", "http://[::1", "ftp://x", "http://h:99999"]))):
            if draw(st.booleans()):
                lines.append(f"{key} = {toml_value(draw(values))}")
    for step_id in ids:
        lines.append(f"[steps.{step_id}]")
        lines.append(f"use = {toml_value(draw(st.sampled_from(['test-echo', 'test-shout', 'screen', 'nope'])))}")
        if draw(st.booleans()):
            lines.append(f"after = {toml_value(draw(st.lists(st.sampled_from(ids + ['z']), max_size=2)))}")
        if draw(st.booleans()):
            lines.append(f"lm = {toml_value(draw(st.sampled_from(['task', 'judge', 'other'])))}")
        if draw(st.booleans()):
            lines.append(f"max_words = {toml_value(draw(st.one_of(st.integers(-5, 500), st.text(max_size=4))))}")
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")


toml_bytes = st.one_of(st.binary(max_size=200), splice(pipeline_toml()))

MANIFEST = st.fixed_dictionaries(
    {"format": st.sampled_from([1, 2, "1"]), "pipeline": st.sampled_from(["minimal", "", 3]),
     "steps": st.one_of(json_values, st.dictionaries(st.sampled_from(["screen", "x"]), st.fixed_dictionaries(
         {"step": st.text(max_size=5), "use": st.text(max_size=5),
          "file": st.sampled_from(["screen.json", "../x.json", "/etc/passwd", ".", ""]),
          "fingerprint": st.text(max_size=5), "optimizer": st.text(max_size=5), "metric": st.text(max_size=5)}),
         max_size=2))},
    optional={"pipeline_source": st.sampled_from(["/nonexistent.toml", "", "minimal.toml"]),
              "created": json_scalars, "versions": json_values, "optimizer": json_scalars})
manifest_bytes = st.one_of(st.binary(max_size=300), splice(MANIFEST.map(
    lambda m: json.dumps(m, ensure_ascii=False).encode("utf-8", "surrogatepass"))))


# --- the property -----------------------------------------------------------------------------

def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@contextmanager
def written(name: str, data: bytes, **others: bytes) -> Iterator[Path]:
    """`data` in a fresh folder as `name` (and `others`, name -> bytes, beside it); afterwards,
    asserts that the folder is exactly as it was."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = folder / name
        for file, content in ((path, data), *((path.parent / n.replace("__", "."), c) for n, c in others.items())):
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(content)
        before = snapshot(folder)
        yield path
        assert snapshot(folder) == before, "a reader changed its input or left a file behind"


def clean_or_valid(read: Callable[[], Any], valid: Callable[[Any], bool]) -> None:
    """`read()` either raises a `PearlError` with a one-line message, or returns a value `valid` accepts."""
    try:
        value = read()
    except PearlError as exc:
        message = str(exc)
        assert message and "\n" not in message and "Traceback" not in message, message
        return
    assert valid(value), value


# --- conversations --------------------------------------------------------------------------------

@SETTINGS
@given(data=st.one_of(st.binary(max_size=300), splice(CONVERSATION.map(
    lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass")))))
def test_conversation_files_and_stdin(data):
    from pearl.io.conversations import decode_input, parse_conversation_json, read_conversation_file
    from pearl.types import Conversation

    with written("conversation.json", data) as path:
        clean_or_valid(lambda: read_conversation_file(path), lambda c: isinstance(c, Conversation))
    clean_or_valid(lambda: parse_conversation_json(decode_input(data, source="stdin"), source="stdin"),
                   lambda c: isinstance(c, Conversation))
    text = data.decode("utf-8", "surrogateescape")  # what Python's stdin gives under a C locale
    clean_or_valid(lambda: decode_input(text, source="stdin"), lambda t: isinstance(t, str) and t.encode("utf-8") is not None)


@SETTINGS
@given(data=conversation_bytes)
def test_conversation_lines(data):
    from pearl.io.conversations import ConversationLine, read_conversation_lines

    with written("batch.jsonl", data) as path:
        clean_or_valid(lambda: list(read_conversation_lines(path)),
                       lambda rows: all(isinstance(r, ConversationLine) and r.conversation.messages for r in rows))


# --- datasets ------------------------------------------------------------------------------------

@SETTINGS
@given(data=conversation_bytes)
def test_jsonl_dataset(host, data):
    from pearl.host.dataset import Item, load_dataset

    with written("items.jsonl", data) as path:
        clean_or_valid(lambda: load_dataset(f"jsonl:{path}", host),
                       lambda got: got[0] == "jsonl" and all(isinstance(i, Item) for i in got[1]))


CSV_CELL = st.one_of(st.text(max_size=10), st.sampled_from(["safe", "unsafe", "", "id", "prompt", '"', ","]))


@SETTINGS
@given(data=st.one_of(st.binary(max_size=300), splice(st.lists(st.lists(CSV_CELL, min_size=1, max_size=5),
                                                               max_size=4).map(
    lambda rows: ("id,prompt,type,label\n" + "\n".join(",".join(r) for r in rows)).encode("utf-8", "surrogatepass")))))
def test_xstest_csv_dataset(host, data):
    from pearl.host.dataset import Item, load_dataset

    with written("xstest.csv", data) as path:
        clean_or_valid(lambda: load_dataset(f"xstest:{path}", host),
                       lambda got: all(isinstance(i, Item) for i in got[1]))


@settings(max_examples=max(5, EXAMPLES * 3 // 8), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400), zipped=st.booleans())
def test_strata_sword_workbook_dataset(host, data, zipped):
    import io
    import zipfile

    from pearl.host.dataset import Item, load_dataset

    if zipped:  # a zip, as an xlsx is, holding garbage parts
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("[Content_Types].xml", data)
            archive.writestr("xl/workbook.xml", data[::-1])
        data = buffer.getvalue()
    with written("strata_sword_en_level_2.xlsx", data) as path:
        clean_or_valid(lambda: load_dataset(f"strata-sword:{path}", host),
                       lambda got: all(isinstance(i, Item) for i in got[1]))


# --- result files --------------------------------------------------------------------------------

@SETTINGS
@given(data=result_bytes)
def test_result_files(data):
    from pearl.io.results import ResultRecord, done_ids, read_records

    with written("results.jsonl", data) as path:
        clean_or_valid(lambda: read_records(path),
                       lambda got: all(isinstance(r, ResultRecord) for r in got[0]) and got[1] >= 0)
        clean_or_valid(lambda: read_records(path, strict=True), lambda got: isinstance(got[0], list))
        clean_or_valid(lambda: done_ids(path, dataset="d", pipeline="p", retry_errors=False),
                       lambda ids: all(isinstance(i, str) for i in ids))


@settings(max_examples=max(5, EXAMPLES // 2), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=result_bytes)
def test_report_reads_any_results_file(data):
    from pearl.evaluation.report import load_runs

    with written("results.jsonl", data) as path:
        clean_or_valid(lambda: load_runs([path]), lambda got: isinstance(got[0], dict))


# --- traces ----------------------------------------------------------------------------------------

@SETTINGS
@given(data=trace_bytes)
def test_trace_files(data):
    from pearl.traces.jsonl import SpanRecord, read_spans

    with written("trace.jsonl", data) as path:
        clean_or_valid(lambda: read_spans(path), lambda spans: all(isinstance(s, SpanRecord) for s in spans))


# --- pipeline TOML -------------------------------------------------------------------------------

@SETTINGS
@given(data=toml_bytes)
def test_pipeline_files(host, data):
    from pearl.runtime.pipeline import Pipeline, load

    with written("pipeline.toml", data) as path:
        clean_or_valid(lambda: load(str(path), host), lambda p: isinstance(p, Pipeline) and p.order())


# --- compiled manifests --------------------------------------------------------------------------

@SETTINGS
@given(data=manifest_bytes, state=st.one_of(st.binary(max_size=100), json_values.map(
    lambda v: json.dumps(v).encode())))
def test_compiled_manifests_and_states(host, data, state):
    from pearl.runtime.compiled import CompiledManifest, manifest_pipeline, read_manifest, read_stamp

    with written("compiled/manifest.json", data, screen__json=state) as manifest:
        folder = manifest.parent
        clean_or_valid(lambda: read_manifest(folder), lambda m: isinstance(m, CompiledManifest))
        clean_or_valid(lambda: manifest_pipeline(folder), lambda name: isinstance(name, str))
        clean_or_valid(lambda: read_stamp(folder / "screen.json"), lambda stamp: True)
