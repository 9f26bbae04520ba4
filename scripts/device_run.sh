#!/usr/bin/env bash
# On a lent GPU machine (docs/gpu_runs.md): put the kit of scripts/device_kit.sh together once
# all its parts have been carried, install its wheels, run a recipe (`scicot run`) for at most
# DEADLINE seconds, and pack what the run has made into $OUT, which comes back: each trained
# step's adapter and the reports (at most 8 files of 16 MiB). The run folder is runs/$NAME, which a
# warm machine keeps between calls, so the same command again goes on where the last one stopped.
# Settings (environment): NAME (the run, required), RECIPE (default recipes/distill.toml), DEADLINE
# (default 500 s: a call may run 600, and less when less device time is left: give the device
# tool's budget_left_s less 60), TEST=1 (also the final test steps), SMOKE=N (N questions and
# steps everywhere).
set -uo pipefail
cd "$(dirname "$0")/.."
NAME=${NAME:?set NAME, the run folder under runs/}
RECIPE=${RECIPE:-recipes/distill.toml}
DEADLINE=${DEADLINE:-500}
OUT=${OUT:?no OUT folder: this runs through the device tool}
KIT=.device
RUN=runs/$NAME
SITE=${SITE:-/tmp/scicot-site}
PACK_EVERY=${PACK_EVERY:-60}
# The newest kit carried: its last part holds its checksum and its number of parts. A kit built
# again since the last unpacking is unpacked afresh (its parts replace the old ones one by one).
last=$(ls -t "$KIT"/part*/kit.sha256 2>/dev/null | head -1)
want=$([ -n "$last" ] && cat "$last")
if [ ! -f "$KIT/kit/.unpacked" ] || { [ -n "$want" ] && [ "$(cat "$KIT/kit/.unpacked")" != "$want" ]; }; then
  count=$([ -n "$last" ] && cat "$(dirname "$last")/kit.count" 2>/dev/null || echo 0)
  parts=(); for i in $(seq 1 "$count"); do parts+=("$KIT/part$i/kit.part$(printf %02d $((i - 1)))"); done
  got=$(cat "${parts[@]}" 2>/dev/null | sha256sum | cut -d' ' -f1)
  if [ -z "$want" ] || [ "$got" != "$want" ]; then
    missing=$(for p in "${parts[@]}"; do [ -f "$p" ] || printf ' .device/%s' "$(basename "$(dirname "$p")")"; done)
    if [ -z "$want" ]; then what="no last part, with the kit's checksum, has come"
    elif [ -n "$missing" ]; then what="missing:$missing; $count parts in all"
    else what="$count parts in all here, but they do not match its checksum"; fi
    echo "the kit is incomplete here ($what): carry each missing .device/partN, one per call" | tee "$OUT/status.txt"
    exit 2
  fi
  rm -rf "$KIT/kit"
  { mkdir -p "$KIT/kit" && cat "${parts[@]}" | tar -xzf - -C "$KIT/kit" && echo "$want" > "$KIT/kit/.unpacked"; } ||
    { echo "the kit did not unpack: build it again here (scripts/device_kit.sh) and carry every part" | tee "$OUT/status.txt"; exit 2; }
fi
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$KIT"/kit/wheels/*.whl || exit 1
mkdir -p "$RUN"
# The repository too: the run's choose steps run benchmarks/*.py, which import scicot_core from it.
export PYTHONPATH=$SITE:$PWD:$PWD/$KIT/kit PYTHONUNBUFFERED=1 SCICOT_CACHE_DIR=$PWD/runs/cache
if ! python3 -c 'import torch, transformers, peft, scicot_core.train; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "transformers", transformers.__version__, "peft", peft.__version__)' >> "$RUN/run.log" 2>&1; then
  { echo "the packages do not import here (the end of run.log says why): add what is missing to scripts/device_wheels.py, build the kit again"; tail -n 5 "$RUN/run.log"; } | tee "$OUT/status.txt"
  cp "$RUN/run.log" "$OUT/run.log"
  exit 2
fi
tail -n 1 "$RUN/run.log"

# Packs what the run has made into $OUT, each archive written aside and then moved in whole: every
# PACK_EVERY seconds (60) while the run goes on, and at the end. So a call stopped from outside
# (the device tool's own limit, if met before DEADLINE, kills the command) still brings back what
# was done.
pack() {
  # One archive per trained step (an adapter of rank 16 on every linear layer is 9.4 MB), named
  # by its folder (answer/lm: stage-answer--lm.tgz), and one for the rest; checkpoints stay here
  # (a warm machine resumes from them), whole models stay too (too big).
  for config in $(cd "$RUN" && find . -name adapter_config.json -not -path '*/checkpoints/*' -not -path '*/adapters/*' | sort); do
    step=$(dirname "${config#./}"); name=${step//\//--}
    tar -czf "$OUT/.stage-$name.tgz" -C "$RUN" --exclude=checkpoints "$step" && mv "$OUT/.stage-$name.tgz" "$OUT/stage-$name.tgz"
  done
  # The rest: reports, own samples, choices, step markers and logs; not the weights, nor the
  # links to them that eval steps make.
  tar -czf "$OUT/.reports.tgz" -C "$RUN" --exclude=checkpoints --exclude=adapter_model.safetensors --exclude=model.safetensors \
    --exclude=./cache --exclude=generated.partial.jsonl --exclude='./*/adapters' --exclude='./*/*/adapters' . &&
    mv "$OUT/.reports.tgz" "$OUT/reports.tgz"
  cp "$RUN/run.log" "$OUT/run.log"
}

start=$(date +%s)
echo "scicot run: stopped from outside before its deadline of $DEADLINE s (what it had made by then is here)" > "$OUT/status.txt"
(while :; do
  for _ in $(seq "$PACK_EVERY"); do sleep 1; [ -f "$OUT/.done" ] && exit 0; done
  pack 2> /dev/null
done) &
packer=$!
options=(); [ "${TEST:-0}" = 1 ] && options+=(--test); [ -n "${SMOKE:-}" ] && options+=(--smoke "$SMOKE")
timeout --signal=INT --kill-after=20 "$DEADLINE" python3 -m demo.cli run "$RECIPE" --data-dir "$KIT/kit/data" --run-dir "$RUN" \
  --results "$RUN/results" "${options[@]}" >> "$RUN/run.log" 2>&1
rc=$?
touch "$OUT/.done" && wait "$packer" && rm -f "$OUT/.done"
echo "scicot run: exit $rc after $(($(date +%s) - start)) s$([ $rc = 124 ] && echo ' (deadline: run the same command again to go on)')" | tee -a "$RUN/run.log" > "$OUT/status.txt"
pack
rm -f "$OUT"/.*.tgz
ls -la "$OUT"
exit $([ $rc = 0 ] || [ $rc = 124 ] && echo 0 || echo $rc)
