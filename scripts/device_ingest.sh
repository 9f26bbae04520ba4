#!/usr/bin/env bash
# Here, after a call of the device tool ran scripts/device_run.sh (docs/gpu_runs.md): unpack what
# came back (the reply's files_at folder) into the run's folder under the user cache, laid out as
# there, so that `scicot run RECIPE --run-dir <it>` goes on from it and ship_adapters.py reads it.
#   bash scripts/device_ingest.sh FILES_AT NAME
# A later call's files replace the earlier ones step by step. This machine's cache does not
# outlast the session: a run worth keeping goes into the repository next (ship_adapters.py --dest).
set -euo pipefail
FROM=${1:?usage: device_ingest.sh FILES_AT NAME}
NAME=${2:?usage: device_ingest.sh FILES_AT NAME}
RUN=${RUNS:-${XDG_CACHE_HOME:-$HOME/.cache}/scicot/runs}/$NAME
mkdir -p "$RUN"
incoming=$(mktemp -d "$RUN/.incoming-XXXXXX")  # a trained step is replaced only once it has unpacked whole
trap 'rm -rf "$incoming"' EXIT
found=0
for archive in "$FROM"/stage-*.tgz; do
  [ -f "$archive" ] || continue
  step=$(basename "$archive" .tgz); step=${step#stage-}; step=${step//--//}
  tar -xzf "$archive" -C "$incoming" 2>/dev/null && [ -d "$incoming/$step" ] ||
    { echo "$archive did not unpack (a broken transfer?): run the device call again; $RUN/$step is unchanged" >&2; exit 1; }
  mkdir -p "$(dirname "$RUN/$step")" && rm -rf "$RUN/$step" && mv "$incoming/$step" "$RUN/$step"
  found=$((found + 1))
done
[ -f "$FROM/reports.tgz" ] && tar -xzf "$FROM/reports.tgz" -C "$RUN"
[ -f "$FROM/run.log" ] && cp "$FROM/run.log" "$RUN/device-run.log"
echo "$RUN: $found trained steps$([ -f "$FROM/reports.tgz" ] && echo ', reports')"
[ -f "$FROM/status.txt" ] && cat "$FROM/status.txt"
[ -f "$RUN/report.md" ] && echo "report card: $RUN/report.md"
exit 0
