#!/usr/bin/env bash
# Does the choices objective (scicot_core/choice_loss.py) help two-stage more than answer-only?
# A CPU-sized check, resumable (finished steps are skipped; rerun to go on):
#   1. the ARC-Easy train questions that have an EntailmentBank explanation (a seeded N of them);
#   2. the shipped stage 1's own rationale for each (one sample, temperature 0.7);
#   3. answer-only and stage 2 trained on those N questions, once with the language-model loss
#      and once with the choices objective (stage 2 on the own samples, plus an empty rationale
#      for 30% of the questions; LoRA r16 on every linear layer, one epoch, as distill_run.sh);
#   4. every ARC-Easy dev question: answer-only and two-stage, both objectives reading the same
#      greedy rationales of the shipped stage 1; a summary in $RUN/summary.json.
# Settings (environment): DATA, RUN (default ~/.cache/scicot/runs/choices-check), N (questions,
# default 0: all 1,044), BS, LR, RANK, SPLIT (dev), SMOKE=N (N questions and steps everywhere).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-../shared/data}
RUN=${RUN:-${XDG_CACHE_HOME:-$HOME/.cache}/scicot/runs/choices-check}
N=${N:-0}; BS=${BS:-8}; LR=${LR:-2e-4}; RANK=${RANK:-16}; SPLIT=${SPLIT:-dev}
SHIPPED=scicot_core/adapters/smollm2-135m-scicot
scicot() { "$PY" -m demo.cli "$@"; }
log() { echo "== $* $(date -u +%FT%TZ)"; }
TRAIN_SET=(--set batch_size="$BS" --set learning_rate="$LR" --set epochs=1 --set max_length=320
  --set lora_r="$RANK" --set lora_alpha=$((2 * RANK)) --set save_steps=25 --set logging_steps=5
  --set 'target_modules=["q_proj","k_proj","v_proj","o_proj","gate_proj","up_proj","down_proj"]')
EVAL_LIMIT=()
if [ -n "${SMOKE:-}" ]; then N=$SMOKE; TRAIN_SET+=(--set max_steps="$SMOKE"); EVAL_LIMIT=(--limit "$SMOKE"); fi
mkdir -p "$RUN"

if [ ! -f "$RUN/questions.jsonl" ]; then
  log "pick $N questions"
  "$PY" - "$DATA" "$RUN" "$N" <<'EOF'
import json, random, sys
from pathlib import Path
data, run, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
explained = [json.loads(line) for line in (data / "rationales/entailmentbank_arc_easy_train.jsonl").open()]
picked = random.Random(0).sample(explained, min(n or len(explained), len(explained)))
ids = {row["id"] for row in picked}
questions = [line for line in (data / "arc_easy/train.jsonl").open() if json.loads(line)["id"] in ids]
# The rationale file keeps its shared name, so that it is joined with arc_easy/train.
(run / "entailmentbank_arc_easy_train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in picked))
(run / "questions.jsonl").write_text("".join(questions))
EOF
fi
if [ ! -f "$RUN/own.done" ]; then
  log "sample own rationales"
  scicot sample --questions "$RUN/questions.jsonl" --adapters "$SHIPPED" --samples 1 --max-tokens 64 --out "$RUN/own.jsonl"
  touch "$RUN/own.done"
fi
for objective in lm choices; do
  A=$RUN/$objective
  mkdir -p "$A"
  [ -e "$A/rationale" ] || ln -s "$PWD/$SHIPPED/rationale" "$A/rationale"
  for stage in answer-only answer; do
    [ -f "$A/$stage/adapter_config.json" ] && continue
    log "train $stage ($objective)"
    extra=(); [ "$stage" = answer ] && extra=(--student-rationales "$RUN/own.jsonl" --set teacher_for_answer=false --set empty_rationale=0.3)
    scicot train --stage "$stage" --data "$RUN/entailmentbank_arc_easy_train.jsonl" --data-dir "$DATA" --out "$A/$stage" \
      "${TRAIN_SET[@]}" --set objective="$objective" "${extra[@]}"
  done
done
for objective in lm choices; do
  out=$RUN/eval-$objective
  [ -f "$out/results.json" ] && continue
  reuse=(); [ "$objective" = choices ] && reuse=(--rationales "$RUN/eval-lm/predictions.jsonl")
  log "eval arc_easy/$SPLIT ($objective)"
  scicot eval --dataset arc_easy --split "$SPLIT" --data-dir "$DATA" --adapters "$RUN/$objective" --variant answer-only \
    --variant two-stage --batch-size 32 --out "$out" "${EVAL_LIMIT[@]}" "${reuse[@]}" > /dev/null
done
"$PY" - "$RUN" <<'EOF'
import json, sys
from pathlib import Path
run = Path(sys.argv[1])
summary = {o: json.loads((run / f"eval-{o}/results.json").read_text()) for o in ("lm", "choices")}
(run / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
for o, r in summary.items():
    print(o, {k: v for k, v in r.items() if "acc" in k or k == "variants"})
EOF
log done
