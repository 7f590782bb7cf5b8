#!/bin/bash
# The demo in rounds, then the exhaustive demo right after it, each with an empty TUNELAB_CACHE, timed by
# /usr/bin/time: issue 16's demo ratio (benchmarks/README, sessions 6, 7 and 9).
#
#   scripts/demo_pair.sh TAG            # writes $OUT/demo-TAG-{planned,exhaustive}{,.log,.time}, OUT=/tmp by default
#   WT=/path/to/frozen/worktree scripts/demo_pair.sh TAG   # run another checkout's code with this one's .venv
#
# Run it on an idle machine: each command's wall time is the measurement.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WT=${WT:-$ROOT}
TAG=${1:-s1}
OUT=${OUT:-/tmp}
TUNELAB=${TUNELAB:-$ROOT/.venv/bin/tunelab}
cd "$WT"
export PYTHONPATH=$WT/src
for mode in planned exhaustive; do
  flag=""; [ "$mode" = exhaustive ] && flag="--exhaustive"
  TUNELAB_CACHE=$(mktemp -d /tmp/tlcache-XXXX)
  export TUNELAB_CACHE
  /usr/bin/time -f "$TAG $mode wall %e s" -o "$OUT/demo-$TAG-$mode.time" "$TUNELAB" demo --fresh $flag \
    --out "$OUT/demo-$TAG-$mode" > "$OUT/demo-$TAG-$mode.log" 2>&1
  echo "rc=$?" >> "$OUT/demo-$TAG-$mode.time"
  rm -rf "$TUNELAB_CACHE"
done
cat "$OUT/demo-$TAG-planned.time" "$OUT/demo-$TAG-exhaustive.time"
