// The SAHI grid: exact windows against SAHI's get_slice_bboxes (expected
// lists computed once with a line-for-line python3 re-implementation of
// sahi/slicing.py get_slice_bboxes, written below in the comments), and
// grid properties.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "pasteflow/core/error.hpp"
#include "pasteflow/slice/slice.hpp"

using namespace pasteflow;
using slice::Window;

namespace {

// SAHI returns [xmin, ymin, xmax, ymax]; ours is [x, y, w, h].
std::vector<std::array<int64_t, 4>> as_xyxy(const std::vector<Window>& ws) {
  std::vector<std::array<int64_t, 4>> out;
  for (const Window& w : ws) out.push_back({w.x, w.y, w.x + w.width, w.y + w.height});
  return out;
}

using Boxes = std::vector<std::array<int64_t, 4>>;

}  // namespace

// def sahi(H, W, sh, sw, oh, ow):
//     out = []; ymax = ymin = 0; yo = int(oh * sh); xo = int(ow * sw)
//     while ymax < H:
//         xmin = xmax = 0; ymax = ymin + sh
//         while xmax < W:
//             xmax = xmin + sw
//             if ymax > H or xmax > W:
//                 xm = min(W, xmax); ym = min(H, ymax)
//                 out.append([max(0, xm - sw), max(0, ym - sh), xm, ym])
//             else: out.append([xmin, ymin, xmax, ymax])
//             xmin = xmax - xo
//         ymin = ymax - yo
//     return out
TEST(SliceGrid, MatchesSahi427x640At256) {
  // sahi(427, 640, 256, 256, 0.2, 0.2): overlap int(51.2) = 51, step 205.
  const Boxes expected = {{0, 0, 256, 256},     {205, 0, 461, 256},   {384, 0, 640, 256},
                          {0, 171, 256, 427},   {205, 171, 461, 427}, {384, 171, 640, 427}};
  EXPECT_EQ(as_xyxy(slice::grid(640, 427, 256, 256, 0.2)), expected);
}

TEST(SliceGrid, MatchesSahi1000At512) {
  // sahi(1000, 1000, 512, 512, 0.2, 0.2)
  const Boxes expected = {{0, 0, 512, 512},     {410, 0, 922, 512},     {488, 0, 1000, 512},
                          {0, 410, 512, 922},   {410, 410, 922, 922},   {488, 410, 1000, 922},
                          {0, 488, 512, 1000},  {410, 488, 922, 1000},  {488, 488, 1000, 1000}};
  EXPECT_EQ(as_xyxy(slice::grid(1000, 1000, 512, 512, 0.2)), expected);
}

TEST(SliceGrid, MatchesSahiSmallerThanASlice) {
  // sahi(300, 200, 512, 512, 0.2, 0.2) = [[0, 0, 200, 300]];
  // sahi(1024, 1024, 1024, 1024, 0.2, 0.2) = [[0, 0, 1024, 1024]]
  EXPECT_EQ(as_xyxy(slice::grid(200, 300, 512, 512, 0.2)), (Boxes{{0, 0, 200, 300}}));
  EXPECT_EQ(as_xyxy(slice::grid(1024, 1024, 1024, 1024, 0.2)), (Boxes{{0, 0, 1024, 1024}}));
}

TEST(SliceGrid, MatchesSahiHalfOverlap) {
  // sahi(100, 130, 64, 64, 0.5, 0.5)
  const Boxes expected = {{0, 0, 64, 64},    {32, 0, 96, 64},    {64, 0, 128, 64},   {66, 0, 130, 64},
                          {0, 32, 64, 96},   {32, 32, 96, 96},   {64, 32, 128, 96},  {66, 32, 130, 96},
                          {0, 36, 64, 100},  {32, 36, 96, 100},  {64, 36, 128, 100}, {66, 36, 130, 100}};
  EXPECT_EQ(as_xyxy(slice::grid(130, 100, 64, 64, 0.5)), expected);
}

TEST(SliceGrid, MatchesSahiTruncatedOverlap) {
  // sahi(50, 90, 32, 32, 0.9, 0.9): int(28.8) = 28, step 4; x positions
  // 0, 4, ..., 56 then the last one shifted back to 58; y: 0, 4, ..., 16, 18.
  const std::vector<Window> g = slice::grid(90, 50, 32, 32, 0.9);
  ASSERT_EQ(g.size(), 16u * 6u);
  std::vector<int64_t> xs, ys;
  for (size_t i = 0; i < 16; ++i) xs.push_back(g[i].x);
  for (size_t r = 0; r < 6; ++r) ys.push_back(g[r * 16].y);
  EXPECT_EQ(xs, (std::vector<int64_t>{0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 58}));
  EXPECT_EQ(ys, (std::vector<int64_t>{0, 4, 8, 12, 16, 18}));
  for (const Window& w : g) {
    EXPECT_EQ(w.width, 32);
    EXPECT_EQ(w.height, 32);
  }
}

TEST(SliceGrid, MatchesSahiNoOverlap) {
  // sahi(96, 96, 32, 32, 0, 0): a 3 x 3 tiling.
  const Boxes expected = {{0, 0, 32, 32},  {32, 0, 64, 32},  {64, 0, 96, 32},  {0, 32, 32, 64}, {32, 32, 64, 64},
                          {64, 32, 96, 64}, {0, 64, 32, 96}, {32, 64, 64, 96}, {64, 64, 96, 96}};
  EXPECT_EQ(as_xyxy(slice::grid(96, 96, 32, 32, 0.0)), expected);
}

TEST(SliceGrid, PropertiesOverManySizes) {
  // Windows inside the image, every pixel covered, full slice size when the
  // image is at least a slice along that axis, rows of equal length.
  for (int64_t W : {1, 15, 16, 17, 256, 257, 640, 1031}) {
    for (int64_t H : {1, 99, 427, 512}) {
      for (int64_t s : {16, 64, 300}) {
        for (double ov : {0.0, 0.2, 0.33, 0.5, 0.95}) {
          const std::vector<Window> g = slice::grid(W, H, s, s, ov);
          ASSERT_FALSE(g.empty());
          // Coverage counted with a 2-D difference array (O(windows + pixels)).
          std::vector<int64_t> diff(static_cast<size_t>((W + 1) * (H + 1)), 0);
          auto at = [&](int64_t x, int64_t y) -> int64_t& { return diff[static_cast<size_t>(y * (W + 1) + x)]; };
          for (const Window& w : g) {
            ASSERT_GE(w.x, 0);
            ASSERT_GE(w.y, 0);
            ASSERT_LE(w.x + w.width, W);
            ASSERT_LE(w.y + w.height, H);
            ASSERT_EQ(w.width, std::min(W, s)) << W << " " << H << " " << s << " " << ov;
            ASSERT_EQ(w.height, std::min(H, s));
            ++at(w.x, w.y);
            --at(w.x + w.width, w.y);
            --at(w.x, w.y + w.height);
            ++at(w.x + w.width, w.y + w.height);
          }
          for (int64_t y = 0; y <= H; ++y) {
            for (int64_t x = 0; x <= W; ++x) {
              if (x > 0) at(x, y) += at(x - 1, y);
            }
          }
          for (int64_t y = 1; y <= H; ++y) {
            for (int64_t x = 0; x <= W; ++x) at(x, y) += at(x, y - 1);
          }
          for (int64_t y = 0; y < H; ++y) {
            for (int64_t x = 0; x < W; ++x) {
              ASSERT_GE(at(x, y), 1) << W << "x" << H << " slice " << s << " overlap " << ov << " at " << x << "," << y;
            }
          }
          // Neighbours overlap by at least int(ov * s) px (except the shifted last one: more).
          const int64_t ovpx = static_cast<int64_t>(ov * static_cast<double>(s));
          for (size_t i = 1; i < g.size(); ++i) {
            if (g[i].y == g[i - 1].y && W > s) {
              ASSERT_GE(g[i - 1].x + g[i - 1].width - g[i].x, ovpx);
            }
          }
        }
      }
    }
  }
}

TEST(SliceGrid, BadArgumentsAreConfigErrors) {
  EXPECT_THROW(slice::grid(100, 100, 0, 10, 0.2), ConfigError);
  EXPECT_THROW(slice::grid(100, 100, 10, 10, 1.0), ConfigError);
  EXPECT_THROW(slice::grid(100, 100, 10, 10, -0.1), ConfigError);
  EXPECT_THROW(slice::grid(100, 100, 10, 10, std::nan("")), ConfigError);
  EXPECT_TRUE(slice::grid(0, 100, 10, 10, 0.2).empty());  // as SAHI: no window
}

TEST(SliceConfig, ValidateNamesTheKey) {
  slice::SliceConfig c;
  EXPECT_NO_THROW(slice::validate(c));
  auto key_of = [](const slice::SliceConfig& bad) -> std::string {
    try {
      slice::validate(bad);
    } catch (const ConfigError& e) {
      return e.where().key;
    }
    return "";
  };
  c.size = 8;
  EXPECT_EQ(key_of(c), "slice.size");
  c = {};
  c.overlap = 0.96;
  EXPECT_EQ(key_of(c), "slice.overlap");
  c = {};
  c.min_area_ratio = std::nan("");
  EXPECT_EQ(key_of(c), "slice.min_area_ratio");
  c = {};
  c.keep_empty = 1.5;
  EXPECT_EQ(key_of(c), "slice.keep_empty");
  c = {};
  c.above = -1;
  EXPECT_EQ(key_of(c), "slice.above");
}
