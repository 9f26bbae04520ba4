#!/usr/bin/env bash
# On a lent GPU machine (docs/gpu_runs.md): put the kit of scripts/device_kit.sh together once
# all its parts have been carried, install its wheels, run scripts/distill_run.sh for at most
# DEADLINE seconds, and pack what the run has made into $OUT, which comes back: each stage's
# adapter and the reports (at most 8 files of 16 MiB). The run folder is runs/$NAME, which a warm
# machine keeps between calls, so the same command again goes on where the last one stopped.
# Settings (environment): NAME (the run, required), DEADLINE (default 500 s: a call may run 600),
# and any of distill_run.sh's settings (OBJECTIVE, STAGE1_SOURCES, KTRAIN, TEST, ...).
set -uo pipefail
cd "$(dirname "$0")/.."
NAME=${NAME:?set NAME, the run folder under runs/}
DEADLINE=${DEADLINE:-500}
OUT=${OUT:?no OUT folder: this runs through the device tool}
KIT=.device
RUN=runs/$NAME
SITE=${SITE:-/tmp/scicot-site}
if [ ! -f "$KIT/kit/.unpacked" ]; then
  parts=$(ls "$KIT"/part*/kit.part* 2>/dev/null | sort -V)
  want=$(cat "$KIT"/part*/kit.sha256 2>/dev/null)
  got=$(cat $parts 2>/dev/null | sha256sum | cut -d' ' -f1)
  if [ -z "$want" ] || [ "$got" != "$want" ]; then
    echo "the kit is incomplete here ($(echo $parts | wc -w) parts): carry the missing .device/partN, one per call" | tee "$OUT/status.txt"
    exit 2
  fi
  { mkdir -p "$KIT/kit" && cat $parts | tar -xzf - -C "$KIT/kit" && touch "$KIT/kit/.unpacked"; } ||
    { echo "the kit did not unpack: build it again here (scripts/device_kit.sh) and carry every part" | tee "$OUT/status.txt"; exit 2; }
fi
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$KIT"/kit/wheels/*.whl || exit 1
mkdir -p "$RUN"
export PYTHONPATH=$SITE:$PWD/$KIT/kit PYTHONUNBUFFERED=1 SCICOT_CACHE_DIR=$PWD/runs/cache
python3 -c 'import torch, transformers, peft; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "transformers", transformers.__version__, "peft", peft.__version__)' | tee -a "$RUN/run.log"

start=$(date +%s)
timeout --signal=INT --kill-after=20 "$DEADLINE" env PY=python3 DATA="$KIT/kit/data" RUN="$RUN" bash scripts/distill_run.sh >> "$RUN/run.log" 2>&1
rc=$?
echo "distill_run.sh: exit $rc after $(($(date +%s) - start)) s$([ $rc = 124 ] && echo ' (deadline: run the same command again to go on)')" | tee -a "$RUN/run.log" > "$OUT/status.txt"

# One archive per stage (an adapter of rank 16 on every linear layer is 9.4 MB) and one for the
# rest; checkpoints stay here (a warm machine resumes from them), whole models stay too (too big).
for stage in "$RUN"/adapters/*/; do
  stage=$(basename "$stage")
  [ -f "$RUN/adapters/$stage/adapter_config.json" ] || continue
  tar -czf "$OUT/stage-$stage.tgz" -C "$RUN/adapters" --exclude=checkpoints "$stage"
done
# The rest: reports, own samples, logs and the adapters folder's own files (prior.json); not the
# cross-fitting folds' stage 1s, which only wrote own samples.
tar -czf "$OUT/reports.tgz" -C "$RUN" --exclude='./adapters/*/*' --exclude=./folds --exclude=generated.partial.jsonl .
cp "$RUN/run.log" "$OUT/run.log"
ls -la "$OUT"
exit $([ $rc = 0 ] || [ $rc = 124 ] && echo 0 || echo $rc)
