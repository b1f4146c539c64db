// io::fraction_indices / io::keep_images: the low-data regime's image
// selection (data.train_fraction), on the bundled real sample.
#include "pasteflow/io/select.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "pasteflow/core/error.hpp"
#include "pasteflow/io/coco.hpp"

namespace pasteflow::io {
namespace {

const std::string kSample = PASTEFLOW_SAMPLE_DATA;

CocoDataset sample() { return load_coco(kSample + "/annotations.json"); }

std::set<std::string> names(const CocoDataset& ds, const std::vector<size_t>& which) {
  std::set<std::string> out;
  for (size_t i : which) out.insert(std::string(ds.file_name(ds.images[i])));
  return out;
}

TEST(FractionIndices, KeepsRoundedFractionAscendingAndNested) {
  const CocoDataset ds = sample();
  ASSERT_EQ(ds.images.size(), 16u);
  const auto quarter = fraction_indices(ds, 0.25, 7);
  const auto half = fraction_indices(ds, 0.5, 7);
  EXPECT_EQ(quarter.size(), 4u);
  EXPECT_EQ(half.size(), 8u);
  EXPECT_TRUE(std::is_sorted(quarter.begin(), quarter.end()));
  // Fractions nest under one seed.
  const auto q = names(ds, quarter), h = names(ds, half);
  EXPECT_TRUE(std::includes(h.begin(), h.end(), q.begin(), q.end()));
  // At least one image; fraction 1 keeps every image.
  EXPECT_EQ(fraction_indices(ds, 0.001, 7).size(), 1u);
  EXPECT_EQ(fraction_indices(ds, 1.0, 7).size(), 16u);
  // 0.15 of 16 = 2.4 -> 2.
  EXPECT_EQ(fraction_indices(ds, 0.15, 7).size(), 2u);
}

TEST(FractionIndices, DependsOnNamesAndSeedNotOnOrder) {
  const CocoDataset ds = sample();
  CocoDataset reversed = ds;
  std::reverse(reversed.images.begin(), reversed.images.end());
  reversed.rebuild_index();
  EXPECT_EQ(names(ds, fraction_indices(ds, 0.5, 3)), names(reversed, fraction_indices(reversed, 0.5, 3)));
  // Another seed picks other images (C(16, 8) = 12870 possible halves).
  EXPECT_NE(names(ds, fraction_indices(ds, 0.5, 3)), names(ds, fraction_indices(ds, 0.5, 4)));
}

TEST(FractionIndices, RejectsFractionsOutsideZeroToOneNamingTheKey) {
  const CocoDataset ds = sample();
  for (double f : {0.0, -0.5, 1.5, std::nan("")}) {
    try {
      fraction_indices(ds, f, 1);
      ADD_FAILURE() << "no error for " << f;
    } catch (const ConfigError& e) {
      EXPECT_EQ(e.where().key, "data.train_fraction");
      EXPECT_EQ(e.reason(), "bad_value");
    }
  }
}

TEST(KeepImages, KeepsTheImagesAndExactlyTheirAnnotations) {
  const CocoDataset ds = sample();
  const auto keep = fraction_indices(ds, 0.25, 11);
  const CocoDataset sub = keep_images(ds, keep);
  ASSERT_EQ(sub.images.size(), keep.size());
  size_t expected = 0;
  for (size_t k = 0; k < keep.size(); ++k) {
    const ImageRecord& src = ds.images[keep[k]];
    EXPECT_EQ(sub.images[k].id, src.id);
    EXPECT_EQ(sub.file_name(sub.images[k]), ds.file_name(src));
    const auto a = ds.annotations_of(keep[k]);
    const auto b = sub.annotations_of(k);
    ASSERT_EQ(a.size(), b.size());
    for (size_t j = 0; j < a.size(); ++j) {
      EXPECT_EQ(sub.annotations[b[j]].id, ds.annotations[a[j]].id);
      EXPECT_EQ(sub.annotations[b[j]].image_index, k);
      EXPECT_EQ(sub.annotations[b[j]].area, ds.annotations[a[j]].area);
    }
    expected += a.size();
  }
  EXPECT_EQ(sub.annotations.size(), expected);
  EXPECT_LT(expected, ds.annotations.size());
  EXPECT_EQ(sub.categories.size(), ds.categories.size());
  // Errors found later still name the source file and the record's place.
  ASSERT_FALSE(sub.annotations.empty());
  const Location loc = sub.annotation_location(sub.annotations[0]);
  EXPECT_EQ(loc.file, ds.source_path);
  EXPECT_FALSE(loc.path.empty());
  EXPECT_THROW(keep_images(ds, {ds.images.size()}), Error);
}

}  // namespace
}  // namespace pasteflow::io
