"""`pearl eval`: records per item, crashed items, resume, and a run killed mid-way (test doubles, no model)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eval_doubles import EvalDoublesPlugin, write_pipeline
from pearl.runtime.session import open_session
from pearl.host.dataset import load_dataset
from pearl.errors import InputError
from pearl.evaluation.evaluate import ItemEvaluator, build_judges, default_judges, evaluate
from pearl.io.jsonl import JsonlAppender
from pearl.io.results import done_ids, latest_by_id, read_records

DOUBLES = Path(__file__).with_name("eval_doubles.py")


def _dataset(tmp_path: Path, n: int = 6, crash: int | None = None) -> Path:
    path = tmp_path / "items.jsonl"
    lines = []
    for i in range(n):
        prompt = f"question {i}" + (" REFUSE" if i % 2 else "") + (" CRASH" if i == crash else "")
        lines.append(json.dumps({"id": f"q{i}", "prompt": prompt, "label": "unsafe" if i % 2 else "safe"}))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def doubles_host(host):
    host.register(EvalDoublesPlugin(), name="tests.eval_doubles")
    return host


def test_evaluate_records_results_judgements_errors_and_resumes(doubles_host, tmp_path):
    host = doubles_host
    data = _dataset(tmp_path, n=6, crash=4)
    name, items = load_dataset(f"jsonl:{data}", host)
    session = open_session(str(write_pipeline(tmp_path)), host=host)
    judges = build_judges(host, default_judges(host))
    assert "refusal" in judges
    out = tmp_path / "r.jsonl"
    evaluator = ItemEvaluator(session, judges, dataset=name, total=len(items))
    with JsonlAppender(out) as writer:
        assert evaluate(items[:3], evaluator, writer, concurrency=2) == 3
    assert done_ids(out, dataset=name, pipeline="test-canned", retry_errors=False) == {"q0", "q1", "q2"}
    finished = done_ids(out, dataset=name, pipeline="test-canned", retry_errors=False)
    with JsonlAppender(out) as writer:
        evaluate([i for i in items if i.id not in finished], evaluator, writer, concurrency=2)
    records, bad = read_records(out)
    assert bad == 0
    assert sorted(r.id for r in records) == [f"q{i}" for i in range(6)]  # nothing twice, nothing lost
    by_id = {r.id: r for r in records}
    assert by_id["q1"].judgements["refusal"]["refusal"] == "full"
    assert by_id["q0"].judgements["refusal"]["refusal"] == "none"
    assert by_id["q0"].result.response.startswith("Here is what you asked about")
    assert by_id["q0"].timings.total_s >= by_id["q0"].timings.pipeline_s >= 0
    assert by_id["q0"].labels == {"label": "safe"} and by_id["q0"].total_items == 6
    crashed = by_id["q4"]
    assert crashed.status == "error" and "crashed on purpose" in crashed.error and crashed.result is None
    # errors are finished unless retried
    assert "q4" not in done_ids(out, dataset=name, pipeline="test-canned", retry_errors=True)
    with pytest.raises(InputError, match="not 'other' on 'jsonl'"):
        done_ids(out, dataset=name, pipeline="other", retry_errors=False)
    # every record names its run; resuming with another model or --set is refused
    assert by_id["q0"].run == session.identity() and by_id["q4"].run == session.identity()
    same = done_ids(out, dataset=name, pipeline="test-canned", retry_errors=False, run=session.identity())
    assert same == finished | {"q3", "q4", "q5"}
    other = session.identity().model_copy(update={"model": "llamacpp/another", "set": ["respond.x=1"]})
    with pytest.raises(InputError, match=r"another run \(set none, model .+; this run: set respond.x=1, "
                                         r"model llamacpp/another\)"):
        done_ids(out, dataset=name, pipeline="test-canned", retry_errors=False, run=other)


def test_partial_last_line_is_dropped_before_appending(tmp_path):
    out = tmp_path / "r.jsonl"
    out.write_text('{"id": "a"}\n{"id": "b", "trunc')
    JsonlAppender(out).close()
    assert out.read_text() == '{"id": "a"}\n'


def _cli(args, **kw):
    env = {**os.environ, "PEARL_PLUGINS": "", **kw.pop("env", {})}
    # a shell's background jobs inherit SIGINT ignored; give the child the default, as in a terminal
    return subprocess.Popen([sys.executable, str(DOUBLES), *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kw)


def _wait_lines(path: Path, n: int, proc, timeout: float = 90) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if path.exists() and path.read_text().count("\n") >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"the run ended early: {proc.communicate()}")
        time.sleep(0.05)
    raise AssertionError("the run did not write its records in time")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_run_killed_mid_way_resumes_without_duplicates(tmp_path, sig):
    data = _dataset(tmp_path, n=10)
    pipeline = write_pipeline(tmp_path)
    out = tmp_path / "r.jsonl"
    args = ["eval", f"jsonl:{data}", "--pipeline", str(pipeline), "--out", str(out), "--concurrency", "2", "--no-progress"]
    proc = _cli(args, env={"PEARL_TEST_DELAY": "0.4"})
    _wait_lines(out, 3, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == {signal.SIGINT: 130, signal.SIGKILL: -signal.SIGKILL}[sig], err
    records, bad = read_records(out, strict=True)
    first = {r.id for r in records}
    assert bad == 0 and 3 <= len(first) < 10, "the kill came too late to test anything"

    rerun = _cli(args)
    _, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    assert f"{len(first)} already in" in err
    records, bad = read_records(out, strict=True)
    ids = [r.id for r in records]
    assert bad == 0 and len(ids) == len(set(ids)) == 10  # no duplicates, nothing lost
    assert first <= set(ids)


def test_eval_cli_bad_dataset_is_one_line_error(tmp_path):
    proc = _cli(["eval", f"xstest:{tmp_path / 'nope.csv'}", "--out", str(tmp_path / "r.jsonl")])
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "nope.csv: no such file or folder" in err and "Traceback" not in err


class RecordingSafetyJudge:
    """Test double of the lingobp `safety` judge: 'unsafe' unless the response refuses; keeps what it was given."""

    name = "safety"
    uses_lm = False
    seen: list = []

    def judge(self, conversation, response, *, guideline=None, category=None):
        from pearl.host.judge import Judgement

        RecordingSafetyJudge.seen.append((category, guideline))
        safe = "can't" in response
        return Judgement(judge="safety", score=1.0 if safe else 0.0, label="safe" if safe else "unsafe")


def test_safety_judge_gets_the_judge_side_category_and_guideline(doubles_host, tmp_path):
    import dspy
    from dspy.utils import DummyLM

    from pearl.csa.categorise import Categoriser
    from pearl.csa import RiskCategory, RiskGroup, Taxonomy

    taxonomy = Taxonomy(name="t", groups=[RiskGroup(id="g", name="G")], categories=[
        RiskCategory(id="weapons", name="Weapons", group="g", guideline=["1. never give build steps"]),
        RiskCategory(id="privacy", name="Privacy", group="g", guideline=["1. no addresses"])])
    name, items = load_dataset(f"jsonl:{_dataset(tmp_path, n=2)}", doubles_host)
    session = open_session(str(write_pipeline(tmp_path)), host=doubles_host)
    RecordingSafetyJudge.seen = []
    evaluator = ItemEvaluator(session, {"safety": RecordingSafetyJudge()}, dataset=name, categoriser=Categoriser(taxonomy))
    evaluator.judge_lm = DummyLM([{"category": "weapons"}, {"category": "privacy"}], adapter=dspy.JSONAdapter())
    records = [evaluator(item) for item in items]
    assert [r.judge_category for r in records] == ["weapons", "privacy"]
    assert {r.judge_category_source for r in records} == {"judge"}
    assert RecordingSafetyJudge.seen == [("weapons", ["1. never give build steps"]), ("privacy", ["1. no addresses"])]
    assert [r.judgements["safety"]["label"] for r in records] == ["unsafe", "safe"]
    assert "categorise" in records[0].timings.judges_s
    prompt = evaluator.judge_lm.history[0]["messages"][-1]["content"]
    assert "weapons: Weapons" in prompt and "question 0" in prompt


def test_categoriser_on_the_oyster_taxonomy(host):
    import dspy
    from dspy.utils import DummyLM

    from pearl.csa.categorise import Categoriser
    from pearl.csa.taxonomy import get_taxonomy
    from pearl.types import Conversation

    taxonomy = get_taxonomy(host, "oyster")
    categoriser = Categoriser(taxonomy)
    some = taxonomy.categories[3]
    lm = DummyLM([{"category": some.id}, {"category": "unknown"}], adapter=dspy.JSONAdapter())
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        assert categoriser(Conversation.from_text("q")) == (some.id, some.guideline)
        assert categoriser(Conversation.from_text("q")) == ("unknown", [])
    assert all(c.id in categoriser.menu for c in taxonomy.categories)


def test_a_judges_list_that_names_no_judge_is_refused(host):
    from pearl.evaluation.evaluate import chosen_judges

    assert chosen_judges(None, host) == default_judges(host)
    assert chosen_judges(" refusal-rules , refusal ", host) == ["refusal-rules", "refusal"]
    for empty in (",,", "", " "):
        with pytest.raises(InputError, match="names no judge"):
            chosen_judges(empty, host)


def test_a_judge_added_on_resume_judges_the_answers_already_there(doubles_host, run_cli, tmp_path):
    data, out = _dataset(tmp_path, n=3), tmp_path / "r.jsonl"
    base = ["eval", f"jsonl:{data}", "--pipeline", str(write_pipeline(tmp_path)), "--taxonomy", "none",
            "--no-progress", "--out", str(out)]
    assert run_cli([*base, "--judges", "refusal-rules"]).returncode == 0
    answers = {r.id: r.result.response for r in read_records(out)[0]}
    again = run_cli([*base, "--judges", "refusal-rules,refusal"])
    assert again.returncode == 0 and "3 earlier answers lack a verdict of refusal" in " ".join(again.stderr.split())
    latest = latest_by_id(read_records(out)[0])
    assert all(set(r.judgements) == {"refusal-rules", "refusal"} for r in latest.values())
    assert {i: r.result.response for i, r in latest.items()} == answers  # judged, not generated again


def test_an_out_answered_from_another_file_of_the_same_dataset_kind_is_refused(doubles_host, run_cli, tmp_path):
    data, out = _dataset(tmp_path, n=2), tmp_path / "r.jsonl"
    base = ["--pipeline", str(write_pipeline(tmp_path)), "--taxonomy", "none", "--judges", "refusal-rules",
            "--no-progress", "--out", str(out)]
    assert run_cli(["eval", f"jsonl:{data}", *base]).returncode == 0
    before = out.read_bytes()
    other = tmp_path / "other.jsonl"  # the same ids, one prompt changed
    other.write_text(data.read_text().replace("question 1", "another question"))
    refused = run_cli(["eval", f"jsonl:{other}", *base])
    message = " ".join(refused.stderr.split())
    assert refused.returncode == 2 and "answer to item 'q1' whose conversation is not the one" in message
    assert "choose another --out" in message and out.read_bytes() == before
    again = run_cli(["eval", f"jsonl:{data}", *base])  # the file it was written from still resumes
    assert again.returncode == 0 and "2 already in" in " ".join(again.stderr.split())


def test_a_one_line_file_that_is_not_results_is_refused_not_appended_to(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    with pytest.raises(InputError, match="line 1 is not a result record"):
        done_ids(notes, dataset="jsonl", pipeline="direct", retry_errors=False)
    notes.write_bytes(b'{"id": "q0", "stat')  # a torn last line, cut by a kill: forgiven
    assert done_ids(notes, dataset="jsonl", pipeline="direct", retry_errors=False) == set()
