#!/usr/bin/env bash
# One distillation run end to end, resumable (finished steps are skipped; rerun to go on), on a
# GPU when there is one and on the CPU otherwise:
#   1. stage 1 on the strong-teacher OpenBookQA rationales (several per question), EntailmentBank
#      and Flan-T5, correct-only; 2. answer-only on every training question; 3. the student's own
#      sampled rationales for the training questions; 4. stage 2 on teacher + own + empty
#      rationales; 5. dev: zero-shot, answer-only, two-stage greedy, then stage 1's sentence cap
#      chosen on those reports (saved with the adapter: what follows uses it), two-stage with k
#      samples and two-stage+prior (weight chosen on all dev sets together); 6. step-by-step, trained and scored on dev;
#      7. test, only when TEST=1 (final candidates).
# Settings (environment): DATA (data dir), RUN (output, default ~/.cache/scicot/runs/distill),
# BS (train batch), GEN_BS (generation batch: 32 on a CPU, 512 on a GPU, where narrow batches
# leave it idle between tokens), K (samples at eval), KTRAIN (own samples per
# training question), MAXTOK (rationale tokens), EPOCHS, LR, RANK, SMOKE=N (N questions and
# steps everywhere: a quick check of the whole path), and for the dev decisions: STAGE1_SOURCES
# (stage 1's rationale files, space-separated patterns: e.g. "gpt4o-level1 gemini15flash-level1
# entailmentbank" for short rationales), AO_EPOCHS (answer-only's epochs, default EPOCHS),
# FULL=1 (every stage fine-tuned whole instead of LoRA; LR then defaults to 2e-5), and
# OBJECTIVE (choices, the default: stage 2 and answer-only alike learn the gold choice among all
# of a question's, see scicot_core/choice_loss.py; lm: the gold text's loss alone, which scored
# 2.8 to 4.0 points lower on ARC-Easy dev, docs/benchmarks.md), and FOLDS=N (N >= 2:
# stage 2's own rationales cross-fitted, each fold's written by a stage 1 trained without it;
# N more stage-1 trainings, the same sampling). Each decision needs its own RUN. SEED=<folder>
# starts a new RUN from the stage adapters in that folder (e.g. a candidate ship_adapters.py
# wrote into the tree, which every device call carries, and any dev/ or test/ reports beside
# them): those stages, and the own samples of a seeded stage 2, are not made again.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-../shared/data}
RUN=${RUN:-${XDG_CACHE_HOME:-$HOME/.cache}/scicot/runs/distill}
BS=${BS:-8}; GEN_BS=${GEN_BS:-$("$PY" -c 'import torch; print(512 if torch.cuda.is_available() else 32)')}; K=${K:-8}; KTRAIN=${KTRAIN:-2}; MAXTOK=${MAXTOK:-96}
EPOCHS=${EPOCHS:-1}; RANK=${RANK:-16}; FOLDS=${FOLDS:-0}
case $FOLDS in 0 | [2-9] | [1-9][0-9]) ;; *) echo "FOLDS=$FOLDS: give 0 (no cross-fitting) or a number of folds of 2 or more" >&2; exit 2 ;; esac
case ${OBJECTIVE:-choices} in choices | lm) ;; *) echo "OBJECTIVE=$OBJECTIVE: give choices (the default) or lm" >&2; exit 2 ;; esac
[ -z "${SEED:-}" ] || [ -d "$SEED" ] || { echo "SEED=$SEED is not a folder of stage adapters" >&2; exit 2; }
LR=${LR:-$([ "${FULL:-0}" = 1 ] && echo 2e-5 || echo 2e-4)}  # a whole model takes a tenth of LoRA's rate
A=$RUN/adapters
mkdir -p "$A" "$RUN/dev" "$RUN/test" "$RUN/own"
scicot() { "$PY" -m demo.cli "$@"; }
log() { echo "== $* $(date -u +%FT%TZ)"; }
trained() { [ -f "$1/adapter_config.json" ] || [ -f "$1/model.safetensors" ]; }
if [ -n "${SEED:-}" ]; then
  for dir in "$SEED"/*/; do
    stage=$(basename "$dir")
    case $stage in dev | test) [ -e "$RUN/$stage" ] && [ -n "$(ls -A "$RUN/$stage")" ] || cp -r "$dir/." "$RUN/$stage/"; continue ;; esac
    trained "$dir" && ! trained "$A/$stage" && { cp -r "$dir" "$A/$stage"; log "seeded $A/$stage from $SEED"; }
  done
fi

SOURCES=(--source 'gpt4o-level[1-3]' --source 'gemini15flash-level[1-4]' --source entailmentbank --source flan_t5)
STAGE1=()
read -ra patterns <<< "${STAGE1_SOURCES:-}"  # split on spaces, never glob-expanded here
for pattern in "${patterns[@]}"; do STAGE1+=(--source "$pattern"); done
[ ${#STAGE1[@]} -gt 0 ] || STAGE1=("${SOURCES[@]}")
AO_EPOCHS=${AO_EPOCHS:-$EPOCHS}
WEIGHTS=(); [ "${FULL:-0}" = 1 ] && WEIGHTS=(--full)
SCORING=(--set objective="${OBJECTIVE:-choices}")  # for the stages that answer by scoring choices
QUESTIONS=(--questions arc_easy/train --questions arc_challenge/train --questions openbookqa/train)
TRAIN_SET=(--set batch_size="$BS" --set learning_rate="$LR" --set epochs="$EPOCHS" --set max_length=320
  --set lora_r="$RANK" --set lora_alpha=$((2 * RANK)) --set save_steps=200 --set logging_steps=20
  --set 'target_modules=["q_proj","k_proj","v_proj","o_proj","gate_proj","up_proj","down_proj"]')
EVAL_LIMIT=(); SAMPLE_LIMIT=()
if [ -n "${SMOKE:-}" ]; then
  TRAIN_SET+=(--set limit="$SMOKE" --set max_steps="$SMOKE"); EVAL_LIMIT=(--limit "$SMOKE"); SAMPLE_LIMIT=(--limit "$SMOKE")
  QUESTIONS=()
fi

train() {  # train STAGE ARGS...: skipped once its adapter exists
  train_into "$A/$1" "$@"
}

train_into() {  # train_into DIR STAGE ARGS...
  local out=$1 stage=$2; shift 2
  trained "$out" && { log "$out already trained"; return; }
  log "train $stage -> $out"
  scicot train --stage "$stage" --data-dir "$DATA" --out "$out" "${TRAIN_SET[@]}" "${WEIGHTS[@]}" "$@"
}

evaluate() {  # evaluate SPLIT NAME ARGS...: one report folder per data set
  local split=$1 name=$2; shift 2
  for ds in openbookqa arc_challenge arc_easy; do
    local out="$RUN/$split/$ds-$name"
    [ -f "$out/results.json" ] && continue
    log "eval $ds/$split $name"
    scicot eval --dataset "$ds" --split "$split" --data-dir "$DATA" --adapters "$A" --max-tokens "$MAXTOK" \
      --batch-size "$GEN_BS" --out "$out" "${EVAL_LIMIT[@]}" "$@" > /dev/null
  done
}

sample_own() {  # sample_own DATASET NAME ADAPTERS ARGS...: own/NAME.jsonl, once
  local ds=$1 name=$2 adapters=$3; shift 3
  OWN+=(--student-rationales "$RUN/own/$name.jsonl")
  [ -f "$RUN/own/$name.done" ] && return
  log "sample own rationales $ds/train ($name)"
  scicot sample --dataset "$ds" --split train --data-dir "$DATA" --adapters "$adapters" --samples "$KTRAIN" \
    --max-tokens "$MAXTOK" --batch-size "$GEN_BS" --out "$RUN/own/$name.jsonl" "${SAMPLE_LIMIT[@]}" "$@" && touch "$RUN/own/$name.done"
}

train rationale "${STAGE1[@]}" --correct-only
train answer-only "${SOURCES[@]}" "${QUESTIONS[@]}" --set epochs="$AO_EPOCHS" "${SCORING[@]}"
OWN=()
if trained "$A/answer"; then  # stage 2 there already (trained, or seeded): its own samples are not needed
  :
elif [ "$FOLDS" -ge 2 ]; then  # cross-fitted: each fold's own rationales by a stage 1 that never saw it
  for k in $(seq 0 $((FOLDS - 1))); do
    # Named by N as well as k: a RUN rerun with other FOLDS must not reuse another split's folds.
    train_into "$RUN/folds/$k-of-$FOLDS/rationale" rationale "${STAGE1[@]}" --correct-only --set hold_out="$k/$FOLDS"
    for ds in openbookqa arc_easy arc_challenge; do sample_own "$ds" "$ds.fold$k-of-$FOLDS" "$RUN/folds/$k-of-$FOLDS" --fold "$k/$FOLDS"; done
  done
else
  for ds in openbookqa arc_easy arc_challenge; do sample_own "$ds" "$ds" "$A"; done
fi
train answer "${SOURCES[@]}" --max-per-question 2 "${QUESTIONS[@]}" --set empty_rationale=0.3 "${OWN[@]}" "${SCORING[@]}"
evaluate dev greedy --variant zero-shot --variant answer-only --variant two-stage
if [ ! -f "$A/rationale/generation.json" ]; then  # stage 1's sentence cap, chosen on the greedy dev reports
  log "choose stage 1's sentence cap"
  REPORTS=(); for ds in openbookqa arc_challenge arc_easy; do REPORTS+=(--report "$ds/dev" "$RUN/dev/$ds-greedy"); done
  "$PY" benchmarks/rationale_cap.py --adapters "$A" --data-dir "$DATA" "${REPORTS[@]}" --sentences 1 2 3 --save --out "$RUN/dev/rationale_cap.json"
fi
evaluate dev k$K --variant two-stage --variant two-stage+prior --samples "$K" --temperature 0.7
"$PY" scripts/choose_prior.py "$A" "$RUN"/dev/*-k"$K"/results.json
train step-by-step "${SOURCES[@]}" --max-per-question 4 "${QUESTIONS[@]}"
evaluate dev sbs --variant step-by-step
if [ "${TEST:-0}" = 1 ]; then
  evaluate test greedy --variant zero-shot --variant answer-only --variant step-by-step --variant two-stage
  evaluate test k$K --variant two-stage --variant two-stage+prior --samples "$K" --temperature 0.7
fi
log done
