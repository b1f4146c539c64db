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

# Training: the tiny Mask R-CNN of configs/train/sample_tiny.yaml (ResNet-18
# FPN at 128 px) on the sample, in two legs to show --resume: the first stops
# at iteration 60, the second continues from its checkpoint to 120 exactly as
# one uninterrupted run would. Then the training curves.
echo "== pasteflow train: tiny Mask R-CNN on data/sample, 60 iterations, then --resume to 120 ==" >&2
rm -rf "$OUT/train"
"$PF" train -c configs/train/sample_tiny.yaml output_dir="$OUT/train" solver.max_iter=60
"$PF" train -c configs/train/sample_tiny.yaml output_dir="$OUT/train" --resume --json > "$OUT/train/summary.json"
"$PF" plot "$OUT/train/metrics.jsonl" -o "$OUT/train/curves.png" --title "tiny Mask R-CNN on data/sample"
echo "wrote $OUT/train/ (metrics.jsonl, curves.png, checkpoints/, best.pt, summary.json)" >&2
