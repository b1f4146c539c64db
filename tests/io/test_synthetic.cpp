// The synthetic COCO generator: its output loads strictly with exact counts.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "pasteflow/io/bench.hpp"
#include "pasteflow/io/coco.hpp"
#include "common/file.hpp"

using namespace pasteflow;
using namespace pasteflow::io;
namespace fs = std::filesystem;

namespace {

using pasteflow::testing::read_file;

std::string temp_path(const std::string& name) {
  return (fs::temp_directory_path() / ("pf_io_syn_" + std::to_string(::getpid()) + "_" + name)).string();
}

}  // namespace

TEST(SyntheticCoco, LoadsWithExactCounts) {
  SyntheticCocoOptions opt;
  opt.images = 300;
  opt.annotations = 2500;
  opt.crowd_fraction = 0.05;
  opt.multipart_fraction = 0.2;
  opt.seed = 7;
  const std::string path = temp_path("a.json");
  generate_synthetic_coco(path, opt);
  LoadOptions lo;
  lo.keep_extra_fields = true;
  lo.block_size = 4096;  // many blocks even for a small file
  const CocoDataset ds = load_coco(path, lo);  // strict: every record valid, RLE sums checked
  EXPECT_EQ(ds.images.size(), 300u);
  EXPECT_EQ(ds.annotations.size(), 2500u);
  EXPECT_EQ(ds.categories.size(), 80u);
  size_t crowd = 0, multipart = 0;
  for (const AnnotationRecord& a : ds.annotations) {
    if (a.iscrowd) {
      ++crowd;
      EXPECT_EQ(a.seg_kind, SegmentationKind::kRleCounts);
      EXPECT_EQ(a.rle_height, static_cast<uint32_t>(ds.images[a.image_index].height));
      EXPECT_EQ(a.rle_width, static_cast<uint32_t>(ds.images[a.image_index].width));
    } else {
      ASSERT_EQ(a.seg_kind, SegmentationKind::kPolygons);
      multipart += a.seg_count > 1;
      for (size_t k = 0; k < a.seg_count; ++k) {
        const size_t n = ds.polygon(a, k).size();
        EXPECT_GE(n, 16u);
        EXPECT_LE(n, 80u);
      }
    }
    EXPECT_TRUE(a.has_area && a.has_bbox && a.has_iscrowd);
  }
  EXPECT_GT(crowd, 60u);  // 5% of 2500 = 125 expected
  EXPECT_LT(crowd, 200u);
  EXPECT_GT(multipart, 300u);  // 20% of the non-crowd ones
  EXPECT_NE(ds.str(ds.images[0].extra).find("\"coco_url\""), std::string_view::npos);
  EXPECT_NE(ds.str(ds.top_level_extra).find("\"licenses\""), std::string_view::npos);
  EXPECT_EQ(ds.str(ds.images[0].file_name).size(), 16u);  // 000000xxxxxx.jpg

  // Deterministic for a seed, different for another.
  const std::string again = temp_path("b.json");
  generate_synthetic_coco(again, opt);
  EXPECT_EQ(read_file(path), read_file(again));
  opt.seed = 8;
  generate_synthetic_coco(again, opt);
  EXPECT_NE(read_file(path), read_file(again));
  fs::remove(path);
  fs::remove(again);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST(SyntheticCoco, RejectsBadOptions) {
  SyntheticCocoOptions opt;
  opt.min_vertices = 2;
  EXPECT_THROW(generate_synthetic_coco(temp_path("c.json"), opt), Error);
  EXPECT_FALSE(fs::exists(temp_path("c.json")));
}
