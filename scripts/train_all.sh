#!/usr/bin/env bash
# The real training runs (CPU): stage 1, stage 2, then the two baselines, one after another.
set -euo pipefail
cd "$(dirname "$0")/.."
R=../shared/data/rationales
DATA="--data $R/flan_t5_arc_challenge_train.jsonl --data $R/flan_t5_openbookqa_train.jsonl --data-dir ../shared/data"
SET="--set limit=1600 --set learning_rate=5e-4 --set batch_size=8 --set max_length=256 --set save_steps=25 --set logging_steps=5"
for stage in rationale answer answer-only single-stage; do
  echo "== $stage $(date -u +%FT%TZ)"
  .venv/bin/scicot train --stage $stage $DATA --out runs/adapters/$stage $SET
done
echo "== done $(date -u +%FT%TZ)"
