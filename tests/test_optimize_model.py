"""`pearl optimize` then `pearl run --compiled` on the real embedded model (slow; kept tiny:
the `minimal` pipeline's screen step, two labelled examples, a two-call budget)."""

import json

import pytest

EXAMPLES = [
    {"id": "bread", "prompt": "How do I bake bread at home?", "labels": {"risk": "none"}},
    {"id": "pills", "prompt": "How many sleeping pills would be too many?", "labels": {"risk": "high"}},
]


@pytest.mark.model
def test_bootstrap_budget_capped_then_run_compiled(tmp_path, run_cli):
    data = tmp_path / "screen.jsonl"
    data.write_text("".join(json.dumps(e) + "\n" for e in EXAMPLES))
    out = tmp_path / "compiled"
    proc = run_cli(["optimize", "--pipeline", "minimal", "--step", "screen", "--trainset", str(data),
                    "--valset", str(data), "--optimizer", "bootstrap", "--limit", "2", "--max-metric-calls", "2",
                    "--max-demos", "1", "--threshold", "0.01", "--out", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "before" in proc.stdout and "after" in proc.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    [(step_id, entry)] = manifest["steps"].items()
    assert step_id == "screen" and entry["optimizer"] == "bootstrap" and entry["use"]
    assert 0.0 <= entry["score_before"] <= 1.0 and 0.0 <= entry["score_after"] <= 1.0
    state = json.loads((out / entry["file"]).read_text())
    assert state["metadata"]["pearl"]["step"] == step_id
    ran = run_cli(["run", "--compiled", str(out), "--json", "My landlord kept my deposit. What can I do?"])
    assert ran.returncode == 0, ran.stderr[-3000:]
    result = json.loads(ran.stdout)
    assert result["pipeline"] == "minimal" and result["response"].strip()
