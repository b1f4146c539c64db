// Unit and property tests of the RLE codec: round trips on random masks,
// pixelwise references for merge / IoU / crop / translate / bbox, and
// malformed input. The pycocotools oracle itself is in golden_edge_test.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "pasteflow/mask/coco_mask.hpp"
#include "pasteflow/mask/rle.hpp"

namespace pm = pasteflow::mask;
using pasteflow::InputError;
using pasteflow::Span;

namespace {

// A row-major 0/1 image.
struct Image {
  uint32_t h = 0, w = 0;
  std::vector<uint8_t> px;
  uint8_t at(int64_t x, int64_t y) const {
    if (x < 0 || y < 0 || x >= w || y >= h) return 0;
    return px[static_cast<size_t>(y) * w + static_cast<size_t>(x)];
  }
};

// Random masks of several kinds: noise, blobs (rectangles), empty, full.
Image random_image(std::mt19937& rng, uint32_t max_side = 40) {
  std::uniform_int_distribution<uint32_t> side(1, max_side);
  Image im;
  im.h = side(rng);
  im.w = side(rng);
  im.px.assign(static_cast<size_t>(im.h) * im.w, 0);
  const int kind = std::uniform_int_distribution<int>(0, 5)(rng);
  if (kind == 0) {
    std::bernoulli_distribution b(0.3);
    for (auto& p : im.px) p = b(rng);
  } else if (kind <= 3) {
    const int n = std::uniform_int_distribution<int>(1, 4)(rng);
    for (int k = 0; k < n; ++k) {
      const uint32_t x0 = std::uniform_int_distribution<uint32_t>(0, im.w - 1)(rng);
      const uint32_t y0 = std::uniform_int_distribution<uint32_t>(0, im.h - 1)(rng);
      const uint32_t x1 = std::uniform_int_distribution<uint32_t>(x0, im.w - 1)(rng);
      const uint32_t y1 = std::uniform_int_distribution<uint32_t>(y0, im.h - 1)(rng);
      for (uint32_t y = y0; y <= y1; ++y)
        for (uint32_t x = x0; x <= x1; ++x) im.px[y * im.w + x] = 1;
    }
  } else if (kind == 5) {
    std::fill(im.px.begin(), im.px.end(), 1);
  }  // kind 4: empty
  return im;
}

// Column-major runs written the obvious way (the reference for encode).
std::vector<uint32_t> naive_runs(const Image& im) {
  std::vector<uint32_t> runs;
  uint8_t cur = 0;
  uint32_t n = 0;
  for (uint32_t x = 0; x < im.w; ++x) {
    for (uint32_t y = 0; y < im.h; ++y) {
      const uint8_t v = im.at(x, y);
      if (v != cur) {
        runs.push_back(n);
        n = 0;
        cur = v;
      }
      ++n;
    }
  }
  runs.push_back(n);
  return runs;
}

pm::Rle enc(const Image& im) { return pm::encode(im.px.data(), im.h, im.w, im.w); }

// from_counts of a temporary (Span binds to lvalues only).
pm::Rle fc(std::vector<uint32_t> counts, uint32_t h, uint32_t w) { return pm::from_counts(counts, h, w); }

Image dec(const pm::Rle& r) { return Image{r.h, r.w, pm::decode(r)}; }

template <typename F>
void expect_reason(F&& f, const std::string& reason) {
  try {
    f();
    ADD_FAILURE() << "no exception, expected " << reason;
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), reason) << e.what();
  }
}

}  // namespace

// ------------------------------------------------------------- round trips

TEST(MaskRle, EncodeMatchesNaiveColumnMajorRuns) {
  std::mt19937 rng(1);
  for (int it = 0; it < 500; ++it) {
    const Image im = random_image(rng, it < 50 ? 200 : 40);
    const pm::Rle r = enc(im);
    ASSERT_EQ(r.counts, naive_runs(im)) << it;
    EXPECT_EQ(r.h, im.h);
    EXPECT_EQ(r.w, im.w);
  }
}

TEST(MaskRle, DecodeEncodeAndStringRoundTrips) {
  std::mt19937 rng(2);
  for (int it = 0; it < 500; ++it) {
    const Image im = random_image(rng);
    const pm::Rle r = enc(im);
    EXPECT_EQ(pm::decode(r), im.px) << it;
    EXPECT_EQ(enc(dec(r)), r) << it;
    const std::string s = pm::to_string(r);
    for (char c : s) ASSERT_TRUE(c >= 48 && c <= 111);
    EXPECT_EQ(pm::from_string(s, r.h, r.w), r) << it;
  }
}

TEST(MaskRle, StringRoundTripOfLargeAndIrregularCounts) {
  // Counts spanning many magnitudes, zero runs in the middle, and
  // decreasing counts (negative differences in the string).
  std::mt19937 rng(3);
  for (int it = 0; it < 300; ++it) {
    std::vector<uint32_t> counts;
    uint64_t sum = 0;
    const int n = std::uniform_int_distribution<int>(1, 30)(rng);
    for (int k = 0; k < n; ++k) {
      const int bits = std::uniform_int_distribution<int>(0, 26)(rng);
      const uint32_t c = static_cast<uint32_t>(rng() & ((1u << bits) - 1));
      counts.push_back(c);
      sum += c;
    }
    pm::Rle r;
    r.h = 1;
    r.w = static_cast<uint32_t>(sum);
    r.counts = counts;
    EXPECT_EQ(pm::from_string(pm::to_string(r), r.h, r.w), r) << it;
  }
}

TEST(MaskRle, KnownStrings) {
  // A 3x3 all-zero mask is one run of 9: character 48 + 9.
  EXPECT_EQ(pm::to_string(pm::empty(3, 3)), "9");
  // Counts [0, 9]: "0" then "9".
  const pm::Rle full = fc(std::vector<uint32_t>{0, 9}, 3, 3);
  EXPECT_EQ(pm::to_string(full), "09");
  // 40 needs two characters: 40 = 8 + 32 -> (8 | 0x20) + 48 = 'X', then 1 + 48 = '1'.
  EXPECT_EQ(pm::to_string(pm::empty(5, 8)), "X1");
  EXPECT_EQ(pm::from_string("X1", 5, 8), pm::empty(5, 8));
}

TEST(MaskRle, DecodeIntoStridedBuffer) {
  std::mt19937 rng(4);
  for (int it = 0; it < 100; ++it) {
    const Image im = random_image(rng);
    const pm::Rle r = enc(im);
    const size_t stride = im.w + 7;
    std::vector<uint8_t> buf(stride * im.h, 0xAB);
    pm::decode_into(r, buf.data(), stride);
    for (uint32_t y = 0; y < im.h; ++y) {
      for (uint32_t x = 0; x < im.w; ++x) ASSERT_EQ(buf[y * stride + x], im.at(x, y));
      for (size_t x = im.w; x < stride; ++x) ASSERT_EQ(buf[y * stride + x], 0xAB);  // padding kept
    }
    // encode reads through the stride too, and treats any nonzero as 1.
    std::uniform_int_distribution<int> nonzero(1, 255);
    for (auto& b : buf) b = b ? static_cast<uint8_t>(nonzero(rng)) : 0;
    EXPECT_EQ(pm::encode(buf.data(), im.h, im.w, stride), r);
  }
}

TEST(MaskRle, EmptyCanvas) {
  const pm::Rle r = pm::encode(nullptr, 0, 5, 5);
  EXPECT_EQ(r.counts, std::vector<uint32_t>{0});
  EXPECT_TRUE(pm::decode(r).empty());
  EXPECT_EQ(pm::area(r), 0u);
  EXPECT_EQ(pm::bbox(r), (std::array<double, 4>{0, 0, 0, 0}));
  const double xy[6] = {0, 0, 3, 0, 3, 3};
  EXPECT_EQ(pm::from_polygon(xy, 6, 0, 5).counts, std::vector<uint32_t>{0});
}

// --------------------------------------------------------------- measuring

TEST(MaskRle, AreaAndBboxAgainstPixels) {
  std::mt19937 rng(5);
  for (int it = 0; it < 500; ++it) {
    const Image im = random_image(rng);
    const pm::Rle r = enc(im);
    uint64_t n = 0;
    int64_t x0 = im.w, y0 = im.h, x1 = -1, y1 = -1;
    bool wraps = false;  // a run of ones continues from (x, h-1) to (x+1, 0)
    for (uint32_t y = 0; y < im.h; ++y) {
      for (uint32_t x = 0; x < im.w; ++x) {
        if (!im.at(x, y)) continue;
        ++n;
        x0 = std::min<int64_t>(x0, x);
        x1 = std::max<int64_t>(x1, x);
        y0 = std::min<int64_t>(y0, y);
        y1 = std::max<int64_t>(y1, y);
        if (y == im.h - 1 && im.at(x + 1, 0)) wraps = true;
      }
    }
    EXPECT_EQ(pm::area(r), n);
    std::array<double, 4> expect{0, 0, 0, 0};
    if (n > 0) {
      if (wraps) {  // rleToBbox then spans the full height
        y0 = 0;
        y1 = im.h - 1;
      }
      expect = {double(x0), double(y0), double(x1 - x0 + 1), double(y1 - y0 + 1)};
    }
    EXPECT_EQ(pm::bbox(r), expect) << it;
  }
}

// ---------------------------------------------------------- merge and IoU

TEST(MaskRle, MergeMatchesPixelwise) {
  std::mt19937 rng(6);
  for (int it = 0; it < 300; ++it) {
    Image base = random_image(rng);
    std::vector<Image> ims{base};
    const int n = std::uniform_int_distribution<int>(2, 4)(rng);
    while (static_cast<int>(ims.size()) < n) {
      Image im = random_image(rng);
      // Same size as base: take pixels of another random image.
      Image same{base.h, base.w, std::vector<uint8_t>(base.px.size())};
      for (uint32_t y = 0; y < base.h; ++y)
        for (uint32_t x = 0; x < base.w; ++x) same.px[y * base.w + x] = im.at(x % im.w, y % im.h);
      ims.push_back(same);
    }
    std::vector<pm::Rle> rles;
    for (const auto& im : ims) rles.push_back(enc(im));
    Image uni = ims[0], inter = ims[0];
    for (size_t k = 1; k < ims.size(); ++k) {
      for (size_t p = 0; p < uni.px.size(); ++p) {
        uni.px[p] |= ims[k].px[p];
        inter.px[p] &= ims[k].px[p];
      }
    }
    EXPECT_EQ(pm::merge(rles, false), enc(uni)) << it;
    EXPECT_EQ(pm::merge(rles, true), enc(inter)) << it;

    // IoU of the first two against the pixels.
    uint64_t i = 0, u = 0, a0 = 0;
    for (size_t p = 0; p < base.px.size(); ++p) {
      i += ims[0].px[p] & ims[1].px[p];
      u += ims[0].px[p] | ims[1].px[p];
      a0 += ims[0].px[p];
    }
    const double expect = i == 0 ? 0.0 : double(i) / double(u);
    const double expect_crowd = i == 0 ? 0.0 : double(i) / double(a0);
    EXPECT_EQ(pm::iou(rles[0], rles[1], false), expect) << it;
    EXPECT_EQ(pm::iou(rles[0], rles[1], true), expect_crowd) << it;
    const auto m = pm::iou_matrix({rles[0]}, {rles[1], rles[1]}, {0, 1});
    ASSERT_EQ(m.size(), 2u);
    EXPECT_EQ(m[0], expect);
    EXPECT_EQ(m[1], expect_crowd);
  }
}

TEST(MaskRle, MergeEdgeCases) {
  EXPECT_EQ(pm::merge({}, false), pm::Rle{});
  const pm::Rle a = fc(std::vector<uint32_t>{2, 3, 4}, 3, 3);
  EXPECT_EQ(pm::merge({a}, true), a);
  // Non-canonical input (zero-length runs inside) still merges by pixels:
  // a has ones at 2..4, b at 3..5 (column-major).
  const pm::Rle b = fc(std::vector<uint32_t>{2, 0, 1, 3, 3}, 3, 3);
  EXPECT_EQ(pm::merge({a, b}, false).counts, (std::vector<uint32_t>{2, 4, 3}));
  const pm::Rle ab = pm::merge({a, b}, true);
  EXPECT_EQ(pm::decode(ab), pm::decode(fc({3, 2, 4}, 3, 3)));
  // rleMerge passes b's empty run through (traced by hand in maskApi.c).
  EXPECT_EQ(ab.counts, (std::vector<uint32_t>{2, 0, 1, 2, 4}));
  expect_reason([&] { pm::merge({a, pm::empty(3, 4)}, false); }, "rle_size_mismatch");
  pm::Rle bad = a;
  bad.counts.back() += 1;
  expect_reason([&] { pm::merge({a, bad}, false); }, "rle_sum");
}

TEST(MaskRle, IouSizeMismatchAndDisjoint) {
  const pm::Rle a = fc(std::vector<uint32_t>{0, 9}, 3, 3);
  const pm::Rle b = fc(std::vector<uint32_t>{0, 12}, 3, 4);
  EXPECT_EQ(pm::iou(a, b, false), -1.0);  // pycocotools: boxes overlap, sizes differ
  const pm::Rle left = fc(std::vector<uint32_t>{0, 3, 6}, 3, 3);
  const pm::Rle right = fc(std::vector<uint32_t>{6, 3}, 3, 3);
  EXPECT_EQ(pm::iou(left, right, false), 0.0);
  EXPECT_EQ(pm::iou(left, a, false), 1.0 / 3.0);
  EXPECT_EQ(pm::iou(left, a, true), 1.0);
  EXPECT_EQ(pm::iou(a, left, true), 1.0 / 3.0);
  EXPECT_THROW(pm::iou_matrix({a}, {a, a}, {1}), pasteflow::Error);
}

TEST(MaskRle, BoxIou) {
  const std::vector<std::array<double, 4>> dt{{0, 0, 10, 10}, {20, 20, 5, 5}};
  const std::vector<std::array<double, 4>> gt{{5, 5, 10, 10}, {0, 0, 10, 10}};
  const auto m = pm::box_iou_matrix(dt, gt, {});
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(m[0], 25.0 / 175.0);
  EXPECT_EQ(m[1], 1.0);
  EXPECT_EQ(m[2], 0.0);
  EXPECT_EQ(m[3], 0.0);
  const auto c = pm::box_iou_matrix(dt, gt, {1, 0});
  EXPECT_EQ(c[0], 25.0 / 100.0);  // crowd: over the dt box area
  EXPECT_EQ(c[1], 1.0);
  // Touching edges do not overlap.
  EXPECT_EQ(pm::box_iou_matrix({{0, 0, 5, 5}}, {{5, 0, 5, 5}}, {})[0], 0.0);
}

// ---------------------------------------------------------------- geometry

TEST(MaskRle, CropAndTranslateMatchNaive) {
  std::mt19937 rng(7);
  for (int it = 0; it < 1000; ++it) {
    const Image im = random_image(rng, 30);
    const pm::Rle r = enc(im);
    std::uniform_int_distribution<int> off(-40, 40);
    std::uniform_int_distribution<uint32_t> size(0, 45);
    const int x = off(rng), y = off(rng);
    const uint32_t w = size(rng), h = size(rng);

    Image expect{h, w, std::vector<uint8_t>(static_cast<size_t>(h) * w)};
    for (uint32_t yy = 0; yy < h; ++yy)
      for (uint32_t xx = 0; xx < w; ++xx) expect.px[yy * w + xx] = im.at(int64_t(x) + xx, int64_t(y) + yy);
    const pm::Rle c = pm::crop(r, x, y, w, h);
    ASSERT_EQ(c, enc(expect)) << it << " crop " << x << "," << y << " " << w << "x" << h;

    Image placed{h, w, std::vector<uint8_t>(static_cast<size_t>(h) * w)};
    for (uint32_t yy = 0; yy < h; ++yy)
      for (uint32_t xx = 0; xx < w; ++xx) placed.px[yy * w + xx] = im.at(int64_t(xx) - x, int64_t(yy) - y);
    ASSERT_EQ(pm::translate(r, x, y, h, w), enc(placed)) << it << " translate";
  }
}

TEST(MaskRle, CropExtremeOffsets) {
  const pm::Rle a = fc(std::vector<uint32_t>{0, 9}, 3, 3);
  const int lo = std::numeric_limits<int>::min(), hi = std::numeric_limits<int>::max();
  EXPECT_EQ(pm::crop(a, lo, lo, 4, 4), pm::empty(4, 4));
  EXPECT_EQ(pm::crop(a, hi, 0, 4, 4), pm::empty(4, 4));
  EXPECT_EQ(pm::translate(a, lo, lo, 4, 4), pm::empty(4, 4));
  EXPECT_EQ(pm::translate(a, 0, 0, 3, 3), a);
  EXPECT_EQ(pm::crop(a, 0, 0, 0, 0).counts, std::vector<uint32_t>{0});
}

// ---------------------------------------------------------------- polygons

TEST(MaskRle, IntegerBoxIsExact) {
  // rleFrBbox of an integer box covers exactly w x h pixels.
  const pm::Rle r = pm::from_bbox(2, 3, 4, 5, 20, 30);
  EXPECT_EQ(pm::area(r), 20u);
  EXPECT_EQ(pm::bbox(r), (std::array<double, 4>{2, 3, 4, 5}));
  // The same box as a polygon gives the same runs.
  const double xy[8] = {2, 3, 2, 8, 6, 8, 6, 3};
  EXPECT_EQ(pm::from_polygon(xy, 8, 20, 30), r);
}

TEST(MaskRle, PolygonsPartsAreUnited) {
  const std::vector<double> p1{1, 1, 6, 1, 6, 6, 1, 6}, p2{4, 4, 9, 4, 9, 9, 4, 9};
  const pm::Rle a = pm::from_polygon(p1.data(), p1.size(), 12, 12);
  const pm::Rle b = pm::from_polygon(p2.data(), p2.size(), 12, 12);
  const std::vector<Span<const double>> parts{Span<const double>(p1), Span<const double>(p2)};
  EXPECT_EQ(pm::from_polygons(parts, 12, 12), pm::merge({a, b}, false));
  EXPECT_EQ(pm::area(pm::from_polygons(parts, 12, 12)), 25u + 25u - 4u);
  EXPECT_EQ(pm::from_polygons({}, 12, 12), pm::empty(12, 12));
}

TEST(MaskRle, BadPolygons) {
  const double xy[8] = {1, 1, 5, 1, 5, 5, 1, 5};
  expect_reason([&] { pm::from_polygon(xy, 4, 10, 10); }, "short_polygon");  // a box to pycocotools
  expect_reason([&] { pm::from_polygon(xy, 2, 10, 10); }, "short_polygon");
  expect_reason([&] { pm::from_polygon(xy, 0, 10, 10); }, "short_polygon");
  expect_reason([&] { pm::from_polygon(xy, 7, 10, 10); }, "odd_polygon");
  const double nan[6] = {1, 1, std::nan(""), 1, 5, 5};
  expect_reason([&] { pm::from_polygon(nan, 6, 10, 10); }, "polygon_range");
  const double huge[6] = {1, 1, 1e300, 1, 5, 5};
  expect_reason([&] { pm::from_polygon(huge, 6, 10, 10); }, "polygon_range");
  // Repeated vertices (0/0 slope in the C code) are fine.
  const double rep[10] = {1, 1, 1, 1, 5, 1, 5, 5, 5, 5};
  EXPECT_EQ(pm::area(pm::from_polygon(rep, 10, 10, 10)), pm::area(pm::from_polygon(rep + 2, 8, 10, 10)));
}

// ----------------------------------------------------------- bad RLE input

TEST(MaskRle, MalformedStringsThrowBadRle) {
  expect_reason([] { pm::from_string("0P", 3, 3); }, "bad_rle");         // truncated continuation
  expect_reason([] { pm::from_string("9!", 3, 3); }, "bad_rle");         // char below 48
  expect_reason([] { pm::from_string("9~", 3, 3); }, "bad_rle");         // char above 111
  expect_reason([] { pm::from_string(std::string("9\0", 2), 3, 3); }, "bad_rle");  // NUL
  expect_reason([] { pm::from_string("9\xff", 3, 3); }, "bad_rle");
  expect_reason([] { pm::from_string(std::string(40, 'o'), 3, 3); }, "bad_rle");  // endless value
  expect_reason([] { pm::from_string("@", 3, 3); }, "bad_rle");           // negative count (-16)
  expect_reason([] { pm::from_string("ooooooo0", 3, 3); }, "bad_rle");    // 2^35-ish: beyond 32 bits
  expect_reason([] { pm::from_string("8", 3, 3); }, "rle_sum");           // 8 != 9
  expect_reason([] { pm::from_string("", 3, 3); }, "rle_sum");
  try {
    pm::from_string("99!", 3, 3);
  } catch (const InputError& e) {
    EXPECT_EQ(e.where().byte_offset, 2);
  }
}

TEST(MaskRle, GarbageStringsNeverCrash) {
  std::mt19937 rng(8);
  int ok = 0;
  for (int it = 0; it < 20000; ++it) {
    std::string s(std::uniform_int_distribution<int>(0, 12)(rng), '\0');
    const bool printable = it % 2 == 0;
    for (char& c : s) {
      c = printable ? static_cast<char>(std::uniform_int_distribution<int>(48, 111)(rng))
                    : static_cast<char>(std::uniform_int_distribution<int>(0, 255)(rng));
    }
    const uint32_t h = std::uniform_int_distribution<uint32_t>(0, 8)(rng);
    const uint32_t w = std::uniform_int_distribution<uint32_t>(0, 8)(rng);
    try {
      const pm::Rle r = pm::from_string(s, h, w);
      ++ok;
      // Whatever parses is a valid mask: it decodes and re-encodes.
      EXPECT_EQ(pm::decode(r).size(), size_t(h) * w);
      EXPECT_EQ(pm::from_string(pm::to_string(r), h, w), r);
    } catch (const InputError& e) {
      ASSERT_TRUE(e.reason() == "bad_rle" || e.reason() == "rle_sum") << e.reason();
    }
  }
  EXPECT_GT(ok, 0);
}

TEST(MaskRle, BadCountsThrowRleSum) {
  expect_reason([] { fc(std::vector<uint32_t>{4, 4}, 3, 3); }, "rle_sum");
  expect_reason([] { fc(std::vector<uint32_t>{}, 3, 3); }, "rle_sum");
  expect_reason([] { fc(std::vector<uint32_t>{0xFFFFFFFFu, 10}, 3, 3); }, "rle_sum");
  EXPECT_NO_THROW(fc(std::vector<uint32_t>{4, 5}, 3, 3));
  // Hand-made Rle with a bad sum: operations refuse instead of overrunning.
  pm::Rle bad;
  bad.h = 3;
  bad.w = 3;
  bad.counts = {0, 100};
  expect_reason([&] { pm::decode(bad); }, "rle_sum");
  expect_reason([&] { pm::crop(bad, 0, 0, 2, 2); }, "rle_sum");
  expect_reason([&] { pm::iou(bad, bad, false); }, "rle_sum");
}

// ------------------------------------------------------- COCO annotations

TEST(MaskCoco, AnnotationRleByKind) {
  pasteflow::io::CocoDataset ds;
  ds.source_path = "mem.json";
  // Two polygon parts.
  const std::vector<double> p1{1, 1, 6, 1, 6, 6, 1, 6}, p2{4, 4, 9, 4, 9, 9, 4, 9};
  ds.coords.insert(ds.coords.end(), p1.begin(), p1.end());
  ds.part_offsets.push_back(ds.coords.size());
  ds.coords.insert(ds.coords.end(), p2.begin(), p2.end());
  ds.part_offsets.push_back(ds.coords.size());
  pasteflow::io::AnnotationRecord poly;
  poly.id = 7;
  poly.seg_kind = pasteflow::io::SegmentationKind::kPolygons;
  poly.seg_begin = 0;
  poly.seg_count = 2;
  const std::vector<Span<const double>> parts{Span<const double>(p1), Span<const double>(p2)};
  EXPECT_EQ(pm::annotation_rle(ds, poly, 12, 12), pm::from_polygons(parts, 12, 12));

  // Uncompressed counts use their own size.
  ds.rle_counts = {2, 3, 1};
  pasteflow::io::AnnotationRecord cnt;
  cnt.id = 8;
  cnt.seg_kind = pasteflow::io::SegmentationKind::kRleCounts;
  cnt.rle_height = 2;
  cnt.rle_width = 3;
  cnt.seg_begin = 0;
  cnt.seg_count = 3;
  EXPECT_EQ(pm::annotation_rle(ds, cnt, 99, 99), fc(std::vector<uint32_t>{2, 3, 1}, 2, 3));

  // Compressed string.
  ds.strings = "xx231";
  pasteflow::io::AnnotationRecord str;
  str.id = 9;
  str.seg_kind = pasteflow::io::SegmentationKind::kRleString;
  str.rle_height = 2;
  str.rle_width = 3;
  str.seg_begin = 2;
  str.seg_count = 3;
  EXPECT_EQ(pm::annotation_rle(ds, str, 99, 99), fc(std::vector<uint32_t>{2, 3, 1}, 2, 3));

  // Errors carry the file and the annotation id.
  cnt.rle_width = 4;
  try {
    pm::annotation_rle(ds, cnt, 2, 4);
    ADD_FAILURE();
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), "rle_sum");
    EXPECT_EQ(e.where().file, "mem.json");
    EXPECT_EQ(e.where().record, "annotation id 8");
  }
  pasteflow::io::AnnotationRecord none;
  expect_reason([&] { pm::annotation_rle(ds, none, 5, 5); }, "no_segmentation");
  poly.seg_count = 0;
  expect_reason([&] { pm::annotation_rle(ds, poly, 5, 5); }, "empty_segmentation");
  // A 4-number part.
  ds.coords.insert(ds.coords.end(), {1, 1, 5, 5});
  ds.part_offsets.push_back(ds.coords.size());
  poly.seg_begin = 2;
  poly.seg_count = 1;
  expect_reason([&] { pm::annotation_rle(ds, poly, 5, 5); }, "short_polygon");
}
