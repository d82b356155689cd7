"""`pearl optimize` then `pearl run --compiled` on the real embedded model (slow; kept tiny)."""

import json
import os
import subprocess
import sys

import pytest

from pearl.runtime.pipeline import shipped_pipelines


def pearl(*args):
    env = {**os.environ, "PEARL_PLUGINS": ""}
    return subprocess.run([sys.executable, "-m", "pearl.cli", *args], capture_output=True, text=True, env=env,
                          timeout=900)


@pytest.mark.model
def test_bootstrap_budget_capped_then_run_compiled(tmp_path):
    # the CSA pipeline made cheap: no guideline rewrite, one-call anticipation
    light = tmp_path / "csa_light.toml"
    light.write_text(shipped_pipelines()["csa"].read_text()
                     .replace('taxonomy = "oyster"', 'taxonomy = "oyster"\nadapt_guideline = false')
                     .replace('mode = "pairs"', 'mode = "table"'))
    target = ["--pipeline", str(light), "--step", "risk", "--trainset", "risk-train", "--valset", "risk-val"]
    out = tmp_path / "compiled"
    proc = pearl("optimize", *target, "--optimizer", "bootstrap", "--limit", "2", "--max-metric-calls", "2",
                 "--max-demos", "1", "--threshold", "0.01", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "before" in proc.stdout and "after" in proc.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    [(step_id, entry)] = manifest["steps"].items()
    assert entry["optimizer"] == "bootstrap" and entry["use"]
    assert 0.0 <= entry["score_before"] <= 1.0 and 0.0 <= entry["score_after"] <= 1.0
    state = json.loads((out / entry["file"]).read_text())
    assert state["metadata"]["pearl"]["step"] == step_id
    assert manifest["pipeline_source"] == str(light.resolve())
    # refinement is tested elsewhere; here it would only add minutes of CPU
    ran = pearl("run", "--compiled", str(out), "--refine", "0", "--json", "My landlord kept my deposit. What can I do?")
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert json.loads(ran.stdout)["response"].strip()
