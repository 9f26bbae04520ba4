#!/usr/bin/env bash
# The real evaluation (CPU): all four variants on the three test sets with the adapters in
# ${ADAPTERS:-runs/adapters}. SPLIT=dev for the dev sets; LIMIT=N for a quick partial run.
set -euo pipefail
cd "$(dirname "$0")/.."
ADAPTERS=${ADAPTERS:-runs/adapters}
SPLIT=${SPLIT:-test}
EXTRA=${LIMIT:+--limit $LIMIT}
for ds in arc_easy arc_challenge openbookqa; do
  echo "== $ds/$SPLIT $(date -u +%FT%TZ)"
  .venv/bin/scicot eval --dataset "$ds" --split "$SPLIT" --data-dir ../shared/data --adapters "$ADAPTERS" \
    --batch-size 16 --out "runs/eval/$ds-$SPLIT" $EXTRA
done
echo "== done $(date -u +%FT%TZ)"
