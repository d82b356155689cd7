#!/usr/bin/env bash
# Every judge x labelled set of the issue-12 closing table, on the test split; prints each report.
# XSTEST_DIR: a folder with the XSTest repository's model_completions/xstest_v2_completions_*.csv
# (only the gpt4 file is in ../shared/data). ZH_DIR (optional): the labels-jsonl files that
# `translate_labelled.py --export` writes (Chinese translations of labelled test rows). LLM judges run on the default backend and model
# unless PEARL_BACKEND / PEARL_MODEL say otherwise; they are sampled (--sample) to stay short.
set -euo pipefail
cd "$(dirname "$0")/../../.."
S=../shared/data
X=${XSTEST_DIR:-$S/xstest}
pearl() { .venv/bin/pearl "$@"; }
for judge in refusal refusal-rules; do
  for f in "$X"/xstest_v2_completions_*.csv; do pearl eval-judge "$judge" --labels "xstest:$f" --split test; done
  pearl eval-judge "$judge" --labels "pyrit-refusal:$S/labels/pyrit_refusal.jsonl" --split test
  pearl eval-judge "$judge" --labels "pyrit-objective:$S/labels/pyrit_objective_achieved.jsonl" --split test
  if [ -n "${ZH_DIR:-}" ]; then
    for f in "$ZH_DIR"/zh-xstest-test.jsonl "$ZH_DIR"/zh-pyrit-test.jsonl; do pearl eval-judge "$judge" --labels "jsonl:$f"; done
  fi
done
pearl eval-judge safety --labels "pyrit-objective:$S/labels/pyrit_objective_achieved.jsonl" --split test --sample 30
pearl eval-judge risk-flag --labels "openai-moderation:$S/labels/openai_moderation.jsonl" --split test --sample 20
