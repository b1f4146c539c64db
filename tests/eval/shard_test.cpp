// eval/shard: detections as bytes between ranks (sharded evaluation).
#include <gtest/gtest.h>

#include <variant>

#include "pasteflow/core/error.hpp"
#include "pasteflow/eval/shard.hpp"

namespace pasteflow::eval {
namespace {

DetectionShard example() {
  DetectionShard s;
  s.images = 11;
  s.dropped = 2;
  s.detections.resize(3);
  s.detections[0].image_id = 7;
  s.detections[0].category_id = 3;
  s.detections[0].score = 0.123456789012345;
  s.detections[0].bbox = std::array<double, 4>{1.5, 2.25, 3.0, 4.125};
  mask::Rle rle;
  rle.h = 4;
  rle.w = 5;
  rle.counts = {3, 2, 15};
  s.detections[1].image_id = 8;
  s.detections[1].segmentation = rle;
  s.detections[2].image_id = -9;
  s.positions = {4, 5, 6};
  return s;
}

TEST(EvaluationShard, DetectionsWithBoxesAndMasksSurviveTheRoundTrip) {
  const DetectionShard s = example();
  const std::vector<uint8_t> bytes = encode_shard(s);
  const DetectionShard d = decode_shard(bytes);
  EXPECT_EQ(d.images, 11u);
  EXPECT_EQ(d.dropped, 2u);
  EXPECT_EQ(d.positions, s.positions);
  ASSERT_EQ(d.detections.size(), 3u);
  EXPECT_EQ(d.detections[0].score, s.detections[0].score);  // every bit of the double
  EXPECT_EQ(d.detections[0].category_id, 3);
  EXPECT_EQ(*d.detections[0].bbox, *s.detections[0].bbox);
  EXPECT_TRUE(std::holds_alternative<std::monostate>(d.detections[0].segmentation));
  EXPECT_EQ(std::get<mask::Rle>(d.detections[1].segmentation), std::get<mask::Rle>(s.detections[1].segmentation));
  EXPECT_FALSE(d.detections[1].bbox.has_value());
  EXPECT_EQ(d.detections[2].image_id, -9);
  EXPECT_EQ(encode_shard(d), bytes);
  EXPECT_TRUE(decode_shard(encode_shard(DetectionShard{})).detections.empty());
}

int64_t error_offset(const std::vector<uint8_t>& bytes) {
  try {
    decode_shard(bytes);
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), "bad_shard");
    return e.where().byte_offset;
  }
  ADD_FAILURE() << "no error";
  return -2;
}

TEST(EvaluationShard, BadBytesAreErrorsWithTheByteOffset) {
  const std::vector<uint8_t> good = encode_shard(example());
  // Cut short anywhere: an error, never a shorter list.
  for (size_t cut = 0; cut < good.size(); ++cut) {
    EXPECT_GE(error_offset(std::vector<uint8_t>(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(cut))), 0)
        << "cut at " << cut;
  }
  std::vector<uint8_t> trailing = good;
  trailing.push_back(0);
  EXPECT_EQ(error_offset(trailing), static_cast<int64_t>(good.size()));
  std::vector<uint8_t> bad_flag = good;
  const size_t flag_at = 24 + 4 + 8 + 8 + 8;  // header, then detection 0's has_bbox
  bad_flag[flag_at] = 7;
  EXPECT_EQ(error_offset(bad_flag), static_cast<int64_t>(flag_at));
  // RLE counts that do not cover h x w.
  DetectionShard wrong = example();
  std::get<mask::Rle>(wrong.detections[1].segmentation).counts = {3, 2, 14};
  EXPECT_GE(error_offset(encode_shard(wrong)), 0);
  // A count of detections that cannot fit.
  std::vector<uint8_t> huge = good;
  huge[16] = 0xff;
  huge[23] = 0x7f;
  EXPECT_EQ(error_offset(huge), 24);
}

TEST(EvaluationShard, OnlyRleSegmentationsAndOnePositionPerDetectionAreEncoded) {
  DetectionShard s = example();
  s.positions.pop_back();
  EXPECT_THROW(encode_shard(s), Error);
  s = example();
  s.detections[2].segmentation = PolygonMask{};
  EXPECT_THROW(encode_shard(s), Error);
}

}  // namespace
}  // namespace pasteflow::eval
