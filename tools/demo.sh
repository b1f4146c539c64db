#!/usr/bin/env bash
# The main job on the bundled sample (called by `./run.sh demo`): dataset
# statistics (the paper's Table 2), the paper's best augmentation setting
# ("original + aug") run offline through the pipeline, the statistics of the
# augmented set, and a contact sheet of augmented samples. Everything lands
# in runs/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build}
PF="$BUILD_DIR/pasteflow"
OUT=runs/demo
mkdir -p "$OUT"

echo "== pasteflow stats: the paper's Table 2 on data/sample ==" >&2
"$PF" stats data/sample/annotations.json --plot "$OUT/object_sizes.png"
"$PF" stats data/sample/annotations.json --json > "$OUT/stats.json"

echo "== pasteflow augment: configs/paper/original_aug.yaml ==" >&2
"$PF" augment -c configs/paper/original_aug.yaml -a data/sample/annotations.json -i data/sample/images \
  -o "$OUT/augmented" --overwrite --seed 1
"$PF" stats "$OUT/augmented/annotations.json"

echo "== pasteflow preview ==" >&2
"$PF" preview -c configs/paper/original_aug.yaml -a data/sample/annotations.json -i data/sample/images \
  -o "$OUT/preview.png" -n 16 --seed 1
echo "wrote $OUT/stats.json, $OUT/object_sizes.png, $OUT/augmented/, $OUT/preview.png" >&2
