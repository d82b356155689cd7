"""`pearl eval-judge --verdicts`: every verdict is written as it is made, and a stopped
measurement resumes without judging a row twice (a scripted DummyLM as the judge's model)."""

from __future__ import annotations

import json

import dspy
import pytest
from dspy.utils import DummyLM

from pearl.errors import InputError
from pearl.evaluation.judge_quality import measure, rows_from_items
from pearl.host.dataset import load_dataset

ANSWER = {"expected_behaviour": "decline", "user_type": "malicious", "next_turn": "ok", "verdict": "unsafe",
          "suggestion": "decline"}


class Stop(Exception):
    pass


def test_a_stopped_measurement_resumes_from_its_verdicts_file(host, shared_data, tmp_path):
    _, items = load_dataset(f"pyrit-objective:{shared_data / 'labels' / 'pyrit_objective_achieved.jsonl'}", host)
    rows = rows_from_items(items, "pyrit-objective")[:5]
    judge = host.get("judges", "safety")()
    verdicts = tmp_path / "v.jsonl"

    def stop_after_three(record):
        if sum(1 for _ in verdicts.open()) == 3:
            raise Stop()

    with pytest.raises(Stop):
        measure(judge, rows, lm=DummyLM([ANSWER] * 5, adapter=dspy.JSONAdapter()), n_boot=100, verdicts=verdicts,
                on_verdict=stop_after_three)
    written = [json.loads(line) for line in verdicts.read_text().splitlines()]
    assert [w["id"] for w in written] == [r.id for r in rows[:3]] and all(w["pred"] == "achieved" for w in written)

    lm = DummyLM([ANSWER] * 5, adapter=dspy.JSONAdapter())
    m = measure(judge, rows, lm=lm, n_boot=100, verdicts=verdicts)
    assert len(lm.history) == 2  # only the two rows not judged yet
    assert m.categorical.n == 5 and m.cost.items == 5 and m.cost.by_tier == {"safety": 5}
    assert len(verdicts.read_text().splitlines()) == 5

    with pytest.raises(InputError, match="holds verdicts of judge 'safety', not 'refusal-rules'"):
        measure(host.get("judges", "refusal-rules")(), rows, n_boot=100, verdicts=verdicts)


def test_eval_judge_cli_writes_verdicts_and_refuses_its_input_as_output(host, shared_data, run_cli, tmp_path):
    labels = shared_data / "labels" / "pyrit_refusal.jsonl"
    out = tmp_path / "v.jsonl"
    first = run_cli(["eval-judge", "refusal-rules", "--labels", f"pyrit-refusal:{labels}", "--split", "test",
                     "--verdicts", str(out), "--json"])
    assert first.returncode == 0, first.stderr
    assert len(out.read_text().splitlines()) == json.loads(first.stdout)["n"]
    again = run_cli(["eval-judge", "refusal-rules", "--labels", f"pyrit-refusal:{labels}", "--split", "test",
                     "--verdicts", str(out), "--json"])
    assert json.loads(again.stdout)["categorical"] == json.loads(first.stdout)["categorical"]
    assert len(out.read_text().splitlines()) == json.loads(first.stdout)["n"]  # nothing judged twice
    same = run_cli(["eval-judge", "refusal-rules", "--labels", f"pyrit-refusal:{labels}", "--verdicts", str(labels)])
    assert same.returncode == 2 and "--verdicts" in same.stderr


def test_the_screened_safety_judge_asks_the_model_only_about_replies_that_are_not_full_refusals(host, shared_data):
    from pearl.strategies.refusal import ClassifierRefusalJudge

    _, items = load_dataset(f"pyrit-objective:{shared_data / 'labels' / 'pyrit_objective_achieved.jsonl'}", host)
    rows = rows_from_items(items, "pyrit-objective")[:12]
    screen = ClassifierRefusalJudge()
    refused = [r for r in rows if (v := screen.judge(r.conversation, r.response)).refusal == "full" and not v.unsure]
    assert 0 < len(refused) < len(rows)  # the sample holds both kinds
    lm = DummyLM([ANSWER] * len(rows), adapter=dspy.JSONAdapter())
    m = measure(host.get("judges", "safety-screened")(), rows, lm=lm, n_boot=100)
    assert len(lm.history) == len(rows) - len(refused)  # one model call per reply that is not a sure full refusal
    assert m.cost.by_tier == {"refusal": len(refused), "safety": len(rows) - len(refused)}
    assert m.categorical.n == len(rows)
