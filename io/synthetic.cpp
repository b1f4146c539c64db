// Synthetic COCO instances file with the field layout of the real
// instances_train2017.json, streamed to disk.
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "pasteflow/io/bench.hpp"

namespace pasteflow::io {
namespace {

struct Category {
  int id;
  const char* name;
  const char* supercategory;
};

// COCO 2017's 80 categories (ids 1..90 with gaps).
const Category kCategories[] = {
    {1, "person", "person"},
    {2, "bicycle", "vehicle"},
    {3, "car", "vehicle"},
    {4, "motorcycle", "vehicle"},
    {5, "airplane", "vehicle"},
    {6, "bus", "vehicle"},
    {7, "train", "vehicle"},
    {8, "truck", "vehicle"},
    {9, "boat", "vehicle"},
    {10, "traffic light", "outdoor"},
    {11, "fire hydrant", "outdoor"},
    {13, "stop sign", "outdoor"},
    {14, "parking meter", "outdoor"},
    {15, "bench", "outdoor"},
    {16, "bird", "animal"},
    {17, "cat", "animal"},
    {18, "dog", "animal"},
    {19, "horse", "animal"},
    {20, "sheep", "animal"},
    {21, "cow", "animal"},
    {22, "elephant", "animal"},
    {23, "bear", "animal"},
    {24, "zebra", "animal"},
    {25, "giraffe", "animal"},
    {27, "backpack", "accessory"},
    {28, "umbrella", "accessory"},
    {31, "handbag", "accessory"},
    {32, "tie", "accessory"},
    {33, "suitcase", "accessory"},
    {34, "frisbee", "sports"},
    {35, "skis", "sports"},
    {36, "snowboard", "sports"},
    {37, "sports ball", "sports"},
    {38, "kite", "sports"},
    {39, "baseball bat", "sports"},
    {40, "baseball glove", "sports"},
    {41, "skateboard", "sports"},
    {42, "surfboard", "sports"},
    {43, "tennis racket", "sports"},
    {44, "bottle", "kitchen"},
    {46, "wine glass", "kitchen"},
    {47, "cup", "kitchen"},
    {48, "fork", "kitchen"},
    {49, "knife", "kitchen"},
    {50, "spoon", "kitchen"},
    {51, "bowl", "kitchen"},
    {52, "banana", "food"},
    {53, "apple", "food"},
    {54, "sandwich", "food"},
    {55, "orange", "food"},
    {56, "broccoli", "food"},
    {57, "carrot", "food"},
    {58, "hot dog", "food"},
    {59, "pizza", "food"},
    {60, "donut", "food"},
    {61, "cake", "food"},
    {62, "chair", "furniture"},
    {63, "couch", "furniture"},
    {64, "potted plant", "furniture"},
    {65, "bed", "furniture"},
    {67, "dining table", "furniture"},
    {70, "toilet", "furniture"},
    {72, "tv", "electronic"},
    {73, "laptop", "electronic"},
    {74, "mouse", "electronic"},
    {75, "remote", "electronic"},
    {76, "keyboard", "electronic"},
    {77, "cell phone", "electronic"},
    {78, "microwave", "appliance"},
    {79, "oven", "appliance"},
    {80, "toaster", "appliance"},
    {81, "sink", "appliance"},
    {82, "refrigerator", "appliance"},
    {84, "book", "indoor"},
    {85, "clock", "indoor"},
    {86, "vase", "indoor"},
    {87, "scissors", "indoor"},
    {88, "teddy bear", "indoor"},
    {89, "hair drier", "indoor"},
    {90, "toothbrush", "indoor"}
};

const char* const kInfo = "{\"description\": \"COCO 2017 Dataset\", \"url\": \"http://cocodataset.org\", \"version\": \"1.0\", \"year\": 2017, \"contributor\": \"COCO Consortium\", \"date_created\": \"2017/09/01\"}";
const char* const kLicenses = "[{\"url\": \"http://creativecommons.org/licenses/by-nc-sa/2.0/\", \"id\": 1, \"name\": \"Attribution-NonCommercial-ShareAlike License\"}, {\"url\": \"http://creativecommons.org/licenses/by-nc/2.0/\", \"id\": 2, \"name\": \"Attribution-NonCommercial License\"}, {\"url\": \"http://creativecommons.org/licenses/by-nc-nd/2.0/\", \"id\": 3, \"name\": \"Attribution-NonCommercial-NoDerivs License\"}, {\"url\": \"http://creativecommons.org/licenses/by/2.0/\", \"id\": 4, \"name\": \"Attribution License\"}, {\"url\": \"http://creativecommons.org/licenses/by-sa/2.0/\", \"id\": 5, \"name\": \"Attribution-ShareAlike License\"}, {\"url\": \"http://creativecommons.org/licenses/by-nd/2.0/\", \"id\": 6, \"name\": \"Attribution-NoDerivs License\"}, {\"url\": \"http://flickr.com/commons/usage/\", \"id\": 7, \"name\": \"No known copyright restrictions\"}, {\"url\": \"http://www.usa.gov/copyright.shtml\", \"id\": 8, \"name\": \"United States Government Work\"}]";

/// splitmix64: small, fast, deterministic.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, n).
  uint64_t below(uint64_t n) { return n ? next() % n : 0; }
  double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }
  bool chance(double p) { return uniform() < p; }

 private:
  uint64_t s_;
};

class Out {
 public:
  Out(std::FILE* f, const std::string& path) : f_(f), path_(path) { s_.reserve(kFlush + 65536); }
  std::string& s() { return s_; }
  void maybe_flush() {
    if (s_.size() >= kFlush) flush();
  }
  void flush() {
    if (!s_.empty() && std::fwrite(s_.data(), 1, s_.size(), f_) != s_.size()) {
      Location loc;
      loc.file = path_;
      throw Error("io_error", std::string("write failed: ") + std::strerror(errno), loc);
    }
    s_.clear();
  }

 private:
  static constexpr size_t kFlush = size_t(8) << 20;
  std::FILE* f_;
  std::string path_;
  std::string s_;
};

void put_int(std::string& o, int64_t v) {
  char b[24];
  const auto r = std::to_chars(b, b + sizeof b, v);
  o.append(b, static_cast<size_t>(r.ptr - b));
}

/// A value in hundredths printed like Python's repr of round(x, 2):
/// 15059 -> "150.59", 16430 -> "164.3", 41000 -> "410.0".
void put_cents(std::string& o, int64_t cents) {
  if (cents < 0) {
    o += '-';
    cents = -cents;
  }
  put_int(o, cents / 100);
  const int64_t f = cents % 100;
  o += '.';
  if (f % 10 == 0) {
    o += static_cast<char>('0' + f / 10);
  } else {
    o += static_cast<char>('0' + f / 10);
    o += static_cast<char>('0' + f % 10);
  }
}

void put_double(std::string& o, double v) {
  char b[32];
  const auto r = std::to_chars(b, b + sizeof b, v);
  o.append(b, static_cast<size_t>(r.ptr - b));
  if (std::memchr(b, '.', static_cast<size_t>(r.ptr - b)) == nullptr &&
      std::memchr(b, 'e', static_cast<size_t>(r.ptr - b)) == nullptr) {
    o += ".0";
  }
}

void put_padded(std::string& o, uint64_t v, int width) {
  char b[24];
  const auto r = std::to_chars(b, b + sizeof b, v);
  const int n = static_cast<int>(r.ptr - b);
  for (int i = n; i < width; ++i) o += '0';
  o.append(b, static_cast<size_t>(n));
}

struct ImageSize {
  int w, h;
};
const ImageSize kSizes[] = {{640, 480}, {480, 640}, {640, 427}, {427, 640}, {640, 426}, {500, 375},
                            {640, 360}, {375, 500}, {640, 512}, {612, 612}, {640, 640}, {640, 425}};

}  // namespace

void generate_synthetic_coco(const std::string& path, const SyntheticCocoOptions& opt) {
  if (opt.min_vertices < 3 || opt.max_vertices < opt.min_vertices || opt.max_parts < 1 ||
      opt.crowd_min_runs < 1 || opt.crowd_max_runs < opt.crowd_min_runs) {
    throw Error("bad_value", "synthetic COCO options: need 3 <= min_vertices <= max_vertices, max_parts >= 1, "
                             "1 <= crowd_min_runs <= crowd_max_runs");
  }
  if (opt.images == 0 && opt.annotations > 0) {
    throw Error("bad_value", "synthetic COCO options: annotations need at least one image");
  }
  Rng rng(opt.seed);
  // Image ids: increasing with random gaps (unique), written in shuffled order.
  std::vector<int64_t> image_ids(opt.images);
  std::vector<uint8_t> size_of(opt.images);
  int64_t next_id = 0;
  for (size_t i = 0; i < opt.images; ++i) {
    next_id += 1 + static_cast<int64_t>(rng.below(9));
    image_ids[i] = next_id;
    size_of[i] = static_cast<uint8_t>(rng.below(sizeof kSizes / sizeof kSizes[0]));
  }
  std::vector<uint32_t> order(opt.images);
  for (size_t i = 0; i < opt.images; ++i) order[i] = static_cast<uint32_t>(i);
  for (size_t i = opt.images; i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);

  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) {
    Location loc;
    loc.file = tmp;
    throw Error("io_error", std::string("cannot create file: ") + std::strerror(errno), loc);
  }
  try {
    Out out(f, tmp);
    std::string& o = out.s();
    o += "{\"info\": ";
    o += kInfo;
    o += ", \"licenses\": ";
    o += kLicenses;
    o += ", \"images\": [";
    for (size_t k = 0; k < opt.images; ++k) {
      const size_t i = order[k];
      const ImageSize sz = kSizes[size_of[i]];
      if (k) o += ", ";
      o += "{\"license\": ";
      put_int(o, 1 + static_cast<int64_t>(rng.below(8)));
      o += ", \"file_name\": \"";
      put_padded(o, static_cast<uint64_t>(image_ids[i]), 12);
      o += ".jpg\", \"coco_url\": \"http://images.cocodataset.org/train2017/";
      put_padded(o, static_cast<uint64_t>(image_ids[i]), 12);
      o += ".jpg\", \"height\": ";
      put_int(o, sz.h);
      o += ", \"width\": ";
      put_int(o, sz.w);
      o += ", \"date_captured\": \"2013-";
      put_padded(o, 1 + rng.below(12), 2);
      o += '-';
      put_padded(o, 1 + rng.below(28), 2);
      o += ' ';
      put_padded(o, rng.below(24), 2);
      o += ':';
      put_padded(o, rng.below(60), 2);
      o += ':';
      put_padded(o, rng.below(60), 2);
      o += "\", \"flickr_url\": \"http://farm";
      put_int(o, 1 + static_cast<int64_t>(rng.below(9)));
      o += ".staticflickr.com/";
      put_int(o, 1000 + static_cast<int64_t>(rng.below(9000)));
      o += '/';
      put_int(o, 1000000000 + static_cast<int64_t>(rng.below(9000000000ULL)));
      o += '_';
      static const char* const kHex = "0123456789abcdef";
      for (int h = 0; h < 10; ++h) o += kHex[rng.below(16)];
      o += "_z.jpg\", \"id\": ";
      put_int(o, image_ids[i]);
      o += '}';
      out.maybe_flush();
    }
    o += "], \"annotations\": [";
    std::vector<int64_t> xs, ys;
    std::vector<uint64_t> cuts;
    const size_t n_cat = sizeof kCategories / sizeof kCategories[0];
    int64_t ann_id = 0;
    for (size_t j = 0; j < opt.annotations; ++j) {
      const size_t im = static_cast<size_t>(rng.below(opt.images));
      const ImageSize sz = kSizes[size_of[im]];
      const int cat = kCategories[rng.below(n_cat)].id;
      const bool crowd = rng.chance(opt.crowd_fraction);
      if (j) o += ", ";
      o += "{\"segmentation\": ";
      double area = 0;
      int64_t bx0 = 0, by0 = 0, bx1 = 0, by1 = 0;  // bbox in cents (polygons) or pixels (crowd)
      if (crowd) {
        // Uncompressed RLE: column-major runs, background first, summing to h*w.
        const uint64_t total = static_cast<uint64_t>(sz.w) * static_cast<uint64_t>(sz.h);
        const uint64_t runs = static_cast<uint64_t>(opt.crowd_min_runs) +
                              rng.below(static_cast<uint64_t>(opt.crowd_max_runs - opt.crowd_min_runs + 1));
        cuts.clear();
        for (uint64_t r = 0; r + 1 < runs; ++r) cuts.push_back(rng.below(total + 1));
        cuts.push_back(0);
        cuts.push_back(total);
        std::sort(cuts.begin(), cuts.end());
        o += "{\"counts\": [";
        uint64_t fg = 0;
        int64_t minx = sz.w, miny = sz.h, maxx = -1, maxy = -1;
        for (size_t r = 0; r + 1 < cuts.size(); ++r) {
          const uint64_t s = cuts[r], e = cuts[r + 1];
          if (r) o += ", ";
          put_int(o, static_cast<int64_t>(e - s));
          if ((r & 1) && e > s) {
            fg += e - s;
            const int64_t x0 = static_cast<int64_t>(s / static_cast<uint64_t>(sz.h));
            const int64_t x1 = static_cast<int64_t>((e - 1) / static_cast<uint64_t>(sz.h));
            minx = std::min(minx, x0);
            maxx = std::max(maxx, x1);
            if (x0 == x1) {
              miny = std::min(miny, static_cast<int64_t>(s % static_cast<uint64_t>(sz.h)));
              maxy = std::max(maxy, static_cast<int64_t>((e - 1) % static_cast<uint64_t>(sz.h)));
            } else {
              miny = 0;
              maxy = sz.h - 1;
            }
          }
        }
        o += "], \"size\": [";
        put_int(o, sz.h);
        o += ", ";
        put_int(o, sz.w);
        o += "]}";
        area = static_cast<double>(fg);
        if (maxx >= 0) {
          bx0 = minx;
          by0 = miny;
          bx1 = maxx + 1;
          by1 = maxy + 1;
        }
      } else {
        const int parts = rng.chance(opt.multipart_fraction) ? 2 + static_cast<int>(rng.below(
                                                                       static_cast<uint64_t>(std::max(opt.max_parts - 1, 1))))
                                                             : 1;
        const int n_parts = std::min(parts, opt.max_parts);
        // Object size: log-uniform radius, small objects dominate as in COCO.
        const double radius = std::exp(std::log(3.0) + rng.uniform() * (std::log(0.45 * std::min(sz.w, sz.h)) - std::log(3.0)));
        const double cx = radius + rng.uniform() * std::max(1.0, sz.w - 2 * radius);
        const double cy = radius + rng.uniform() * std::max(1.0, sz.h - 2 * radius);
        o += '[';
        bx0 = by0 = INT64_MAX;
        bx1 = by1 = INT64_MIN;
        for (int p = 0; p < n_parts; ++p) {
          const int nv = opt.min_vertices +
                         static_cast<int>(rng.below(static_cast<uint64_t>(opt.max_vertices - opt.min_vertices + 1)));
          const double pr = p == 0 ? radius : radius * (0.2 + 0.3 * rng.uniform());
          const double px = p == 0 ? cx : cx + (rng.uniform() - 0.5) * radius;
          const double py = p == 0 ? cy : cy + (rng.uniform() - 0.5) * radius;
          xs.resize(static_cast<size_t>(nv));
          ys.resize(static_cast<size_t>(nv));
          const double phase = rng.uniform() * 6.283185307179586;
          for (int v = 0; v < nv; ++v) {
            const double ang = phase + 6.283185307179586 * (v + 0.8 * rng.uniform()) / nv;
            const double rr = pr * (0.6 + 0.4 * rng.uniform());
            const double x = std::clamp(px + rr * std::cos(ang), 0.0, static_cast<double>(sz.w));
            const double y = std::clamp(py + rr * std::sin(ang), 0.0, static_cast<double>(sz.h));
            xs[static_cast<size_t>(v)] = static_cast<int64_t>(std::llround(x * 100));
            ys[static_cast<size_t>(v)] = static_cast<int64_t>(std::llround(y * 100));
          }
          if (p) o += ", ";
          o += '[';
          double twice = 0;
          for (int v = 0; v < nv; ++v) {
            const size_t a = static_cast<size_t>(v), b = static_cast<size_t>((v + 1) % nv);
            if (v) o += ", ";
            put_cents(o, xs[a]);
            o += ", ";
            put_cents(o, ys[a]);
            twice += static_cast<double>(xs[a]) / 100.0 * (static_cast<double>(ys[b]) / 100.0) -
                     static_cast<double>(xs[b]) / 100.0 * (static_cast<double>(ys[a]) / 100.0);
            bx0 = std::min(bx0, xs[a]);
            bx1 = std::max(bx1, xs[a]);
            by0 = std::min(by0, ys[a]);
            by1 = std::max(by1, ys[a]);
          }
          o += ']';
          area += std::fabs(twice) / 2;
        }
        o += ']';
      }
      o += ", \"area\": ";
      if (crowd) {
        put_int(o, static_cast<int64_t>(area));
      } else {
        put_double(o, area);
      }
      o += ", \"iscrowd\": ";
      o += crowd ? '1' : '0';
      o += ", \"image_id\": ";
      put_int(o, image_ids[im]);
      o += ", \"bbox\": [";
      if (crowd) {
        put_int(o, bx0);
        o += ", ";
        put_int(o, by0);
        o += ", ";
        put_int(o, bx1 - bx0);
        o += ", ";
        put_int(o, by1 - by0);
      } else {
        put_cents(o, bx0);
        o += ", ";
        put_cents(o, by0);
        o += ", ";
        put_cents(o, bx1 - bx0);
        o += ", ";
        put_cents(o, by1 - by0);
      }
      o += "], \"category_id\": ";
      put_int(o, cat);
      o += ", \"id\": ";
      ann_id += 1 + static_cast<int64_t>(rng.below(3));
      put_int(o, crowd ? 900100000000LL + ann_id : ann_id);
      o += '}';
      out.maybe_flush();
    }
    o += "], \"categories\": [";
    for (size_t c = 0; c < n_cat; ++c) {
      if (c) o += ", ";
      o += "{\"supercategory\": \"";
      o += kCategories[c].supercategory;
      o += "\", \"id\": ";
      put_int(o, kCategories[c].id);
      o += ", \"name\": \"";
      o += kCategories[c].name;
      o += "\"}";
    }
    o += "]}";
    out.flush();
    std::FILE* done = f;
    f = nullptr;
    if (std::fclose(done) != 0) {
      Location loc;
      loc.file = tmp;
      throw Error("io_error", std::string("close failed: ") + std::strerror(errno), loc);
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
      Location loc;
      loc.file = path;
      throw Error("io_error", std::string("cannot rename the temporary file: ") + std::strerror(errno), loc);
    }
  } catch (...) {
    if (f) std::fclose(f);
    std::remove(tmp.c_str());
    throw;
  }
}

}  // namespace pasteflow::io
