// COCO detections as bytes, for sharded evaluation (distributed training):
// each rank runs the model on its share of the images and sends its
// detections to rank 0 in this form, with the position of each detection's
// image in the evaluation order, so rank 0 can restore the single-process
// order before the one COCO evaluation.
//
// Layout (little-endian, as the machines it runs on): u64 images, u64
// dropped, u64 n, then n records: u32 position, i64 image_id,
// i64 category_id, f64 score, u8 has_bbox [4 x f64 bbox], u8 has_rle
// [u32 h, u32 w, u64 k, k x u32 counts].
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "pasteflow/eval/coco_eval.hpp"

namespace pasteflow::eval {

struct DetectionShard {
  uint64_t images = 0;   ///< images the rank ran the model on
  uint64_t dropped = 0;  ///< detections it dropped (category absent from the ground truth)
  std::vector<Detection> detections;  ///< segmentation: none or an RLE
  std::vector<uint32_t> positions;    ///< of each detection's image in the evaluation order
};

/// Throws Error "bad_shard" for a segmentation that is neither none nor an
/// RLE, or positions and detections of different lengths.
std::vector<uint8_t> encode_shard(const DetectionShard& shard);

/// Throws InputError "bad_shard" (with the byte offset) when the bytes are
/// cut short, carry trailing bytes, a flag other than 0 / 1, or RLE counts
/// that do not sum to h x w.
DetectionShard decode_shard(const std::vector<uint8_t>& bytes);

}  // namespace pasteflow::eval
