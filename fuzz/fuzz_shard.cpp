// Evaluation shards (eval::decode_shard): the bytes a rank sends rank 0 in a
// sharded evaluation. Input: the bytes. Bytes that decode must encode back
// to exactly themselves, and every RLE must cover its h x w.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <variant>
#include <vector>

#include "pasteflow/core/error.hpp"
#include "pasteflow/eval/shard.hpp"

using namespace pasteflow;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> bytes(data, data + size);
  eval::DetectionShard shard;
  try {
    shard = eval::decode_shard(bytes);
  } catch (const InputError&) {
    return 0;
  }
  if (shard.positions.size() != shard.detections.size()) std::abort();
  for (const eval::Detection& d : shard.detections) {
    if (const auto* rle = std::get_if<mask::Rle>(&d.segmentation)) {
      uint64_t total = 0;
      for (uint32_t c : rle->counts) total += c;
      if (total != uint64_t{rle->h} * rle->w) std::abort();
    }
  }
  if (eval::encode_shard(shard) != bytes) std::abort();
  return 0;
}
