#!/usr/bin/env bash
# The real training runs (CPU): stage 1, stage 2, then the two baselines, one after another, into
# ${ADAPTERS:-runs/adapters}. STUDENT_RATIONALES=<an eval's predictions.jsonl> also trains stage 2 on
# the student's own rationales. Rerun to resume: finished stages are skipped, a stopped one resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
R=../shared/data/rationales
A=${ADAPTERS:-runs/adapters}
DATA="--data $R/flan_t5_arc_challenge_train.jsonl --data $R/flan_t5_openbookqa_train.jsonl --data-dir ../shared/data"
SET="--set limit=1600 --set learning_rate=5e-4 --set batch_size=8 --set max_length=256 --set save_steps=25 --set logging_steps=5"
for stage in rationale answer answer-only single-stage; do
  if [ -f "$A/$stage/adapter_config.json" ]; then echo "== $stage: already trained in $A/$stage (delete it to retrain)"; continue; fi
  extra=()
  [ "$stage" = answer ] && [ -n "${STUDENT_RATIONALES:-}" ] && extra=(--student-rationales "$STUDENT_RATIONALES")
  echo "== $stage $(date -u +%FT%TZ)"
  .venv/bin/scicot train --stage $stage $DATA --out "$A/$stage" $SET ${extra[@]+"${extra[@]}"}
done
echo "== done $(date -u +%FT%TZ)"
