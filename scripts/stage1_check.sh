#!/usr/bin/env bash
# Is stage 1 what holds two-stage back, and does a stage 1 that learned from human explanations
# help? A CPU-sized check on ARC-Easy dev, built on scripts/choices_check.sh's run (its questions,
# its answer-only and its choices-objective stage 2, and its greedy dev rationales of the
# shipped stage 1). Resumable: finished steps are skipped; rerun to go on.
#   1. ceiling: the choices stage 2 reading the EntailmentBank explanations of the 233 ARC-Easy
#      dev questions that have one, as gold facts alone and as facts plus hypothesis (never
#      their answer sentence), against the shipped stage 1's rationales of the same questions;
#   2. a new stage 1 trained on the EntailmentBank explanations of the same 1,044 ARC-Easy train
#      questions (LoRA r16 on every linear layer, one epoch), its greedy dev rationales read
#      by the stage 2 of step 1 (trained on the shipped stage 1's samples);
#   3. a stage 2 trained on the new stage 1's own samples (the choices check's recipe), reading
#      the same greedy dev rationales. A summary in $RUN/summary.json.
# Settings (environment): DATA, BASE (the choices check's run folder), RUN (default
# ~/.cache/scicot/runs/stage1-check), BS, LR, RANK, SMOKE=N (N questions and steps everywhere).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-../shared/data}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/scicot/runs
BASE=${BASE:-$CACHE/choices-check}
RUN=${RUN:-$CACHE/stage1-check}
BS=${BS:-8}; LR=${LR:-2e-4}; RANK=${RANK:-16}
scicot() { "$PY" -m demo.cli "$@"; }
log() { echo "== $* $(date -u +%FT%TZ)"; }
for need in "$BASE/choices/answer/adapter_config.json" "$BASE/choices/answer-only/adapter_config.json" \
  "$BASE/eval-lm/predictions.jsonl" "$BASE/questions.jsonl" "$BASE/entailmentbank_arc_easy_train.jsonl"; do
  [ -f "$need" ] || { echo "stage1_check.sh: $need is missing: run scripts/choices_check.sh first (BASE=$BASE)" >&2; exit 2; }
done
TRAIN_SET=(--set batch_size="$BS" --set learning_rate="$LR" --set epochs=1 --set max_length=320
  --set lora_r="$RANK" --set lora_alpha=$((2 * RANK)) --set save_steps=25 --set logging_steps=5
  --set 'target_modules=["q_proj","k_proj","v_proj","o_proj","gate_proj","up_proj","down_proj"]')
LIMIT=()
if [ -n "${SMOKE:-}" ]; then TRAIN_SET+=(--set max_steps="$SMOKE"); LIMIT=(--limit "$SMOKE"); fi
mkdir -p "$RUN"
eval_two() {  # eval_two OUT ADAPTERS [eval options...]: answer-only and two-stage, ARC-Easy dev
  local out=$1 adapters=$2; shift 2
  [ -f "$out/results.json" ] && return 0
  log "eval $(basename "$out")"
  scicot eval --data-dir "$DATA" --adapters "$adapters" --variant answer-only --variant two-stage \
    --batch-size 32 --out "$out" "${LIMIT[@]}" "$@" > /dev/null
}

# 1. The ceiling: human explanations of the dev questions that have one.
if [ ! -f "$RUN/explained_dev.jsonl" ]; then
  "$PY" - "$DATA" "$RUN" "$BASE" <<'EOF'
import json, sys
from pathlib import Path
from scicot_core.formats import rationale_body
data, run, base = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
explained = {r["id"]: r for r in map(json.loads, (data / "rationales/entailmentbank_arc_easy_dev.jsonl").open())}
lines = [line for line in (data / "arc_easy/dev.jsonl").open() if json.loads(line)["id"] in explained]
(run / "explained_dev.jsonl").write_text("".join(lines))
def sentence(fact):
    fact = fact.strip()
    return fact[0].upper() + fact[1:] + ("" if fact.endswith(".") else ".")
facts = [{"id": i, "rationale": " ".join(sentence(f) for f in r["facts"])} for i, r in explained.items()]
whole = [{"id": i, "rationale": rationale_body(r["rationale"])} for i, r in explained.items()]
for name, rows in (("facts", facts), ("facts_hypothesis", whole)):
    (run / f"gold_{name}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
EOF
fi
for gold in facts facts_hypothesis; do
  eval_two "$RUN/ceiling-$gold" "$BASE/choices" --questions "$RUN/explained_dev.jsonl" --rationales "$RUN/gold_$gold.jsonl"
done
eval_two "$RUN/ceiling-shipped" "$BASE/choices" --questions "$RUN/explained_dev.jsonl" --rationales "$BASE/eval-lm/predictions.jsonl"

# 2. A stage 1 taught by the EntailmentBank explanations of the choices check's questions.
A=$RUN/adapters
mkdir -p "$A"
[ -e "$A/answer-only" ] || ln -s "$BASE/choices/answer-only" "$A/answer-only"
if [ ! -f "$A/rationale/adapter_config.json" ]; then
  log "train rationale"
  scicot train --stage rationale --data "$BASE/entailmentbank_arc_easy_train.jsonl" --data-dir "$DATA" --out "$A/rationale" "${TRAIN_SET[@]}"
fi
mkdir -p "$RUN/old-stage2"
[ -e "$RUN/old-stage2/rationale" ] || ln -s "$A/rationale" "$RUN/old-stage2/rationale"
[ -e "$RUN/old-stage2/answer" ] || ln -s "$BASE/choices/answer" "$RUN/old-stage2/answer"
[ -e "$RUN/old-stage2/answer-only" ] || ln -s "$BASE/choices/answer-only" "$RUN/old-stage2/answer-only"
eval_two "$RUN/eval-old-stage2" "$RUN/old-stage2" --dataset arc_easy --split dev

# 3. Stage 2 on the new stage 1's own samples of the training questions.
if [ ! -f "$RUN/own.done" ]; then
  log "sample own rationales"
  scicot sample --questions "$BASE/questions.jsonl" --adapters "$A" --samples 1 --max-tokens 64 --out "$RUN/own.jsonl" "${LIMIT[@]}"
  touch "$RUN/own.done"
fi
if [ ! -f "$A/answer/adapter_config.json" ]; then
  log "train answer"
  scicot train --stage answer --data "$BASE/entailmentbank_arc_easy_train.jsonl" --data-dir "$DATA" --out "$A/answer" \
    "${TRAIN_SET[@]}" --set objective=choices --student-rationales "$RUN/own.jsonl" --set teacher_for_answer=false --set empty_rationale=0.3
fi
eval_two "$RUN/eval-new" "$A" --dataset arc_easy --split dev --rationales "$RUN/eval-old-stage2/predictions.jsonl"

"$PY" - "$RUN" <<'EOF'
import json, sys
from pathlib import Path
run = Path(sys.argv[1])
names = ["ceiling-facts", "ceiling-facts_hypothesis", "ceiling-shipped", "eval-old-stage2", "eval-new"]
summary = {n: json.loads((run / n / "results.json").read_text()) for n in names}
(run / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
for n, r in summary.items():
    print(n, r["n"], r["accuracy"])
EOF
log done
