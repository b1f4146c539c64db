#!/usr/bin/env bash
# The paper's recipe on real microscopy (issue 12), the whole DSB 2018 table:
#   tools/dsb_experiment.sh [BUILD_DIR]
# 1. imports DSB stage1_train (one PNG per nucleus) to COCO with a 15 %
#    held-back validation split stratified by modality (~1 minute);
# 2. the paper's Table 2 (pasteflow stats) of the training and validation
#    splits;
# 3. both experiments, configs/dsb/table_full.yaml and table_low.yaml
#    (6 rows x 3 seeds each; 112 minutes on the 2-core VM, measured 2026-12-06).
# Running it again skips finished runs and resumes an interrupted one.
# The DSB directory comes from $DSB_DIR (default: /work/shared/data/dsb2018/
# stage1_train, else data/dsb2018/stage1_train); it is only read.
# Everything is written below runs/dsb/ (override: $OUT_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build}
PF="$BUILD_DIR/pasteflow"
OUT=${OUT_DIR:-runs/dsb}
if [[ -z "${DSB_DIR:-}" ]]; then
  DSB_DIR=/work/shared/data/dsb2018/stage1_train
  [[ -d "$DSB_DIR" ]] || DSB_DIR=data/dsb2018/stage1_train
fi
if [[ ! -x "$PF" ]]; then
  echo "error: $PF not found; build first (./run.sh build) or pass the build directory" >&2
  exit 2
fi
if [[ ! -d "$DSB_DIR" ]]; then
  echo "error: DSB directory $DSB_DIR not found; set DSB_DIR=/path/to/dsb2018/stage1_train" >&2
  exit 2
fi
mkdir -p "$OUT"
start=$SECONDS

echo "== pasteflow import masks: $DSB_DIR -> $OUT/dsb_{train,val}.json (15 % held back, by modality) ==" >&2
if [[ -f "$OUT/dsb_train.json" && -f "$OUT/dsb_val.json" ]]; then
  echo "   $OUT/dsb_train.json and dsb_val.json exist: not imported again (delete them to re-import)" >&2
else
  "$PF" import masks "$DSB_DIR" -o "$OUT/dsb.json" --split val=0.15 --seed 1 --stratify-by modality \
    --json > "$OUT/import.json"
fi

echo "== pasteflow stats: the paper's Table 2 of the training split ==" >&2
"$PF" stats "$OUT/dsb_train.json" --plot "$OUT/object_sizes.png" | tee "$OUT/stats_train.md"
"$PF" stats "$OUT/dsb_train.json" --json > "$OUT/stats_train.json"
echo "== pasteflow stats: the validation split ==" >&2
"$PF" stats "$OUT/dsb_val.json" | tee "$OUT/stats_val.md"

DATA=("data.train_annotations=$OUT/dsb_train.json" "data.val_annotations=$OUT/dsb_val.json"
      "data.train_images=$DSB_DIR" "data.val_images=$DSB_DIR")
for regime in full low; do
  echo "== pasteflow experiment configs/dsb/table_$regime.yaml -> $OUT/$regime ==" >&2
  "$PF" experiment "configs/dsb/table_$regime.yaml" -o "$OUT/$regime" "${DATA[@]}"
done

echo >&2
echo "dsb experiment finished in $(( (SECONDS - start) / 60 )) min. Results:" >&2
echo "  $OUT/stats_train.md, stats_val.md   Table 2 of the splits (object_sizes.png: histogram)" >&2
echo "  $OUT/full/table.md, table.json      full train split: mean +- sd over 3 seeds, paired differences" >&2
echo "  $OUT/low/table.md, table.json       low-data regime (15 % of the training images)" >&2
