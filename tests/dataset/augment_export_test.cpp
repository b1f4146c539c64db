// The augment export's id checks: a run whose new ids would pass INT64_MAX
// is refused before anything is written, naming the file and the record.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "pasteflow/dataset/augment_export.hpp"
#include "pasteflow/io/coco.hpp"

namespace {

using pasteflow::InputError;
using pasteflow::dataset::check_augment_ids;
using pasteflow::stages::SampleTicket;

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

/// Two images (ids `image_id` and 1), one annotation each (ids `ann_id`, 2).
pasteflow::io::CocoDataset dataset(int64_t image_id, int64_t ann_id) {
  const std::string json =
      R"({"images":[{"id":)" + std::to_string(image_id) + R"(,"width":8,"height":8,"file_name":"a.jpg"},)"
      R"({"id":1,"width":8,"height":8,"file_name":"b.jpg"}],"annotations":[)"
      R"({"id":)" + std::to_string(ann_id) + R"(,"image_id":)" + std::to_string(image_id) +
      R"(,"category_id":1,"bbox":[0,0,2,2],"area":4},)"
      R"({"id":2,"image_id":1,"category_id":1,"bbox":[0,0,2,2],"area":4}],"categories":[{"id":1,"name":"x"}]})";
  return pasteflow::io::parse_coco(json, "ids.json");
}

/// original + aug: each image once as itself and once augmented.
std::vector<SampleTicket> original_aug() {
  std::vector<SampleTicket> t(4);
  for (uint32_t i = 0; i < 4; ++i) {
    t[i].seq = i;
    t[i].image_index = i % 2;
    t[i].augment = i >= 2;
  }
  return t;
}

std::string refusal(const pasteflow::io::CocoDataset& ds, const std::vector<SampleTicket>& tickets, uint64_t ids) {
  try {
    check_augment_ids(ds, tickets, ids);
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), "id_overflow");
    EXPECT_EQ(e.where().file, "ids.json");
    return e.what();
  }
  return "";
}

TEST(AugmentExportRegression, ImageIdOfInt64MaxIsRefused) {
  const std::string what = refusal(dataset(kMax, 10), original_aug(), 1024);
  EXPECT_NE(what.find("image id 9223372036854775807"), std::string::npos) << what;
  EXPECT_NE(what.find("2 new image ids"), std::string::npos) << what;
  // Exactly enough room: the two new images get kMax - 1 and kMax.
  EXPECT_EQ(refusal(dataset(kMax - 2, 10), original_aug(), 1024), "");
  EXPECT_NE(refusal(dataset(kMax - 1, 10), original_aug(), 1024), "");
}

TEST(AugmentExportRegression, AnnotationIdNearInt64MaxIsRefused) {
  const std::string what = refusal(dataset(5, kMax), original_aug(), 1024);
  EXPECT_NE(what.find("annotation id 9223372036854775807"), std::string::npos) << what;
  // 4 samples x 16 pasted ids, then the 2 copied objects of the augmented copies.
  EXPECT_EQ(refusal(dataset(5, kMax - 4 * 16 - 2), original_aug(), 16), "");
  EXPECT_NE(refusal(dataset(5, kMax - 4 * 16 - 1), original_aug(), 16), "");
  // The pasted-id span alone overflows uint64 arithmetic.
  EXPECT_NE(refusal(dataset(5, 10), original_aug(), uint64_t(1) << 62), "");
}

TEST(AugmentExportRegression, OriginalsOnlyNeedNoNewIds) {
  std::vector<SampleTicket> baseline = original_aug();
  baseline.resize(2);  // each image once, not augmented: nothing new
  EXPECT_EQ(refusal(dataset(kMax, kMax), baseline, 1024), "");
}

}  // namespace
