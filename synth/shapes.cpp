// Synthetic small-object benchmark: see include/pasteflow/synth/shapes.hpp.
#include "pasteflow/synth/shapes.hpp"

#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/task_arena.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "pasteflow/core/error.hpp"
#include "pasteflow/core/random.hpp"

namespace pasteflow::synth {

namespace fs = std::filesystem;

namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kRingInner = 0.55;  ///< inner / outer radius of a ring

Location key_location(const char* key) {
  Location loc;
  loc.key = key;
  return loc;
}

Location file_location(const std::string& file) {
  Location loc;
  loc.file = file;
  return loc;
}

template <typename T>
void check_range(const char* key, T value, T lo, T hi) {
  if (!(value >= lo && value <= hi)) {
    throw ConfigError("out_of_range",
                      std::string(key) + " = " + std::to_string(value) + " is outside [" + std::to_string(lo) +
                          ", " + std::to_string(hi) + "]",
                      key_location(key));
  }
}

// ------------------------------------------------------------------ shapes

struct Pt {
  double x, y;
};

/// Unit-radius outline of a shape (outer boundary), centred at 0.
std::vector<Pt> unit_outline(ShapeClass shape) {
  std::vector<Pt> v;
  auto polar = [&v](double r, double a) { v.push_back({r * std::cos(a), r * std::sin(a)}); };
  switch (shape) {
    case ShapeClass::kCircle:
    case ShapeClass::kRing:
      for (int i = 0; i < 32; ++i) polar(1.0, 2.0 * kPi * i / 32.0);
      break;
    case ShapeClass::kTriangle:
      for (int i = 0; i < 3; ++i) polar(1.0, -kPi / 2 + 2.0 * kPi * i / 3.0);
      break;
    case ShapeClass::kSquare:
      for (int i = 0; i < 4; ++i) polar(1.0, kPi / 4 + kPi / 2 * i);
      break;
    case ShapeClass::kStar:
      for (int i = 0; i < 10; ++i) polar(i % 2 == 0 ? 1.0 : 0.42, -kPi / 2 + kPi * i / 5.0);
      break;
    case ShapeClass::kCross: {
      const double a = 0.3;  // arm half-width
      const Pt q[12] = {{-a, -1}, {a, -1}, {a, -a}, {1, -a}, {1, a},   {a, a},
                        {a, 1},   {-a, 1}, {-a, a}, {-1, a}, {-1, -a}, {-a, -a}};
      v.assign(q, q + 12);
      break;
    }
  }
  return v;
}

/// Rotated copy of `unit`.
std::vector<Pt> rotate(const std::vector<Pt>& unit, double theta) {
  const double c = std::cos(theta), s = std::sin(theta);
  std::vector<Pt> r;
  r.reserve(unit.size());
  for (const Pt& p : unit) r.push_back({p.x * c - p.y * s, p.x * s + p.y * c});
  return r;
}

/// Coordinates at (cx, cy) + scale * p, rounded to 1/100 px so that the
/// shortest decimal text written to JSON parses back to the same doubles.
std::vector<double> place(const std::vector<Pt>& rotated, double cx, double cy, double scale) {
  std::vector<double> xy;
  xy.reserve(rotated.size() * 2);
  for (const Pt& p : rotated) {
    xy.push_back(std::round((cx + scale * p.x) * 100.0) / 100.0);
    xy.push_back(std::round((cy + scale * p.y) * 100.0) / 100.0);
  }
  return xy;
}

struct Window {
  int x = 0, y = 0, w = 0, h = 0;
};

Window window_of(const std::array<double, 4>& bb) {
  return Window{static_cast<int>(bb[0]), static_cast<int>(bb[1]), static_cast<int>(bb[2]), static_cast<int>(bb[3])};
}

/// Row-major 0/1 pixels of `rle` inside window `w`.
std::vector<uint8_t> window_pixels(const mask::Rle& rle, const Window& w) {
  return mask::decode(mask::crop(rle, w.x, w.y, static_cast<uint32_t>(w.w), static_cast<uint32_t>(w.h)));
}

struct Candidate {
  ShapeClass shape = ShapeClass::kCircle;
  mask::Rle mask;
  std::vector<double> polygon;  // empty for rings
  Window win;                   // mask bbox
  std::vector<uint8_t> patch;   // win.h x win.w, 0/1
  uint64_t area = 0;
  int size = 0;
};

/// Draws one shape with a random class, size, rotation and position and
/// rasterises it. False when it misses the size range or the image margin.
bool make_candidate(Rng& rng, const ShapesOptions& o, Candidate& c) {
  const int S = o.image_size;
  c.shape = static_cast<ShapeClass>(rng.below(kNumShapeClasses));
  const int target = static_cast<int>(rng.range(o.min_size, o.max_size));
  const double theta = rng.uniform(0.0, 2.0 * kPi);
  const double half = target / 2.0 + 2.0;
  const double cx = rng.uniform(half, S - half);
  const double cy = rng.uniform(half, S - half);

  const std::vector<Pt> outline = rotate(unit_outline(c.shape), theta);
  double xmin = 1e9, xmax = -1e9, ymin = 1e9, ymax = -1e9;
  for (const Pt& p : outline) {
    xmin = std::min(xmin, p.x);
    xmax = std::max(xmax, p.x);
    ymin = std::min(ymin, p.y);
    ymax = std::max(ymax, p.y);
  }
  double scale = target / std::max(xmax - xmin, ymax - ymin);
  const uint32_t h = static_cast<uint32_t>(S), w = static_cast<uint32_t>(S);

  std::vector<double> xy;
  mask::Rle outer;
  std::array<double, 4> bb{};
  int extent = 0;
  // The rasterised extent can differ from the continuous one by a pixel:
  // rescale towards the target a few times.
  for (int iter = 0; iter < 4; ++iter) {
    xy = place(outline, cx, cy, scale);
    outer = mask::from_polygon(xy.data(), xy.size(), h, w);
    bb = mask::bbox(outer);
    extent = static_cast<int>(std::max(bb[2], bb[3]));
    if (extent == target) break;
    scale *= extent > 0 ? static_cast<double>(target) / extent : 1.5;
  }
  if (extent < o.min_size || extent > o.max_size) return false;
  // Keep one free pixel at every border (also rules out rleToBbox's
  // column-wrap special case).
  if (bb[0] < 1 || bb[1] < 1 || bb[0] + bb[2] > S - 1 || bb[1] + bb[3] > S - 1) return false;

  c.win = window_of(bb);
  c.size = extent;
  if (c.shape == ShapeClass::kRing) {
    const std::vector<double> inner_xy = place(rotate(unit_outline(c.shape), theta), cx, cy, scale * kRingInner);
    const mask::Rle inner = mask::from_polygon(inner_xy.data(), inner_xy.size(), h, w);
    std::vector<uint8_t> po = window_pixels(outer, c.win);
    const std::vector<uint8_t> pi = window_pixels(inner, c.win);
    size_t hole = 0;
    for (size_t i = 0; i < po.size(); ++i) {
      hole += po[i] && pi[i];
      po[i] = static_cast<uint8_t>(po[i] && !pi[i]);
    }
    if (hole == 0) return false;  // too small to show its hole: it would be a circle
    const mask::Rle local =
        mask::encode(po.data(), static_cast<uint32_t>(c.win.h), static_cast<uint32_t>(c.win.w), c.win.w);
    c.mask = mask::translate(local, c.win.x, c.win.y, h, w);
    c.patch = std::move(po);
    c.polygon.clear();
  } else {
    c.mask = std::move(outer);
    c.patch = window_pixels(c.mask, c.win);
    c.polygon = std::move(xy);
  }
  c.area = mask::area(c.mask);
  return c.area > 0;
}

// ----------------------------------------------------------------- painting

struct Colour {
  double b, g, r;
};

/// HSV (h in [0, 6), s, v in [0, 1]) to 0..255 BGR.
Colour hsv(double h, double s, double v) {
  const double c = v * s;
  const double x = c * (1.0 - std::fabs(std::fmod(h, 2.0) - 1.0));
  double r = 0, g = 0, b = 0;
  switch (static_cast<int>(h) % 6) {
    case 0: r = c, g = x; break;
    case 1: r = x, g = c; break;
    case 2: g = c, b = x; break;
    case 3: g = x, b = c; break;
    case 4: r = x, b = c; break;
    default: r = c, b = x; break;
  }
  const double m = v - c;
  return Colour{(b + m) * 255.0, (g + m) * 255.0, (r + m) * 255.0};
}

Colour random_colour(Rng& rng) { return hsv(rng.uniform(0.0, 6.0), rng.uniform(0.25, 1.0), rng.uniform(0.15, 1.0)); }

double distance(const Colour& a, const Colour& b) {
  return (std::fabs(a.b - b.b) + std::fabs(a.g - b.g) + std::fabs(a.r - b.r)) / 3.0;
}

/// A colour that stands out from `under` (the mean of the pixels below).
Colour contrasting_colour(Rng& rng, const Colour& under) {
  Colour best = random_colour(rng);
  for (int i = 0; i < 8 && distance(best, under) < 50.0; ++i) {
    const Colour c = random_colour(rng);
    if (distance(c, under) > distance(best, under)) best = c;
  }
  return best;
}

/// Paints candidate `c` (object number `label`) into `image`: a textured,
/// optionally blurred / shaded / soft-edged layer composited on exactly the
/// mask pixels. Every painted pixel differs from `background`.
Texture paint(Rng& rng, const ShapesOptions& o, const Candidate& c, cv::Mat& image, const cv::Mat& background) {
  const Window& W = c.win;
  Colour under{0, 0, 0};
  {
    double n = 0;
    for (int y = 0; y < W.h; ++y) {
      const cv::Vec3b* row = image.ptr<cv::Vec3b>(W.y + y) + W.x;
      for (int x = 0; x < W.w; ++x) {
        if (!c.patch[static_cast<size_t>(y) * W.w + x]) continue;
        under.b += row[x][0];
        under.g += row[x][1];
        under.r += row[x][2];
        n += 1;
      }
    }
    under = Colour{under.b / n, under.g / n, under.r / n};
  }
  const Colour c1 = contrasting_colour(rng, under);
  const Colour c2 = rng.bernoulli(0.5) ? contrasting_colour(rng, under)
                                       : Colour{c1.b * 0.45, c1.g * 0.45, c1.r * 0.45};
  const Texture texture = static_cast<Texture>(rng.below(kNumTextures));

  cv::Mat layer(W.h, W.w, CV_32FC3);
  const double wc = W.w / 2.0, hc = W.h / 2.0, span = std::max(W.w, W.h);
  switch (texture) {
    case Texture::kNoise: {
      const double sigma = rng.uniform(8.0, 30.0);
      for (int y = 0; y < W.h; ++y) {
        cv::Vec3f* row = layer.ptr<cv::Vec3f>(y);
        for (int x = 0; x < W.w; ++x) {
          const double n = sigma * rng.normal();
          row[x] = cv::Vec3f(static_cast<float>(c1.b + n), static_cast<float>(c1.g + n), static_cast<float>(c1.r + n));
        }
      }
      break;
    }
    case Texture::kStripes: {
      const double period = rng.uniform(2.5, 7.0);
      const double phi = rng.uniform(0.0, kPi);
      const double phase = rng.uniform(0.0, 2.0 * kPi);
      const double ux = std::cos(phi), uy = std::sin(phi);
      for (int y = 0; y < W.h; ++y) {
        cv::Vec3f* row = layer.ptr<cv::Vec3f>(y);
        for (int x = 0; x < W.w; ++x) {
          const double t = 0.5 + 0.5 * std::sin(2.0 * kPi * ((x + 0.5) * ux + (y + 0.5) * uy) / period + phase);
          row[x] = cv::Vec3f(static_cast<float>(c1.b * t + c2.b * (1 - t)), static_cast<float>(c1.g * t + c2.g * (1 - t)),
                             static_cast<float>(c1.r * t + c2.r * (1 - t)));
        }
      }
      break;
    }
    case Texture::kGradient: {
      const double phi = rng.uniform(0.0, 2.0 * kPi);
      const double ux = std::cos(phi), uy = std::sin(phi);
      for (int y = 0; y < W.h; ++y) {
        cv::Vec3f* row = layer.ptr<cv::Vec3f>(y);
        for (int x = 0; x < W.w; ++x) {
          const double t = std::clamp(0.5 + ((x + 0.5 - wc) * ux + (y + 0.5 - hc) * uy) / span, 0.0, 1.0);
          row[x] = cv::Vec3f(static_cast<float>(c1.b * (1 - t) + c2.b * t), static_cast<float>(c1.g * (1 - t) + c2.g * t),
                             static_cast<float>(c1.r * (1 - t) + c2.r * t));
        }
      }
      break;
    }
  }
  if (rng.bernoulli(o.blur_probability)) {
    const double sigma = rng.uniform(0.5, 1.1);
    cv::GaussianBlur(layer, layer, cv::Size(0, 0), sigma, sigma, cv::BORDER_REFLECT);
  }
  if (rng.bernoulli(o.shading_probability)) {
    const double phi = rng.uniform(0.0, 2.0 * kPi);
    const double k = rng.uniform(0.15, 0.45);
    const double ux = std::cos(phi), uy = std::sin(phi);
    for (int y = 0; y < W.h; ++y) {
      cv::Vec3f* row = layer.ptr<cv::Vec3f>(y);
      for (int x = 0; x < W.w; ++x) {
        const double f = 1.0 + k * 2.0 * ((x + 0.5 - wc) * ux + (y + 0.5 - hc) * uy) / span;
        row[x] *= static_cast<float>(f);
      }
    }
  }
  const double alpha = rng.uniform(o.min_alpha, 1.0);
  const bool soft = rng.bernoulli(o.soft_edge_probability);

  auto inside = [&](int x, int y) {
    return x >= 0 && y >= 0 && x < W.w && y < W.h && c.patch[static_cast<size_t>(y) * W.w + x] != 0;
  };
  for (int y = 0; y < W.h; ++y) {
    cv::Vec3b* out = image.ptr<cv::Vec3b>(W.y + y) + W.x;
    const cv::Vec3b* bg = background.ptr<cv::Vec3b>(W.y + y) + W.x;
    const cv::Vec3f* lay = layer.ptr<cv::Vec3f>(y);
    for (int x = 0; x < W.w; ++x) {
      if (!inside(x, y)) continue;
      double a = alpha;
      if (soft && !(inside(x - 1, y) && inside(x + 1, y) && inside(x, y - 1) && inside(x, y + 1))) a *= 0.55;
      cv::Vec3b v;
      for (int ch = 0; ch < 3; ++ch) {
        const double p = a * lay[x][ch] + (1.0 - a) * out[x][ch];
        v[ch] = static_cast<uint8_t>(std::clamp(std::lround(p), 0L, 255L));
      }
      if (v == bg[x]) v[0] = static_cast<uint8_t>(bg[x][0] >= 128 ? bg[x][0] - 1 : bg[x][0] + 1);
      out[x] = v;
    }
  }
  return texture;
}

struct Placed {
  Candidate c;
  Texture texture = Texture::kNoise;
  uint64_t visible = 0;
};

bool has_image_extension(const fs::path& p) {
  std::string ext = p.extension().string();
  for (char& ch : ext) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp" || ext == ".tif" || ext == ".tiff" ||
         ext == ".webp";
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw Error("io_error", std::string("cannot create image file: ") + std::strerror(errno), file_location(path));
  const size_t n = std::fwrite(bytes.data(), 1, bytes.size(), f);
  const bool ok = n == bytes.size() && std::fflush(f) == 0;
  const int err = errno;
  if (std::fclose(f) != 0 || !ok) {
    std::remove(path.c_str());
    throw Error("io_error", std::string("cannot write image file: ") + std::strerror(err), file_location(path));
  }
}

}  // namespace

// ---------------------------------------------------------------- names

const char* shape_name(ShapeClass shape) noexcept {
  switch (shape) {
    case ShapeClass::kCircle: return "circle";
    case ShapeClass::kTriangle: return "triangle";
    case ShapeClass::kSquare: return "square";
    case ShapeClass::kStar: return "star";
    case ShapeClass::kRing: return "ring";
    case ShapeClass::kCross: return "cross";
  }
  return "?";
}

const char* texture_name(Texture texture) noexcept {
  switch (texture) {
    case Texture::kNoise: return "noise";
    case Texture::kStripes: return "stripes";
    case Texture::kGradient: return "gradient";
  }
  return "?";
}

const char* split_name(Split split) noexcept { return split == Split::kTrain ? "train" : "val"; }

void ShapesOptions::validate() const {
  check_range("image_size", image_size, 32, 8192);
  check_range("min_size", min_size, 4, image_size / 2);
  check_range("max_size", max_size, min_size, image_size / 2);
  check_range("min_objects", min_objects, 0, 100000);
  check_range("max_objects", max_objects, min_objects, 100000);
  check_range("gap", gap, 0, 64);
  check_range("max_overlap", max_overlap, 0.0, 0.9);
  check_range("max_tries", max_tries, 1, 100000);
  check_range("min_crop_fraction", min_crop_fraction, 0.05, 1.0);
  check_range("min_alpha", min_alpha, 0.01, 1.0);
  check_range("blur_probability", blur_probability, 0.0, 1.0);
  check_range("shading_probability", shading_probability, 0.0, 1.0);
  check_range("soft_edge_probability", soft_edge_probability, 0.0, 1.0);
}

// ---------------------------------------------------------------- backgrounds

Backgrounds::Backgrounds(std::vector<std::string> paths) : paths_(std::move(paths)) {}

Backgrounds Backgrounds::from_directory(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw InputError("io_error", "not a directory", file_location(dir));
  std::vector<std::string> paths;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec) && has_image_extension(it->path())) paths.push_back(it->path().string());
  }
  if (ec) throw InputError("io_error", "cannot list directory: " + ec.message(), file_location(dir));
  if (paths.empty()) {
    throw InputError("no_backgrounds", "no background images (*.jpg, *.png, ...) in the directory",
                     file_location(dir));
  }
  std::sort(paths.begin(), paths.end());
  return Backgrounds(std::move(paths));
}

cv::Mat Backgrounds::load(size_t i) const {
  cv::Mat m = cv::imread(paths_.at(i), cv::IMREAD_COLOR);
  if (m.empty()) throw InputError("unreadable_image", "cannot decode background image", file_location(paths_[i]));
  return m;
}

// ---------------------------------------------------------------- one image

SynthImage generate_image(const Backgrounds& backgrounds, const ShapesOptions& o, Split split, uint64_t index) {
  o.validate();
  if (backgrounds.size() == 0) throw InputError("no_backgrounds", "no background images");
  Rng rng(o.seed, {static_cast<uint64_t>(split), index});
  const int S = o.image_size;

  SynthImage result;
  result.background_index = rng.below(backgrounds.size());
  {
    const cv::Mat bg = backgrounds.load(result.background_index);
    const int short_side = std::min(bg.cols, bg.rows);
    const double frac = rng.uniform(o.min_crop_fraction, 1.0);
    const int side = std::clamp(static_cast<int>(std::lround(short_side * frac)), 1, short_side);
    const int x0 = static_cast<int>(rng.range(0, bg.cols - side));
    const int y0 = static_cast<int>(rng.range(0, bg.rows - side));
    const bool flip = rng.bernoulli(0.5);
    cv::Mat resized;
    cv::resize(bg(cv::Rect(x0, y0, side, side)), resized, cv::Size(S, S), 0, 0,
               side > S ? cv::INTER_AREA : cv::INTER_LINEAR);
    if (flip) {
      cv::flip(resized, result.background, 1);
    } else {
      result.background = resized;
    }
  }
  result.image = result.background.clone();

  const int k_objects = static_cast<int>(rng.range(o.min_objects, o.max_objects));
  const size_t npx = static_cast<size_t>(S) * static_cast<size_t>(S);
  std::vector<int32_t> label(npx, 0);     // topmost object + 1 at each pixel
  std::vector<uint8_t> blocked(npx, 0);   // no-overlap mode: masks dilated by gap
  std::vector<Placed> placed;
  std::vector<uint64_t> hits;
  const bool disjoint = o.max_overlap <= 0.0;

  Candidate cand;
  for (int k = 0; k < k_objects; ++k) {
    for (int attempt = 0; attempt < o.max_tries; ++attempt) {
      if (!make_candidate(rng, o, cand)) continue;
      const Window& W = cand.win;
      bool ok = true;
      if (disjoint) {
        for (int y = 0; y < W.h && ok; ++y) {
          for (int x = 0; x < W.w; ++x) {
            if (cand.patch[static_cast<size_t>(y) * W.w + x] && blocked[static_cast<size_t>(W.y + y) * S + W.x + x]) {
              ok = false;
              break;
            }
          }
        }
      } else {
        hits.assign(placed.size(), 0);
        for (int y = 0; y < W.h; ++y) {
          for (int x = 0; x < W.w; ++x) {
            if (!cand.patch[static_cast<size_t>(y) * W.w + x]) continue;
            const int32_t l = label[static_cast<size_t>(W.y + y) * S + W.x + x];
            if (l > 0) ++hits[static_cast<size_t>(l - 1)];
          }
        }
        for (size_t j = 0; j < placed.size() && ok; ++j) {
          if (hits[j] == 0) continue;
          const double keep = std::ceil((1.0 - o.max_overlap) * static_cast<double>(placed[j].c.area));
          ok = static_cast<double>(placed[j].visible - hits[j]) >= std::max(keep, 1.0);
        }
      }
      if (!ok) continue;

      Placed p;
      p.texture = paint(rng, o, cand, result.image, result.background);
      const int32_t id = static_cast<int32_t>(placed.size()) + 1;
      for (int y = 0; y < W.h; ++y) {
        for (int x = 0; x < W.w; ++x) {
          if (!cand.patch[static_cast<size_t>(y) * W.w + x]) continue;
          const int gx = W.x + x, gy = W.y + y;
          int32_t& l = label[static_cast<size_t>(gy) * S + gx];
          if (l > 0) --placed[static_cast<size_t>(l - 1)].visible;
          l = id;
          if (disjoint) {
            for (int yy = std::max(0, gy - o.gap); yy <= std::min(S - 1, gy + o.gap); ++yy) {
              for (int xx = std::max(0, gx - o.gap); xx <= std::min(S - 1, gx + o.gap); ++xx) {
                blocked[static_cast<size_t>(yy) * S + xx] = 1;
              }
            }
          }
        }
      }
      p.visible = cand.area;
      p.c = std::move(cand);
      cand = Candidate();
      placed.push_back(std::move(p));
      break;
    }
  }

  result.objects.reserve(placed.size());
  for (size_t j = 0; j < placed.size(); ++j) {
    Placed& p = placed[j];
    if (p.visible == 0) continue;
    SynthObject obj;
    obj.shape = p.c.shape;
    obj.texture = p.texture;
    obj.size = p.c.size;
    if (p.visible == p.c.area) {
      obj.mask = std::move(p.c.mask);
      obj.polygon = std::move(p.c.polygon);
    } else {
      // Partly covered: the visible pixels, as RLE.
      const Window& W = p.c.win;
      std::vector<uint8_t> vis(static_cast<size_t>(W.w) * W.h, 0);
      for (int y = 0; y < W.h; ++y) {
        for (int x = 0; x < W.w; ++x) {
          vis[static_cast<size_t>(y) * W.w + x] =
              label[static_cast<size_t>(W.y + y) * S + W.x + x] == static_cast<int32_t>(j + 1) ? 1 : 0;
        }
      }
      const mask::Rle local = mask::encode(vis.data(), static_cast<uint32_t>(W.h), static_cast<uint32_t>(W.w), W.w);
      obj.mask = mask::translate(local, W.x, W.y, static_cast<uint32_t>(S), static_cast<uint32_t>(S));
    }
    obj.area = mask::area(obj.mask);
    obj.bbox = mask::bbox(obj.mask);
    result.objects.push_back(std::move(obj));
  }
  return result;
}

// ---------------------------------------------------------------- COCO

io::CocoDataset make_coco(const std::vector<std::vector<SynthObject>>& objects,
                          const std::vector<std::string>& file_names, int image_size) {
  if (objects.size() != file_names.size()) {
    throw Error("bad_value", "make_coco: " + std::to_string(objects.size()) + " object lists for " +
                                 std::to_string(file_names.size()) + " file names");
  }
  io::CocoDataset ds;
  for (int c = 0; c < kNumShapeClasses; ++c) {
    io::CategoryRecord cat;
    cat.id = c + 1;
    cat.name = ds.add_string(shape_name(static_cast<ShapeClass>(c)));
    cat.supercategory = ds.add_string("shape");
    cat.has_supercategory = true;
    ds.categories.push_back(cat);
  }
  int64_t ann_id = 1;
  std::string counts;
  for (size_t i = 0; i < objects.size(); ++i) {
    io::ImageRecord im;
    im.id = static_cast<int64_t>(i) + 1;
    im.width = image_size;
    im.height = image_size;
    im.file_name = ds.add_string(file_names[i]);
    ds.images.push_back(im);
    for (const SynthObject& obj : objects[i]) {
      io::AnnotationRecord a;
      a.id = ann_id++;
      a.image_id = im.id;
      a.category_id = static_cast<int64_t>(obj.shape) + 1;
      a.area = static_cast<double>(obj.area);
      a.bbox = obj.bbox;
      a.has_area = a.has_bbox = a.has_iscrowd = true;
      a.iscrowd = 0;
      if (!obj.polygon.empty()) {
        a.seg_kind = io::SegmentationKind::kPolygons;
        a.seg_begin = ds.add_part(Span<const double>(obj.polygon.data(), obj.polygon.size()));
        a.seg_count = 1;
      } else {
        counts = mask::to_string(obj.mask);
        const io::StrRef r = ds.add_string(counts);
        a.seg_kind = io::SegmentationKind::kRleString;
        a.rle_height = obj.mask.h;
        a.rle_width = obj.mask.w;
        a.seg_begin = r.begin;
        a.seg_count = r.size;
      }
      ds.annotations.push_back(a);
    }
  }
  ds.rebuild_index();
  return ds;
}

// ---------------------------------------------------------------- data set

DatasetSummary generate_dataset(const Backgrounds& backgrounds, const std::string& out_dir,
                                const DatasetOptions& options) {
  options.shapes.validate();
  check_range("jpeg_quality", options.jpeg_quality, 0, 100);
  check_range("threads", options.threads, 0, 4096);
  if (backgrounds.size() == 0) throw InputError("no_backgrounds", "no background images");

  const char* ext = options.format == ImageFormat::kJpeg ? ".jpg" : ".png";
  std::vector<int> params;
  if (options.format == ImageFormat::kJpeg) {
    params = {cv::IMWRITE_JPEG_QUALITY, options.jpeg_quality};
  } else {
    params = {cv::IMWRITE_PNG_COMPRESSION, 3};
  }

  oneapi::tbb::task_arena arena(options.threads > 0 ? options.threads : oneapi::tbb::task_arena::automatic);
  const size_t total = options.train_images + options.val_images;
  size_t done = 0;
  const size_t batch = std::max<size_t>(8, 4 * static_cast<size_t>(arena.max_concurrency()));

  DatasetSummary summary;
  for (const Split split : {Split::kTrain, Split::kVal}) {
    const size_t n = split == Split::kTrain ? options.train_images : options.val_images;
    SplitSummary& s = split == Split::kTrain ? summary.train : summary.val;
    if (n == 0) continue;
    const fs::path split_dir = fs::path(out_dir) / split_name(split);
    const fs::path images_dir = split_dir / "images";
    std::error_code ec;
    fs::create_directories(images_dir, ec);
    if (ec) throw Error("io_error", "cannot create directory: " + ec.message(), file_location(images_dir.string()));

    std::vector<std::vector<SynthObject>> objects(n);
    std::vector<std::string> names(n);
    for (size_t i = 0; i < n; ++i) {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%06llu%s", static_cast<unsigned long long>(i + 1), ext);
      names[i] = buf;
    }
    for (size_t b = 0; b < n; b += batch) {
      const size_t e = std::min(n, b + batch);
      arena.execute([&] {
        oneapi::tbb::parallel_for(oneapi::tbb::blocked_range<size_t>(b, e, 1),
                                  [&](const oneapi::tbb::blocked_range<size_t>& r) {
                                    for (size_t i = r.begin(); i != r.end(); ++i) {
                                      SynthImage img = generate_image(backgrounds, options.shapes, split, i);
                                      std::vector<uint8_t> bytes;
                                      const std::string path = (images_dir / names[i]).string();
                                      if (!cv::imencode(ext, img.image, bytes, params)) {
                                        throw Error("io_error", "cannot encode image", file_location(path));
                                      }
                                      write_bytes(path, bytes);
                                      objects[i] = std::move(img.objects);
                                    }
                                  });
      });
      done += e - b;
      if (options.progress) options.progress(done, total);
    }

    const io::CocoDataset ds = make_coco(objects, names, options.shapes.image_size);
    s.images = n;
    s.annotations = ds.annotations.size();
    for (const auto& list : objects) {
      for (const SynthObject& obj : list) {
        ++s.per_class[static_cast<size_t>(obj.shape)];
        if (obj.polygon.empty()) ++s.rle_annotations;
      }
    }
    s.images_dir = images_dir.string();
    s.annotations_path = (split_dir / "annotations.json").string();
    io::write_coco(ds, s.annotations_path);
  }
  return summary;
}

}  // namespace pasteflow::synth
