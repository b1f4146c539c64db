#!/usr/bin/env bash
# A huge image end to end (called by `./run.sh huge`), a few minutes on two
# CPU cores, on real microscopy: the bundled DSB 2018 sample
# (data/dsb_sample/) is imported with a held-back split; `generate mosaic`
# tiles its training images into a SIZE x SIZE tiled, pyramidal BigTIFF and
# its held-back images into a second one (VAL_SIZE), both with exact
# annotations in full-image coordinates; `slice` writes the training mosaic
# out as a dataset of 1024 px slices (for users who want files); `train`
# trains a small Mask R-CNN on 256 px views of the training mosaic read by
# windows inside the flow graph (configs/mosaic/dsb.yaml); `predict` runs the
# model slice by slice over the whole held-back mosaic and merges detections
# across the overlaps into full-image results and a down-scaled overlay;
# `eval` scores them against that mosaic's ground truth. Nothing decodes a
# whole mosaic. Everything lands in runs/huge/.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build}
SIZE=${SIZE:-4096}
VAL_SIZE=${VAL_SIZE:-2048}
PF="$BUILD_DIR/pasteflow"
CONFIG=configs/mosaic/dsb.yaml
SAMPLE=data/dsb_sample
OUT=runs/huge
MOSAIC="$OUT/mosaic"
HELD="$OUT/heldback"
mkdir -p "$OUT"
start=$SECONDS

echo "== pasteflow import masks: $SAMPLE to COCO, 10 images held back ==" >&2
# The sample's one 1024 x 1024 brightfield image is left out (--max-pixels):
# at full size it would fill a third of the training views with a handful of
# tiny nuclei.
"$PF" import masks "$SAMPLE" -o "$OUT/dsb.json" --split val=0.25 --seed 1 --stratify-by modality \
  --max-pixels 200000 --on-error skip --overwrite --json > "$OUT/import.json"

echo "== pasteflow generate mosaic: ${SIZE} x ${SIZE} (training) and ${VAL_SIZE} x ${VAL_SIZE} (held-back) BigTIFFs ==" >&2
"$PF" generate mosaic --annotations "$OUT/dsb_train.json" --images "$SAMPLE" \
  --out "$MOSAIC" --width "$SIZE" --height "$SIZE" --compression deflate --tile 256 --seed 1 \
  --overwrite --json > "$OUT/mosaic.json"
"$PF" generate mosaic --annotations "$OUT/dsb_val.json" --images "$SAMPLE" \
  --out "$HELD" --width "$VAL_SIZE" --height "$VAL_SIZE" --compression deflate --tile 256 --seed 2 \
  --overwrite --json > "$OUT/heldback.json"
"$PF" stats "$MOSAIC/annotations.json"

echo "== pasteflow slice: the training mosaic as a dataset of 1024 px slices (PNG + COCO, RLE cut exactly) ==" >&2
"$PF" slice --annotations "$MOSAIC/annotations.json" --images "$MOSAIC/images" --out "$OUT/slices" \
  --size 1024 --overlap 0.2 --overwrite --json > "$OUT/slices.json"
cat "$OUT/slices.json" >&2

echo "== pasteflow train: $CONFIG on 256 px views of the training mosaic ==" >&2
rm -rf "$OUT/train"
"$PF" train -c "$CONFIG" output_dir="$OUT/train" \
  data.train_annotations="$MOSAIC/annotations.json" data.train_images="$MOSAIC/images" \
  data.val_annotations="$HELD/annotations.json" data.val_images="$HELD/images" \
  --json > "$OUT/train_summary.json"

echo "== pasteflow predict: slice by slice over the whole held-back mosaic, merged, full-image results ==" >&2
"$PF" predict -c "$CONFIG" --weights "$OUT/train/best.pt" --out "$OUT/predict" \
  --annotations "$HELD/annotations.json" --images "$HELD/images" \
  --slice-above 512 --slice-size 256 --slice-overlap 0.2 --merge greedy_nmm --json > "$OUT/predict.json"
# One image holds thousands of nuclei: COCOeval's per-image limits are raised
# (pycocotools' maxDets; its AP over all IoUs stays at the literal 100).
for type in bbox segm; do
  "$PF" eval --gt "$HELD/annotations.json" --results "$OUT/predict/results.json" --type $type \
    --max-dets 1,100,100000 > "$OUT/eval_$type.txt"
  "$PF" eval --gt "$HELD/annotations.json" --results "$OUT/predict/results.json" --type $type \
    --max-dets 1,100,100000 --json > "$OUT/eval_$type.json"
done
cat "$OUT/eval_segm.txt" >&2

cat >&2 <<EOT
== done in $((SECONDS - start)) s: $OUT/ ==
  dsb_train.json, dsb_val.json                         the sample imported to COCO (29 training, 10 held-back images)
  mosaic/images/mosaic.tif, mosaic/annotations.json    the huge training image and its exact ground truth
  heldback/images/mosaic.tif, heldback/annotations.json  the huge held-back image (other source images)
  slices/                                              the training mosaic as 1024 px slices (COCO dataset)
  train/                                               metrics, checkpoints, best.pt (trained on views)
  predict/results.json, predict/overlays/              full-image results on the held-back mosaic; a down-scaled overlay
  eval_bbox.txt, eval_segm.txt (+ .json)               COCO evaluation on the full held-back image
EOT
