#!/usr/bin/env bash
# The main job on the bundled sample (called by `./run.sh demo`):
# dataset statistics (the paper's Table 2) and a histogram of object sizes.
# Later stages of the product extend this script as they land.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build}
PF="$BUILD_DIR/pasteflow"
OUT=runs/demo
mkdir -p "$OUT"

echo "== pasteflow stats: the paper's Table 2 on data/sample ==" >&2
"$PF" stats data/sample/annotations.json --plot "$OUT/object_sizes.png"
"$PF" stats data/sample/annotations.json --json > "$OUT/stats.json"
echo "wrote $OUT/stats.json and $OUT/object_sizes.png" >&2
