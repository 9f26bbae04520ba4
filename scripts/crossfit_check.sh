#!/usr/bin/env bash
# Does stage 2 trust its rationales too much because it trains on rationales stage 1 wrote for
# questions it had learned? A CPU-sized check of cross-fitting (stacking), resumable (finished
# steps are skipped; rerun to go on):
#   1. N seeded OpenBookQA train questions in two folds, with their correct terse strong-teacher
#      rationales (SOURCES: several per question, as the GPU runs train stage 1);
#   2. stage 1 on each fold alone, and on both;
#   3. the student's own rationale for each question twice: by the stage 1 that trained on it
#      (in-sample, what distill_run.sh does) and by the one that did not (cross-fitted);
#   4. answer-only, and stage 2 twice (teacher + in-sample own, teacher + cross-fitted own; an
#      empty rationale for 30% of the questions), all on the same N questions;
#   5. every OpenBookQA dev question: zero-shot, answer-only and both two-stages reading the same
#      greedy rationales of the full stage 1; a summary in $RUN/summary.json, also saying how
#      often each set of own rationales concludes the gold answer.
# Settings (environment): DATA, RUN (default ~/.cache/scicot/runs/crossfit), N (default 1200),
# SOURCES, BS, LR, RANK, SMOKE=N (N questions and steps everywhere: a quick check of the path).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-../shared/data}
RUN=${RUN:-${XDG_CACHE_HOME:-$HOME/.cache}/scicot/runs/crossfit}
N=${N:-1200}; BS=${BS:-8}; LR=${LR:-2e-4}; RANK=${RANK:-16}
SOURCES=${SOURCES:-gpt4o-level1 gemini15flash-level1 gemini15flash-level2}
scicot() { "$PY" -m demo.cli "$@"; }
log() { echo "== $* $(date -u +%FT%TZ)"; }
TRAIN_SET=(--set batch_size="$BS" --set learning_rate="$LR" --set epochs=1 --set max_length=320
  --set lora_r="$RANK" --set lora_alpha=$((2 * RANK)) --set save_steps=50 --set logging_steps=10
  --set 'target_modules=["q_proj","k_proj","v_proj","o_proj","gate_proj","up_proj","down_proj"]')
EVAL_LIMIT=()
if [ -n "${SMOKE:-}" ]; then N=$SMOKE; TRAIN_SET+=(--set max_steps="$SMOKE"); EVAL_LIMIT=(--limit "$SMOKE"); fi
mkdir -p "$RUN"

if [ ! -f "$RUN/picked.done" ]; then
  log "pick $N questions in two folds"
  "$PY" - "$DATA" "$RUN" "$N" $SOURCES <<'EOF'
import json, random, sys
from pathlib import Path
data, run, n, sources = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
questions = [json.loads(line) for line in (data / "openbookqa/train.jsonl").open()]
picked = random.Random(0).sample(questions, n)
folds = {"A": picked[: n // 2], "B": picked[n // 2 :]}
for fold, rows in folds.items():
    ids = {q["id"] for q in rows}
    (run / fold).mkdir(exist_ok=True)
    (run / f"questions-{fold}.jsonl").write_text("".join(json.dumps(q) + "\n" for q in rows))
    for source in sources:  # each file keeps its shared name, so it is joined with openbookqa/train
        name = f"{source}_openbookqa_train.jsonl"
        kept = [line for line in (data / "rationales" / name).open() if json.loads(line)["id"] in ids]
        (run / fold / name).write_text("".join(kept))
(run / "questions-all.jsonl").write_text("".join(json.dumps(q) + "\n" for q in picked))
(run / "picked.done").write_text("")
EOF
fi
files() { for fold in "$@"; do ls "$RUN/$fold"/*.jsonl; done | sed 's/^/--data\n/'; }
train() {  # train OUT STAGE ARGS...: skipped once its adapter exists
  local out=$1 stage=$2; shift 2
  [ -f "$out/adapter_config.json" ] && return
  log "train $stage -> $out"
  scicot train --stage "$stage" --data-dir "$DATA" --out "$out" "${TRAIN_SET[@]}" "$@"
}
mapfile -t FILES_A < <(files A); mapfile -t FILES_B < <(files B); mapfile -t FILES_ALL < <(files A B)
train "$RUN/stage1-A/rationale" rationale "${FILES_A[@]}" --correct-only
train "$RUN/stage1-B/rationale" rationale "${FILES_B[@]}" --correct-only
train "$RUN/stage1-all/rationale" rationale "${FILES_ALL[@]}" --correct-only
own() {  # own NAME ADAPTERS QUESTIONS
  [ -f "$RUN/own/$1.done" ] && return
  log "own rationales $1"
  mkdir -p "$RUN/own"
  scicot sample --questions "$3" --adapters "$2" --samples 1 --max-tokens 64 --out "$RUN/own/$1.jsonl" > /dev/null
  touch "$RUN/own/$1.done"
}
own crossfit-A "$RUN/stage1-B" "$RUN/questions-A.jsonl"  # each fold written by the stage 1 that never saw it
own crossfit-B "$RUN/stage1-A" "$RUN/questions-B.jsonl"
own insample "$RUN/stage1-all" "$RUN/questions-all.jsonl"
for mix in insample crossfit; do
  A=$RUN/$mix
  mkdir -p "$A"
  [ -e "$A/rationale" ] || ln -s "$RUN/stage1-all/rationale" "$A/rationale"
  own_files=(--student-rationales "$RUN/own/insample.jsonl")
  [ "$mix" = crossfit ] && own_files=(--student-rationales "$RUN/own/crossfit-A.jsonl" --student-rationales "$RUN/own/crossfit-B.jsonl")
  train "$A/answer" answer "${FILES_ALL[@]}" --max-per-question 1 --set empty_rationale=0.3 "${own_files[@]}"
done
train "$RUN/answer-only" answer-only "${FILES_ALL[@]}"
for mix in insample crossfit; do [ -e "$RUN/$mix/answer-only" ] || ln -s "$RUN/answer-only" "$RUN/$mix/answer-only"; done
for mix in insample crossfit; do
  out=$RUN/eval-$mix
  [ -f "$out/results.json" ] && continue
  reuse=(); [ "$mix" = crossfit ] && reuse=(--rationales "$RUN/eval-insample/predictions.jsonl")
  log "eval openbookqa/dev ($mix)"
  scicot eval --dataset openbookqa --split dev --data-dir "$DATA" --adapters "$RUN/$mix" --max-sentences 0 \
    --variant zero-shot --variant answer-only --variant two-stage --batch-size 32 --out "$out" "${EVAL_LIMIT[@]}" "${reuse[@]}" > /dev/null
done
"$PY" - "$RUN" "$DATA" <<'EOF'
import json, sys
from pathlib import Path
run, data = Path(sys.argv[1]), Path(sys.argv[2])
gold = {json.loads(line)["id"]: json.loads(line)["answerKey"] for line in (data / "openbookqa/train.jsonl").open()}
def concludes_gold(*names):
    rows = [json.loads(line) for name in names for line in (run / "own" / f"{name}.jsonl").open()]
    return {"rationales": len(rows), "conclude_gold": round(sum(r.get("conclusion") == gold[r["id"]] for r in rows) / len(rows), 4)}
summary = {
    "own_rationales": {"insample": concludes_gold("insample"), "crossfit": concludes_gold("crossfit-A", "crossfit-B")},
    "dev": {mix: json.loads((run / f"eval-{mix}/results.json").read_text()) for mix in ("insample", "crossfit")},
}
(run / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
print(json.dumps(summary["own_rationales"]))
EOF
log done
