// Regression tests for what fuzz/fuzz_coco found (fuzz/FINDINGS.md), with
// the reproducers inline (also in tests/data/fuzz/fuzz_coco/).
#include <gtest/gtest.h>

#include <string>

#include "pasteflow/core/error.hpp"
#include "pasteflow/io/coco.hpp"

namespace {

using namespace pasteflow;

std::string reason_of(const std::string& json, const io::LoadOptions& options) {
  try {
    (void)io::parse_coco(json, "fuzz.json", options);
  } catch (const InputError& e) {
    return e.reason();
  }
  return "loaded";
}

TEST(CocoLoadRegression, GarbledAnnotationBatchIsMalformedNotAReadPastTheRecordRanges) {
  // ASan: heap-buffer-overflow in Reader::finish (ranges_[elem_ - batch_first_]):
  // On-Demand iterated more elements than the block scanner had cut the
  // batch into, and a problem in the extra one looked up its byte offset
  // past the end of the ranges. (Minimised from a 1.7 KiB garbled slice of
  // coco_mini; tests/data/fuzz/fuzz_coco/garbled_annotation_batch.json is
  // the same bytes, a seed of fuzz_coco.)
  const std::string json = R"({"annotations":[{"segmentation":[[]e},})";
  // Strict stops at the first record (an empty polygon); under skip the
  // reader went on to the element the scanner never cut, which is what read
  // past the ranges. Malformed JSON stays fatal under skip.
  io::LoadOptions options;
  EXPECT_EQ(reason_of(json, options), "short_polygon");
  options.policy = ErrorPolicy::kSkip;
  EXPECT_EQ(reason_of(json, options), "malformed_json");
  options.block_size = 64;  // records split across blocks, as fuzz_coco also loads
  options.batch_size = 64;
  EXPECT_EQ(reason_of(json, options), "malformed_json");
}

TEST(CocoLoadRegression, ThirteenCharacterRleCountIsNoSignedShiftOverflow) {
  // UBSan: "left shift of 21 by 60 places cannot be represented in type
  // 'int64_t'" in the reader's compressed-RLE sum check: the 13th character
  // of a count ('E', 21) was shifted as a signed number. Twelve 'P's (0,
  // more follows) and 'E': a 13-character count, which the reader now
  // refuses as mask::from_string does (at most 12), before any shift.
  const std::string json =
      R"({"images":[{"id":1,"width":4,"height":4,"file_name":"a.jpg"}],"categories":[{"id":1,"name":"a"}],)"
      R"("annotations":[{"id":1,"image_id":1,"category_id":1,"iscrowd":1,)"
      R"("segmentation":{"size":[4,4],"counts":"PPPPPPPPPPPPE"}}]})";
  EXPECT_EQ(reason_of(json, {}), "bad_value");
}

TEST(CocoLoadRegression, WidthBeyond32BitsIsRefusedBeforeThePixelProduct) {
  // UBSan: "signed integer overflow: 500 * 3555555555555555538 cannot be
  // represented in type 'long'" in the pixel-limit check of an image: a
  // width beyond 32 bits was reported as bad_image_size but still
  // multiplied by the height. The product is now taken only when both sides
  // are positive 32-bit values. (tests/data/fuzz/fuzz_coco/
  // width_of_19_digits.json is the same record, a seed of fuzz_coco.)
  const std::string json =
      R"({"images":[{"id":1,"width":3555555555555555538,"height":500,"file_name":"a.jpg"}],)"
      R"("categories":[{"id":1,"name":"a"}],"annotations":[]})";
  io::LoadOptions options;
  options.max_pixels = 1 << 20;
  EXPECT_EQ(reason_of(json, options), "bad_image_size");
  options.policy = ErrorPolicy::kSkip;
  EXPECT_EQ(reason_of(json, options), "loaded");
}

}  // namespace
