// Annotations cut to slices, on real data (tests/data/coco_mini: polygons
// and crowd RLE counts; its slices: compressed RLE strings): the clipped
// mask equals the crop of the full mask pixel for pixel, areas add up over
// a tiling, min_area_ratio and keep_empty hold, huge images cost what their
// outlines cost.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "pasteflow/core/error.hpp"
#include "pasteflow/io/coco.hpp"
#include "pasteflow/mask/coco_mask.hpp"
#include "pasteflow/mask/rle.hpp"
#include "pasteflow/slice/slice.hpp"
#include "slice_test_util.hpp"

using namespace pasteflow;
using io::SegmentationKind;
using slice::Window;
using slicetest::crop_pixels;
using slicetest::ones;

namespace {

slice::SliceConfig config(int64_t size, double overlap, double min_ratio = 0.0, double keep_empty = 1.0) {
  slice::SliceConfig c;
  c.size = size;
  c.overlap = overlap;
  c.min_area_ratio = min_ratio;
  c.keep_empty = keep_empty;
  return c;
}

/// For every source annotation and every view of its image: the cut
/// annotation exists iff the crop of the full mask keeps enough of it, and
/// its decoded mask is that crop, pixel for pixel; area, bbox, category and
/// iscrowd follow. Returns the number of (object, view) pairs checked.
size_t check_cuts(const io::CocoDataset& src, const slice::SlicedDataset& out, double min_ratio) {
  const io::CocoDataset& ds = out.dataset;
  EXPECT_EQ(ds.images.size(), out.views.size());
  EXPECT_EQ(ds.annotations.size(), out.annotation_source.size());
  // (source annotation, view) -> cut annotation.
  std::map<std::pair<uint32_t, size_t>, size_t> cut;
  for (size_t i = 0; i < ds.annotations.size(); ++i) {
    const bool inserted = cut.emplace(std::make_pair(out.annotation_source[i], size_t(ds.annotations[i].image_index)), i).second;
    EXPECT_TRUE(inserted) << "one object cut twice into one view";
  }
  std::vector<std::vector<size_t>> views_of(src.images.size());
  for (size_t v = 0; v < out.views.size(); ++v) views_of[out.views[v].source_image_index].push_back(v);
  size_t pairs = 0;
  uint64_t dropped = 0;
  for (size_t ii = 0; ii < src.images.size(); ++ii) {
    const auto& im = src.images[ii];
    for (uint32_t ai : src.annotations_of(ii)) {
      const auto& a = src.annotations[ai];
      const mask::Rle full = mask::annotation_rle(src, a, static_cast<uint32_t>(im.height), static_cast<uint32_t>(im.width));
      const std::vector<uint8_t> px = mask::decode(full);
      const uint64_t full_area = ones(px);
      for (size_t v : views_of[ii]) {
        const Window& w = out.views[v].window;
        EXPECT_TRUE(out.views[v].sliced);
        EXPECT_EQ(ds.images[v].width, w.width);
        EXPECT_EQ(ds.images[v].height, w.height);
        const std::vector<uint8_t> want = crop_pixels(px, im.width, w);
        const uint64_t n = ones(want);
        const bool keep = n > 0 && static_cast<double>(n) >= min_ratio * static_cast<double>(full_area);
        if (n > 0 && !keep) ++dropped;
        const auto it = cut.find({ai, v});
        EXPECT_EQ(it != cut.end(), keep) << "annotation id " << a.id << " view " << v << " area " << n << "/" << full_area;
        if (it == cut.end()) continue;
        ++pairs;
        const auto& c = ds.annotations[it->second];
        EXPECT_EQ(c.seg_kind, SegmentationKind::kRleString);
        EXPECT_EQ(c.rle_width, static_cast<uint32_t>(w.width));
        EXPECT_EQ(c.rle_height, static_cast<uint32_t>(w.height));
        const mask::Rle got = slicetest::cut_mask(ds, c);
        EXPECT_EQ(mask::decode(got), want) << "annotation id " << a.id << " window " << w.x << "," << w.y;
        EXPECT_EQ(c.area, static_cast<double>(n));
        EXPECT_EQ(c.bbox, mask::bbox(got));
        EXPECT_EQ(c.category_id, a.category_id);
        EXPECT_EQ(c.iscrowd, a.iscrowd);
      }
    }
  }
  EXPECT_EQ(out.objects_dropped, dropped);
  return pairs;
}

}  // namespace

TEST(SliceCut, ClippedMaskEqualsCropOfFullMask) {
  for (const char* file : {"coco_mini/instances_train2017.json", "coco_mini/instances_val2017.json"}) {
    const io::CocoDataset src = slicetest::load(file);
    const slice::SlicedDataset out = slice::slice_dataset(src, config(256, 0.2), 7, true);
    size_t crowd = 0;
    for (const auto& a : out.dataset.annotations) crowd += a.iscrowd;
    EXPECT_GT(crowd, 0u) << "RLE (crowd) sources are exercised";
    const size_t pairs = check_cuts(src, out, 0.0);
    EXPECT_GT(pairs, src.annotations.size()) << file;
    // Every window of every image is a view (keep_empty 1).
    size_t windows = 0;
    for (const auto& im : src.images) windows += slice::grid(im.width, im.height, 256, 256, 0.2).size();
    EXPECT_EQ(out.views.size(), windows);
    EXPECT_EQ(out.empty_dropped, 0u);
  }
}

TEST(SliceCut, CompressedRleSourcesCutAlike) {
  // The slices of coco_mini (compressed RLE strings), sliced again.
  const io::CocoDataset src = slicetest::load("coco_mini/instances_val2017.json");
  const slice::SlicedDataset first = slice::slice_dataset(src, config(256, 0.2), 7, true);
  // Through the writer and the loader: the strings as a file holds them.
  io::LoadOptions keep;
  keep.keep_extra_fields = true;
  const io::CocoDataset reloaded = io::parse_coco(io::write_coco_string(first.dataset), "slices.json", keep);
  size_t strings = 0;
  for (const auto& a : reloaded.annotations) strings += a.seg_kind == SegmentationKind::kRleString;
  ASSERT_EQ(strings, reloaded.annotations.size());
  const slice::SlicedDataset second = slice::slice_dataset(reloaded, config(100, 0.3, 0.25), 3, true);
  EXPECT_GT(check_cuts(reloaded, second, 0.25), 500u);
  // A slice of a slice names its own source and window once.
  for (const auto& im : second.dataset.images) {
    const std::string extra(second.dataset.str(im.extra));
    EXPECT_EQ(extra.find("\"window\""), extra.rfind("\"window\"")) << extra;
    EXPECT_EQ(extra.find("\"source_image_id\""), extra.rfind("\"source_image_id\"")) << extra;
  }
}

TEST(SliceCut, AreasAddUpOverATiling) {
  // Image sizes trimmed to multiples of 32 so that 32-px slices without
  // overlap tile each image exactly; RLE annotations no longer match their
  // image's size and are skipped (and counted) under kSkip.
  io::CocoDataset src = slicetest::load("coco_mini/instances_train2017.json");
  size_t rle_on_changed = 0;
  for (size_t i = 0; i < src.images.size(); ++i) {
    auto& im = src.images[i];
    const int32_t w = im.width - im.width % 32, h = im.height - im.height % 32;
    if (w != im.width || h != im.height) {
      for (uint32_t ai : src.annotations_of(i)) rle_on_changed += src.annotations[ai].seg_kind != SegmentationKind::kPolygons;
    }
    im.width = w;
    im.height = h;
  }
  ASSERT_GT(rle_on_changed, 0u);
  const slice::SlicedDataset out = slice::slice_dataset(src, config(32, 0.0), 1, true, ErrorPolicy::kSkip);
  EXPECT_EQ(out.dataset.skipped.count("rle_size_mismatch"), rle_on_changed);
  EXPECT_EQ(out.objects_dropped, 0u);
  std::vector<double> sum(src.annotations.size(), 0.0);
  for (size_t i = 0; i < out.dataset.annotations.size(); ++i) sum[out.annotation_source[i]] += out.dataset.annotations[i].area;
  size_t checked = 0;
  for (size_t i = 0; i < src.images.size(); ++i) {
    const auto& im = src.images[i];
    const auto g = slice::grid(im.width, im.height, 32, 32, 0.0);
    EXPECT_EQ(g.size(), static_cast<size_t>(im.width / 32) * static_cast<size_t>(im.height / 32));
    for (uint32_t ai : src.annotations_of(i)) {
      const auto& a = src.annotations[ai];
      if (a.seg_kind != SegmentationKind::kPolygons && (a.rle_height != uint32_t(im.height) || a.rle_width != uint32_t(im.width))) continue;
      const mask::Rle full = mask::annotation_rle(src, a, static_cast<uint32_t>(im.height), static_cast<uint32_t>(im.width));
      EXPECT_EQ(sum[ai], static_cast<double>(mask::area(full))) << "annotation id " << a.id;
      ++checked;
    }
  }
  EXPECT_GT(checked, 600u);
}

TEST(SliceCut, MinAreaRatioAgainstTheFullMask) {
  const io::CocoDataset src = slicetest::load("coco_mini/instances_train2017.json");
  const slice::SlicedDataset out = slice::slice_dataset(src, config(200, 0.1, 0.6), 5, true);
  check_cuts(src, out, 0.6);  // kept iff area >= 0.6 full; objects_dropped counts the others
  EXPECT_GT(out.objects_dropped, 100u);
  // Every kept object passes the ratio.
  for (size_t i = 0; i < out.dataset.annotations.size(); ++i) {
    const auto& a = src.annotations[out.annotation_source[i]];
    const auto& im = src.images[a.image_index];
    const double full = static_cast<double>(mask::area(mask::annotation_rle(src, a, uint32_t(im.height), uint32_t(im.width))));
    EXPECT_GE(out.dataset.annotations[i].area, 0.6 * full);
  }
}

TEST(SliceCut, KeepEmptyIsSeededAndRoughlyTheRate) {
  const io::CocoDataset src = slicetest::load("coco_mini/instances_val2017.json");
  const slice::SlicedDataset none = slice::slice_dataset(src, config(64, 0.0, 0.0, 0.0), 11, true);
  const slice::SlicedDataset all = slice::slice_dataset(src, config(64, 0.0, 0.0, 1.0), 11, true);
  // Views without annotations: none at 0, all at 1.
  for (const auto& im : none.dataset.images) EXPECT_GT(im.ann_count, 0u);
  const uint64_t empties = none.empty_dropped;
  ASSERT_GT(empties, 1000u);
  EXPECT_EQ(all.empty_dropped, 0u);
  EXPECT_EQ(all.views.size(), none.views.size() + empties);

  const double p = 0.3;
  const slice::SlicedDataset a = slice::slice_dataset(src, config(64, 0.0, 0.0, p), 11, true);
  const slice::SlicedDataset b = slice::slice_dataset(src, config(64, 0.0, 0.0, p), 11, true);
  const slice::SlicedDataset c = slice::slice_dataset(src, config(64, 0.0, 0.0, p), 12, true);
  EXPECT_EQ(io::write_coco_string(a.dataset), io::write_coco_string(b.dataset));
  EXPECT_NE(io::write_coco_string(a.dataset), io::write_coco_string(c.dataset));
  for (const auto* s : {&a, &c}) {
    EXPECT_EQ(s->views.size() + s->empty_dropped, all.views.size());
    const double kept = static_cast<double>(empties - s->empty_dropped);
    const double sd = std::sqrt(static_cast<double>(empties) * p * (1 - p));
    EXPECT_NEAR(kept, p * static_cast<double>(empties), 4 * sd) << "kept " << kept << " of " << empties;
  }
  // The annotated views are the same whatever the seed.
  EXPECT_EQ(a.dataset.annotations.size(), none.dataset.annotations.size());
}

TEST(SliceCut, SmallImagesPassThroughUnchanged) {
  const io::CocoDataset src = slicetest::load("coco_mini/instances_train2017.json");
  slice::SliceConfig c = config(256, 0.2);
  c.above = 600;
  const slice::SlicedDataset out = slice::slice_dataset(src, c, 1, false);
  size_t passed = 0, cut = 0;
  for (size_t v = 0; v < out.views.size(); ++v) {
    const auto& view = out.views[v];
    const auto& sim = src.images[view.source_image_index];
    const auto& im = out.dataset.images[v];
    EXPECT_EQ(im.id, static_cast<int64_t>(v) + 1);
    EXPECT_EQ(out.dataset.file_name(im), src.file_name(sim));
    const bool big = sim.width > 600 || sim.height > 600;
    EXPECT_EQ(view.sliced, big);
    if (view.sliced) {
      ++cut;
      continue;
    }
    ++passed;
    EXPECT_EQ(view.window, (Window{0, 0, sim.width, sim.height}));
    ASSERT_EQ(im.ann_count, sim.ann_count);
    for (uint32_t k = 0; k < im.ann_count; ++k) {
      const auto& a = out.dataset.annotations[out.dataset.annotations_of(v)[k]];
      const auto& s = src.annotations[src.annotations_of(view.source_image_index)[k]];
      EXPECT_EQ(a.seg_kind, s.seg_kind);
      EXPECT_EQ(a.area, s.area);
      EXPECT_EQ(a.bbox, s.bbox);
      EXPECT_EQ(a.category_id, s.category_id);
      EXPECT_EQ(mask::annotation_rle(out.dataset, a, uint32_t(im.height), uint32_t(im.width)),
                mask::annotation_rle(src, s, uint32_t(sim.height), uint32_t(sim.width)));
    }
  }
  EXPECT_GE(passed, 5u);
  EXPECT_GE(cut, 5u);
  // Off (above = 0, !slice_all): everything passes through.
  c.above = 0;
  const slice::SlicedDataset off = slice::slice_dataset(src, c, 1, false);
  EXPECT_EQ(off.views.size(), src.images.size());
  EXPECT_EQ(off.dataset.annotations.size(), src.annotations.size());
}

TEST(SliceCut, OutputRoundTripsWithSourceAndWindow) {
  const io::CocoDataset src = slicetest::load("coco_mini/instances_val2017.json");
  const slice::SlicedDataset out = slice::slice_dataset(src, config(256, 0.2, 0.1, 0.5), 9, true);
  io::LoadOptions opt;
  opt.keep_extra_fields = true;
  const io::CocoDataset back = io::parse_coco(io::write_coco_string(out.dataset), "slices.json", opt);
  ASSERT_EQ(back.images.size(), out.views.size());
  ASSERT_EQ(back.annotations.size(), out.dataset.annotations.size());
  EXPECT_EQ(back.categories.size(), src.categories.size());
  for (size_t v = 0; v < out.views.size(); ++v) {
    const Window& w = out.views[v].window;
    const std::string want = "\"source_image_id\":" + std::to_string(out.views[v].source_image_id) + ",\"window\":[" +
                             std::to_string(w.x) + "," + std::to_string(w.y) + "," + std::to_string(w.width) + "," +
                             std::to_string(w.height) + "]";
    // The source's members (license, coco_url, ...), then the view's.
    const std::string extra(back.str(back.images[v].extra));
    ASSERT_GE(extra.size(), want.size());
    EXPECT_EQ(extra.substr(extra.size() - want.size()), want);
    EXPECT_NE(extra.find("\"license\":"), std::string::npos) << extra;
    EXPECT_NE(extra.find("\"coco_url\":"), std::string::npos) << extra;
    EXPECT_EQ(src.images[out.views[v].source_image_index].id, out.views[v].source_image_id);
  }
  for (size_t i = 0; i < back.annotations.size(); ++i) {
    EXPECT_EQ(back.annotations[i].id, static_cast<int64_t>(i) + 1);
    EXPECT_EQ(back.rle_string(back.annotations[i]), out.dataset.rle_string(out.dataset.annotations[i]));
  }
}

TEST(SliceCut, HugeImageCostFollowsTheOutline) {
  // A 50000 x 50000 image (2.5 gigapixels) with one small polygon: the full
  // mask is runs (no raster), each window's cut is a crop of the runs.
  // Coordinates are multiples of 1/4, so translating the polygon by a
  // window's integer origin is exact in floating point and the cut must
  // equal the polygon rasterised at the window's size.
  const double poly[] = {30700.25, 40900.5, 30790.75, 40950.25, 30740.5, 41030.75, 30690.0, 40990.5};
  std::string json =
      "{\"images\":[{\"id\":5,\"width\":50000,\"height\":50000,\"file_name\":\"huge.tif\"}],"
      "\"annotations\":[{\"id\":1,\"image_id\":5,\"category_id\":1,\"segmentation\":[[";
  for (size_t i = 0; i < 8; ++i) json += (i ? "," : "") + std::to_string(poly[i]);
  json += "]],\"area\":1,\"bbox\":[0,0,1,1],\"iscrowd\":0}],\"categories\":[{\"id\":1,\"name\":\"x\"}]}";
  io::LoadOptions opt;
  opt.max_pixels = 0;
  const io::CocoDataset src = io::parse_coco(json, "huge.json", opt);
  const auto t0 = std::chrono::steady_clock::now();
  const slice::SlicedDataset out = slice::slice_dataset(src, config(1024, 0.2, 0.0, 0.0), 1, true);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("50000x50000 image, one polygon, 1024-px slices: %.1f ms, %zu views of %zu windows\n", ms,
              out.views.size(), slice::grid(50000, 50000, 1024, 1024, 0.2).size());
  // The polygon spans x 30690..30791, y 40900..41031: 1024-px slices step
  // 820 (overlap 204): x window 30340 (30340..31364) holds it all; y
  // windows 40180 (all of it) and 41000 (its bottom rows).
  ASSERT_EQ(out.views.size(), 2u);
  EXPECT_EQ(out.views[0].window, (Window{30340, 40180, 1024, 1024}));
  EXPECT_EQ(out.views[1].window, (Window{30340, 41000, 1024, 1024}));
  uint64_t total = 0;
  for (size_t v = 0; v < out.views.size(); ++v) {
    const Window& w = out.views[v].window;
    // The polygon rasterised in a frame 200 rows taller than the window
    // (all coordinates stay positive there: truncation is floor), then
    // the window's rows taken.
    ASSERT_GE(w.y, 200);
    double local[8];
    for (size_t i = 0; i < 8; i += 2) {
      local[i] = poly[i] - static_cast<double>(w.x);
      local[i + 1] = poly[i + 1] - static_cast<double>(w.y - 200);
      ASSERT_GT(local[i], 0.0);
      ASSERT_LT(local[i], static_cast<double>(w.width));
      ASSERT_GT(local[i + 1], 0.0);
    }
    const mask::Rle frame = mask::from_polygon(local, 8, uint32_t(w.height + 200), uint32_t(w.width));
    const mask::Rle want = mask::crop(frame, 0, 200, uint32_t(w.width), uint32_t(w.height));
    ASSERT_EQ(out.dataset.images[v].ann_count, 1u);
    const auto& a = out.dataset.annotations[out.dataset.annotations_of(v)[0]];
    EXPECT_EQ(slicetest::cut_mask(out.dataset, a), want) << w.x << "," << w.y;
    total += mask::area(want);
  }
  EXPECT_GT(total, 0u);
  EXPECT_LT(ms, 5000.0) << "slicing a huge image must not touch every pixel";
}

TEST(SliceCut, BoxesOnlyAnnotationsAreClipped) {
  const std::string json =
      "{\"images\":[{\"id\":3,\"width\":200,\"height\":100,\"file_name\":\"b.png\"}],"
      "\"annotations\":[{\"id\":7,\"image_id\":3,\"category_id\":2,\"bbox\":[50.5,20,60,30],\"area\":1800},"
      "{\"id\":8,\"image_id\":3,\"category_id\":2,\"bbox\":[0,0,10,10]}],"
      "\"categories\":[{\"id\":2,\"name\":\"box\"}]}";
  const io::CocoDataset src = io::parse_coco(json, "boxes.json");
  const slice::SlicedDataset out = slice::slice_dataset(src, config(64, 0.0, 0.3, 0.0), 1, true);
  // Windows: x 0, 64, 128, 136; y 0, 36. Box 7 spans x 50.5..110.5, y 20..50.
  std::map<std::pair<int64_t, int64_t>, std::array<double, 4>> got;
  for (size_t i = 0; i < out.dataset.annotations.size(); ++i) {
    const auto& a = out.dataset.annotations[i];
    const Window& w = out.views[a.image_index].window;
    EXPECT_EQ(a.seg_kind, SegmentationKind::kNone);
    EXPECT_DOUBLE_EQ(a.area, a.bbox[2] * a.bbox[3]);
    if (out.annotation_source[i] == 0) got[{w.x, w.y}] = a.bbox;
  }
  // In window (0,0): x 50.5..64, y 20..50 -> 13.5 x 30 = 405 of 1800 (0.225 < 0.3): dropped.
  EXPECT_EQ(got.count({0, 0}), 0u);
  // In window (64,0): x 64..110.5, y 20..50 -> [0, 20, 46.5, 30]: 1395 / 1800 kept.
  ASSERT_EQ(got.count({64, 0}), 1u);
  EXPECT_EQ(got[std::make_pair(int64_t(64), int64_t(0))], (std::array<double, 4>{0, 20, 46.5, 30}));
  // In window (64,36): y 36..50 -> 14 rows, 651 / 1800 = 0.36: kept.
  ASSERT_EQ(got.count({64, 36}), 1u);
  EXPECT_EQ(got[std::make_pair(int64_t(64), int64_t(36))], (std::array<double, 4>{0, 0, 46.5, 14}));
  EXPECT_EQ(got.size(), 2u);
  EXPECT_EQ(out.dataset.annotations.size(), 3u);  // box 8 kept whole in (0, 0)
  EXPECT_EQ(out.objects_dropped, 2u);  // box 7 in (0, 0) and (0, 36); box 8 is whole in (0, 0)
}

TEST(SliceCut, BadSegmentationNamesTheAnnotationOrIsSkipped) {
  const std::string json =
      "{\"images\":[{\"id\":1,\"width\":40,\"height\":30,\"file_name\":\"a.png\"}],"
      "\"annotations\":[{\"id\":41,\"image_id\":1,\"category_id\":1,\"segmentation\":[[1,1,20,1,20,20]]},"
      "{\"id\":42,\"image_id\":1,\"category_id\":1,\"segmentation\":[]}],"
      "\"categories\":[{\"id\":1,\"name\":\"x\"}]}";
  const io::CocoDataset src = io::parse_coco(json, "bad.json");
  try {
    slice::slice_dataset(src, config(16, 0.0), 1, true);
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), "empty_segmentation");
    EXPECT_NE(std::string(e.what()).find("annotation id 42"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bad.json"), std::string::npos) << e.what();
  }
  const slice::SlicedDataset out = slice::slice_dataset(src, config(16, 0.0), 1, true, ErrorPolicy::kSkip);
  EXPECT_EQ(out.dataset.skipped.count("empty_segmentation"), 1u);
  for (uint32_t s : out.annotation_source) EXPECT_EQ(src.annotations[s].id, 41);
  EXPECT_GT(out.dataset.annotations.size(), 0u);
}

TEST(SliceCut, ImageAbove32BitPixelCountCutsPolygonsInAFrame) {
  // 100000 x 60000 = 6e9 pixels: no full-size mask fits pycocotools' 32-bit
  // runs (mask::kMaxPixels), so polygons are rasterised in a frame around
  // them. Coordinates are multiples of 1/4 (exact translations): the cuts
  // equal the polygon rasterised at the window's position, and the two
  // parts of an object cut by a slice edge add up to the whole.
  const double poly[] = {90100.25, 50100.5, 90300.75, 50120.25, 90250.5, 50400.75, 90080.0, 50300.5};
  std::string json =
      "{\"images\":[{\"id\":9,\"width\":100000,\"height\":60000,\"file_name\":\"huge.tif\"}],"
      "\"annotations\":[{\"id\":1,\"image_id\":9,\"category_id\":1,\"segmentation\":[[";
  for (size_t i = 0; i < 8; ++i) json += (i ? "," : "") + std::to_string(poly[i]);
  json += "]]},{\"id\":2,\"image_id\":9,\"category_id\":1,\"segmentation\":[]},"
          "{\"id\":3,\"image_id\":9,\"category_id\":1,\"bbox\":[99990,59990,20,20]}],"
          "\"categories\":[{\"id\":1,\"name\":\"x\"}]}";
  io::LoadOptions opt;
  opt.max_pixels = 0;
  const io::CocoDataset src = io::parse_coco(json, "huge.json", opt);
  // Strict: the empty polygon list names its annotation.
  try {
    slice::slice_dataset(src, config(1024, 0.0, 0.0, 0.0), 1, true);
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), "empty_segmentation");
    EXPECT_NE(std::string(e.what()).find("annotation id 2"), std::string::npos) << e.what();
  }
  const slice::SlicedDataset out = slice::slice_dataset(src, config(1024, 0.0, 0.0, 0.0), 1, true, ErrorPolicy::kSkip);
  EXPECT_EQ(out.dataset.skipped.count("empty_segmentation"), 1u);
  // A 400 x 500 px frame at (90000, 50000) holds the polygon with margin.
  const double frame_x = 90000, frame_y = 50000;
  double local[8];
  for (size_t i = 0; i < 8; i += 2) {
    local[i] = poly[i] - frame_x;
    local[i + 1] = poly[i + 1] - frame_y;
  }
  const mask::Rle whole = mask::from_polygon(local, 8, 500, 400);
  uint64_t sum = 0;
  size_t polys = 0, boxes = 0;
  for (size_t i = 0; i < out.dataset.annotations.size(); ++i) {
    const auto& a = out.dataset.annotations[i];
    const Window& w = out.views[a.image_index].window;
    if (a.seg_kind == SegmentationKind::kNone) {
      ++boxes;  // the box in the bottom-right corner: windows shifted back inside
      EXPECT_EQ(w.x + w.width, 100000);
      EXPECT_EQ(w.y + w.height, 60000);
      EXPECT_EQ(a.bbox, (std::array<double, 4>{w.width - 10.0, w.height - 10.0, 10, 10}));
      continue;
    }
    ++polys;
    const mask::Rle got = slicetest::cut_mask(out.dataset, a);
    EXPECT_EQ(got, mask::crop(whole, int(w.x - 90000), int(w.y - 50000), uint32_t(w.width), uint32_t(w.height)));
    sum += mask::area(got);
  }
  // 1024-px slices without overlap: x windows ..., 89088, 90112 (the
  // polygon spans 90080..90301), y windows 49152, 50176 (it spans 50100..50401).
  EXPECT_EQ(polys, 4u);
  EXPECT_EQ(boxes, 1u);
  EXPECT_EQ(sum, mask::area(whole));
}
