#!/usr/bin/env bash
# A huge image end to end (called by `./run.sh huge`), a few minutes on two
# CPU cores: `generate mosaic` builds a tiled, pyramidal BigTIFF of the
# bundled sample's real images with exact annotations in full-image
# coordinates; `slice` writes it out as a dataset of 1024 px slices (for
# users who want files); `train` trains the tiny Mask R-CNN on 512 px views
# of the mosaic read by windows inside the flow graph
# (configs/mosaic/tiny.yaml); `predict` runs the model slice by slice over
# the whole mosaic and merges detections across the overlaps into
# full-image results and a down-scaled overlay; `eval` scores them against
# the mosaic's ground truth. Nothing decodes the whole image. Everything
# lands in runs/huge/. SIZE (default 4096) sets the mosaic's side.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build}
SIZE=${SIZE:-4096}
PF="$BUILD_DIR/pasteflow"
OUT=runs/huge
MOSAIC="$OUT/mosaic"
mkdir -p "$OUT"

echo "== pasteflow generate mosaic: a ${SIZE} x ${SIZE} JPEG-tiled pyramidal BigTIFF of data/sample ==" >&2
"$PF" generate mosaic --annotations data/sample/annotations.json --images data/sample/images \
  --out "$MOSAIC" --width "$SIZE" --height "$SIZE" --compression jpeg --quality 90 --tile 512 --seed 0 \
  --overwrite --json > "$OUT/mosaic.json"
"$PF" stats "$MOSAIC/annotations.json"

echo "== pasteflow slice: the mosaic as a dataset of 1024 px slices (PNG + COCO, RLE cut exactly) ==" >&2
"$PF" slice --annotations "$MOSAIC/annotations.json" --images "$MOSAIC/images" --out "$OUT/slices" \
  --size 1024 --overlap 0.2 --overwrite --json > "$OUT/slices.json"
cat "$OUT/slices.json" >&2

echo "== pasteflow train: configs/mosaic/tiny.yaml on 512 px views of the mosaic ==" >&2
rm -rf "$OUT/train"
"$PF" train -c configs/mosaic/tiny.yaml output_dir="$OUT/train" \
  data.train_annotations="$MOSAIC/annotations.json" data.train_images="$MOSAIC/images" \
  data.val_annotations="$MOSAIC/annotations.json" data.val_images="$MOSAIC/images" \
  --json > "$OUT/train_summary.json"

echo "== pasteflow predict: slice by slice over the whole mosaic, merged, full-image results ==" >&2
"$PF" predict -c configs/mosaic/tiny.yaml --weights "$OUT/train/best.pt" --out "$OUT/predict" \
  --annotations "$MOSAIC/annotations.json" --images "$MOSAIC/images" \
  --slice-above 2048 --slice-size 1024 --slice-overlap 0.2 --merge greedy_nmm --json > "$OUT/predict.json"
for type in bbox segm; do
  "$PF" eval --gt "$MOSAIC/annotations.json" --results "$OUT/predict/results.json" --type $type \
    > "$OUT/eval_$type.txt"
done

cat >&2 <<EOT
== done: $OUT/ ==
  mosaic/images/mosaic.tif, mosaic/annotations.json   the huge image and its exact ground truth
  slices/                                             1024 px slices as a COCO dataset
  train/                                              metrics, checkpoints, best.pt (trained on views)
  predict/results.json, predict/overlays/             full-image results; a down-scaled overlay
  eval_bbox.txt, eval_segm.txt                        COCO evaluation on the full image
A smoke-scale run (16 source images, a few minutes from scratch): it shows the
path of a huge image, not a detector (AP near zero is expected here).
EOT
