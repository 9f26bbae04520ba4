#!/usr/bin/env bash
# The real evaluation (CPU): each variant on each test set with the adapters in ${ADAPTERS:-runs/adapters},
# one report folder per data set and variant under ${OUT:-runs/test} (what scripts/ship_adapters.py reads).
# Cheap variants first. SPLIT=dev for the dev sets; LIMIT=N for a partial run. Rerun to resume:
# finished reports are skipped and an interrupted one reuses the rationales it had generated.
set -euo pipefail
cd "$(dirname "$0")/.."
ADAPTERS=${ADAPTERS:-runs/adapters}
SPLIT=${SPLIT:-test}
OUT=${OUT:-runs/$SPLIT${LIMIT:+-first$LIMIT}}
EXTRA=${LIMIT:+--limit $LIMIT}
for variant in zero-shot answer-only two-stage single-stage; do
  for ds in openbookqa arc_challenge arc_easy; do
    out="$OUT/$ds-$variant"
    [ -f "$out/results.json" ] && continue
    echo "== $ds/$SPLIT $variant $(date -u +%FT%TZ)"
    .venv/bin/scicot eval --dataset "$ds" --split "$SPLIT" --data-dir ../shared/data --adapters "$ADAPTERS" \
      --variant "$variant" --batch-size 32 --out "$out" $EXTRA
  done
done
echo "== done $(date -u +%FT%TZ)"
