#!/usr/bin/env bash
# The main job (called by `./run.sh demo`), a few minutes on two CPU cores:
# real microscopy, the bundled DSB 2018 sample (data/dsb_sample/, CC0): its
# instance masks imported to COCO with a held-back split, dataset statistics
# (the paper's Table 2), a preview sheet of augmented samples, the offline
# augmentation, then configs/demo.yaml: a small Mask R-CNN trained from
# scratch in this process on the prefetching loader with the paper's
# "original + aug" setting (in two legs, to show --resume), its training
# curves, its predictions on the held-back images and their COCO evaluation.
# Everything lands in runs/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build}
PF="$BUILD_DIR/pasteflow"
CONFIG=configs/demo.yaml
SAMPLE=data/dsb_sample
OUT=runs/demo
TRAIN="$OUT/train"
mkdir -p "$OUT"
start=$SECONDS

echo "== pasteflow import masks: $SAMPLE (one PNG per nucleus) to COCO, 10 of 40 images held back ==" >&2
"$PF" import masks "$SAMPLE" -o "$OUT/dsb.json" --split val=0.25 --seed 1 --stratify-by modality --overwrite \
  --json > "$OUT/import.json"
TRAIN_JSON="$OUT/dsb_train.json"
VAL_JSON="$OUT/dsb_val.json"

echo "== pasteflow stats: the paper's Table 2 on the training split ==" >&2
"$PF" stats "$TRAIN_JSON" --plot "$OUT/object_sizes.png"
"$PF" stats "$TRAIN_JSON" --json > "$OUT/stats.json"

echo "== pasteflow preview: augmented samples of $CONFIG ==" >&2
"$PF" preview -c "$CONFIG" -a "$TRAIN_JSON" -i "$SAMPLE" -o "$OUT/preview.png" -n 16 --seed 1

echo "== pasteflow augment: the augmented training split written out (COCO + images) ==" >&2
"$PF" augment -c "$CONFIG" -a "$TRAIN_JSON" -i "$SAMPLE" -o "$OUT/augmented" --overwrite --seed 1
"$PF" stats "$OUT/augmented/annotations.json"

# Training in two legs: the first stops at iteration 150 (as if killed), the
# second continues from its checkpoint to the end exactly as one
# uninterrupted run would.
echo "== pasteflow train: $CONFIG to iteration 150, then --resume to the end ==" >&2
rm -rf "$TRAIN"
"$PF" train -c "$CONFIG" output_dir="$TRAIN" solver.max_iter=150
"$PF" train -c "$CONFIG" output_dir="$TRAIN" --resume --json > "$TRAIN/summary.json"
"$PF" plot "$TRAIN/metrics.jsonl" -o "$TRAIN/curves.png" --title "small Mask R-CNN on DSB nuclei (original + aug)"

echo "== pasteflow predict + eval: best.pt on the 10 held-back images ==" >&2
"$PF" predict -c "$CONFIG" --weights "$TRAIN/best.pt" --out "$OUT/predict" \
  --annotations "$VAL_JSON" --images "$SAMPLE"
for type in bbox segm; do
  "$PF" eval --gt "$VAL_JSON" --results "$OUT/predict/results.json" --type $type > "$OUT/eval_$type.txt"
  "$PF" eval --gt "$VAL_JSON" --results "$OUT/predict/results.json" --type $type --json > "$OUT/eval_$type.json"
done
{
  echo "Evaluation of $TRAIN/best.pt on the 10 sample images held back from training ($VAL_JSON):"
  echo "a small Mask R-CNN trained from scratch for 300 iterations on 30 real microscopy images."
  for type in bbox segm; do
    echo
    echo "== $type =="
    cat "$OUT/eval_$type.txt"
  done
} > "$OUT/eval_summary.txt"
cat "$OUT/eval_summary.txt" >&2

cat >&2 <<EOF
== done in $((SECONDS - start)) s: $OUT/ ==
  dsb_train.json, dsb_val.json   the sample imported to COCO (30 training, 10 held-back images)
  stats.json, object_sizes.png   dataset statistics (Table 2) of the training split
  preview.png                    augmented samples (pasted objects magenta, originals green)
  augmented/                     the augmented training split as COCO (annotations.json + images/)
  train/                         metrics.jsonl, curves.png, checkpoints/, best.pt, summary.json
  predict/                       results.json (COCO results) and one overlay PNG per held-back image
  eval_summary.txt               COCO bbox and segm evaluation of best.pt on the held-back images
EOF
