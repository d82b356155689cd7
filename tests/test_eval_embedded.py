"""`pearl eval` and `pearl report` end to end on the real embedded model (one item)."""

import pytest
from typer.testing import CliRunner

from pearl.cli import app
from pearl.io.results import read_records


@pytest.mark.model
def test_eval_direct_on_embedded_model_then_report(shared_data, tmp_path):
    out = tmp_path / "r.jsonl"
    args = ["eval", f"strata-sword:{shared_data / 'strata_sword'}", "--pipeline", "direct", "--sample", "1",
            "--out", str(out), "--concurrency", "1", "--no-progress", "--max-tokens", "128", "--n-ctx", "2048"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    records, bad = read_records(out)
    assert bad == 0 and len(records) == 1
    record = records[0]
    assert record.status == "ok" and record.result.usage.calls >= 1
    assert record.judgements["refusal"]["refusal"] in ("full", "partial", "none")
    rep = CliRunner().invoke(app, ["report", str(out), "--out", str(tmp_path / "rep"), "--bootstrap", "100"])
    assert rep.exit_code == 0, rep.output
    assert (tmp_path / "rep" / "asr_by_level.png").exists()
