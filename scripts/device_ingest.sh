#!/usr/bin/env bash
# Here, after a call of the device tool ran scripts/device_run.sh (docs/gpu_runs.md): unpack what
# came back (the reply's files_at folder) into the run's folder under the user cache, so that
# scicot eval, rationale_cap.py, choose_prior.py and ship_adapters.py read it as a local run.
#   bash scripts/device_ingest.sh FILES_AT NAME
# A later call's files replace the earlier ones stage by stage. This machine's cache does not
# outlast the session: a run worth keeping goes into the repository next (ship_adapters.py --dest).
set -euo pipefail
FROM=${1:?usage: device_ingest.sh FILES_AT NAME}
NAME=${2:?usage: device_ingest.sh FILES_AT NAME}
RUN=${RUNS:-${XDG_CACHE_HOME:-$HOME/.cache}/scicot/runs}/$NAME
mkdir -p "$RUN/adapters"
incoming=$(mktemp -d "$RUN/adapters/.incoming-XXXXXX")  # a stage is replaced only once it has unpacked whole
trap 'rm -rf "$incoming"' EXIT
found=0
for archive in "$FROM"/stage-*.tgz; do
  [ -f "$archive" ] || continue
  stage=$(basename "$archive" .tgz); stage=${stage#stage-}
  tar -xzf "$archive" -C "$incoming" 2>/dev/null && [ -d "$incoming/$stage" ] ||
    { echo "$archive did not unpack (a broken transfer?): run the device call again; $RUN/adapters/$stage is unchanged" >&2; exit 1; }
  rm -rf "$RUN/adapters/$stage" && mv "$incoming/$stage" "$RUN/adapters/$stage"
  found=$((found + 1))
done
[ -f "$FROM/reports.tgz" ] && tar -xzf "$FROM/reports.tgz" -C "$RUN"
[ -f "$FROM/run.log" ] && cp "$FROM/run.log" "$RUN/device-run.log"
echo "$RUN: $found stages$([ -f "$FROM/reports.tgz" ] && echo ', reports')"
[ -f "$FROM/status.txt" ] && cat "$FROM/status.txt"
ls "$RUN/adapters"
