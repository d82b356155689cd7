"""`pearl taxonomy`: listing, printing, loading a workbook, and one-line errors."""

from __future__ import annotations

import json

import openpyxl
import pytest


@pytest.fixture
def pearl(run_cli):
    """`pearl taxonomy ARGS` in process, on a wide terminal."""
    return lambda *args: run_cli(["taxonomy", *args], env={"COLUMNS": "200"})


def assert_clean_error(proc, *fragments):
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr


def test_list(pearl):
    proc = pearl("--list")
    assert proc.returncode == 0, proc.stderr
    assert "oyster" in proc.stdout and "mlcommons" in proc.stdout
    rows = {r["name"]: r for r in json.loads(pearl("--list", "--json").stdout)}
    assert (rows["oyster"]["groups"], rows["oyster"]["categories"]) == (9, 32)
    assert rows["mlcommons"]["categories"] == 14


def test_default_is_oyster_table(pearl):
    proc = pearl()
    assert proc.returncode == 0, proc.stderr
    assert "mental_health" in proc.stdout and "Physical and Mental Harm" in proc.stdout
    assert "32 categories in 9 groups" in proc.stdout
    assert "1. " not in proc.stdout  # rules only with --rules


def test_rules_and_json(pearl):
    proc = pearl("mlcommons", "--rules")
    assert proc.returncode == 0, proc.stderr
    assert "suicide_self_harm" in proc.stdout and "1. " in proc.stdout
    data = json.loads(pearl("oyster", "--json").stdout)
    assert len(data["categories"]) == 32 and data["categories"][0]["guideline"]


def test_from_xlsx_real_file(pearl, shared_data):
    proc = pearl("--from-xlsx", str(shared_data / "oyster" / "risk_rules.xlsx"), "--table")
    assert proc.returncode == 0, proc.stderr
    assert "32 categories in 9 groups" in proc.stdout
    assert "sheet 2: 9 groups, 67 categories" in proc.stdout
    assert "Unknown Risk" in proc.stdout


def test_errors_are_one_line(pearl, tmp_path):
    assert_clean_error(pearl("nope"), "unknown taxonomy 'nope'", "oyster")
    assert_clean_error(pearl("--from-xlsx", str(tmp_path / "missing.xlsx")), "does not exist")
    wb = openpyxl.Workbook()
    wb.active.append(["风险分级", "风险类别cn"])
    wb.create_sheet("t")
    bad = tmp_path / "bad.xlsx"
    wb.save(bad)
    assert_clean_error(pearl("--from-xlsx", str(bad)), str(bad), "sheet 2 't': is empty")
    assert_clean_error(pearl("oyster", "--from-xlsx", str(bad)), "not both")
    assert_clean_error(pearl("--table"), "use it with --from-xlsx")
