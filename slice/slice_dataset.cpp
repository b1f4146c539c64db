// slice_dataset: views of a COCO dataset, annotations cut exactly to each
// window (see include/pasteflow/slice/slice.hpp).
#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "grid_internal.hpp"
#include "pasteflow/core/random.hpp"
#include "pasteflow/mask/coco_mask.hpp"
#include "pasteflow/mask/rle.hpp"
#include "pasteflow/slice/clip.hpp"
#include "pasteflow/slice/slice.hpp"

namespace pasteflow::slice {

namespace {

using io::AnnotationRecord;
using io::CocoDataset;
using io::ImageRecord;
using io::SegmentationKind;
using io::StrRef;

/// Most windows one image may be cut into (a bound on memory for absurd
/// size / overlap combinations, e.g. 16-px slices of a 2^31-px image).
constexpr uint64_t kMaxWindowsPerImage = uint64_t(1) << 24;

/// One source annotation of an image being sliced.
struct Object {
  uint32_t source = 0;  ///< index in the source's annotations
  bool boxes_only = false;
  mask::Rle full;        ///< the full-image mask (segmentation sources)
  double full_area = 0;  ///< mask area or box area
  double x0 = 0, y0 = 0, x1 = 0, y1 = 0;  ///< extent (mask bbox or the box), image pixels
  int64_t ox = 0, oy = 0;  ///< image pixel of `full`'s top-left (a frame on huge images)
};

/// Polygons of an image above mask::kMaxPixels, rasterised in a frame
/// around their extent (1 px margin, cut by the image's edges, whose
/// clamping rleFrPoly then applies as at the full size). Sets ox, oy.
mask::Rle framed_polygons(const CocoDataset& src, const AnnotationRecord& a, uint32_t h, uint32_t w, int64_t& ox,
                          int64_t& oy) {
  const size_t n = src.num_parts(a);
  if (n == 0) throw InputError("empty_segmentation", "segmentation is an empty polygon list");
  double minx = HUGE_VAL, miny = HUGE_VAL, maxx = -HUGE_VAL, maxy = -HUGE_VAL;
  for (size_t k = 0; k < n; ++k) {
    const Span<const double> xy = src.polygon(a, k);
    for (size_t j = 0; j + 1 < xy.size(); j += 2) {
      if (!std::isfinite(xy[j]) || !std::isfinite(xy[j + 1])) {
        throw InputError("polygon_range", "polygon coordinate is not finite");
      }
      minx = std::min(minx, xy[j]);
      maxx = std::max(maxx, xy[j]);
      miny = std::min(miny, xy[j + 1]);
      maxy = std::max(maxy, xy[j + 1]);
    }
  }
  auto clampi = [](double v, uint32_t hi) {
    return static_cast<int64_t>(std::clamp(v, 0.0, static_cast<double>(hi)));
  };
  ox = clampi(std::floor(minx) - 1, w);
  oy = clampi(std::floor(miny) - 1, h);
  const int64_t x1 = clampi(std::ceil(maxx) + 2, w), y1 = clampi(std::ceil(maxy) + 2, h);
  const uint32_t fw = static_cast<uint32_t>(std::max<int64_t>(x1 - ox, 1));
  const uint32_t fh = static_cast<uint32_t>(std::max<int64_t>(y1 - oy, 1));
  std::vector<std::vector<double>> local(n);
  std::vector<Span<const double>> parts;
  for (size_t k = 0; k < n; ++k) {
    const Span<const double> xy = src.polygon(a, k);
    local[k].resize(xy.size());
    for (size_t j = 0; j + 1 < xy.size(); j += 2) {
      local[k][j] = xy[j] - static_cast<double>(ox);
      local[k][j + 1] = xy[j + 1] - static_cast<double>(oy);
    }
    if (xy.size() % 2) local[k].back() = xy[xy.size() - 1];  // odd: from_polygon reports it
    parts.emplace_back(local[k].data(), local[k].size());
  }
  return mask::from_polygons(parts, fh, fw);
}

/// An object's part inside one window.
struct Piece {
  uint32_t object = 0;
  mask::Rle clipped;             ///< segmentation sources
  std::array<double, 4> box{};   ///< boxes-only: clipped box, window coordinates
  double area = 0;
};

std::string image_extra(int64_t source_id, const Window& w) {
  return "\"source_image_id\":" + std::to_string(source_id) + ",\"window\":[" + std::to_string(w.x) + "," +
         std::to_string(w.y) + "," + std::to_string(w.width) + "," + std::to_string(w.height) + "]";
}

/// The raw JSON members `extra` ("k":v,"k2":v2) without those named
/// "source_image_id" or "window" (a source that is itself a slice).
std::string without_view_members(std::string_view s) {
  std::string out;
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    while (i < n && (s[i] == ',' || s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r')) ++i;
    if (i >= n) break;
    const size_t start = i;
    std::string_view key;
    if (s[i] == '"') {
      const size_t ks = ++i;
      while (i < n && s[i] != '"') i += s[i] == '\\' ? 2 : 1;
      key = s.substr(ks, std::min(i, n) - ks);
      ++i;
    }
    // The value runs to the next ',' outside strings and brackets.
    int depth = 0;
    bool in_string = false;
    for (; i < n; ++i) {
      const char c = s[i];
      if (in_string) {
        if (c == '\\') {
          ++i;
        } else if (c == '"') {
          in_string = false;
        }
      } else if (c == '"') {
        in_string = true;
      } else if (c == '[' || c == '{') {
        ++depth;
      } else if (c == ']' || c == '}') {
        --depth;
      } else if (c == ',' && depth == 0) {
        break;
      }
    }
    const size_t end = std::min(i, n);
    if (key != "source_image_id" && key != "window") {
      if (!out.empty()) out += ',';
      out.append(s.substr(start, end - start));
    }
  }
  return out;
}

StrRef copy_str(CocoDataset& dst, const CocoDataset& src, StrRef r) {
  if (r.size == 0) return StrRef{dst.strings.size(), 0};
  return dst.add_string(src.str(r));
}

/// Copies the segmentation of `a` (a record of `src`) into `dst`'s pools and
/// points `out` at it.
void copy_segmentation(CocoDataset& dst, const CocoDataset& src, const AnnotationRecord& a, AnnotationRecord& out) {
  switch (a.seg_kind) {
    case SegmentationKind::kNone:
      out.seg_begin = 0;
      out.seg_count = 0;
      break;
    case SegmentationKind::kPolygons: {
      out.seg_begin = dst.part_offsets.size() - 1;
      for (size_t k = 0; k < a.seg_count; ++k) dst.add_part(src.polygon(a, k));
      break;
    }
    case SegmentationKind::kRleCounts:
      out.seg_begin = dst.add_counts(src.counts(a));
      break;
    case SegmentationKind::kRleString: {
      const StrRef r = dst.add_string(src.rle_string(a));
      out.seg_begin = r.begin;
      out.seg_count = r.size;
      break;
    }
  }
}

class Slicer {
 public:
  Slicer(const CocoDataset& source, const SliceConfig& config, uint64_t seed, bool slice_all, ErrorPolicy policy,
         SlicedDataset& out)
      : src_(source), config_(config), seed_(seed), slice_all_(slice_all), policy_(policy), out_(out) {}

  void run() {
    CocoDataset& ds = out_.dataset;
    ds.image_root = src_.image_root;
    if (src_.top_level_extra.size) ds.top_level_extra = ds.add_string(src_.str(src_.top_level_extra));
    ds.categories.reserve(src_.categories.size());
    for (const auto& c : src_.categories) {
      io::CategoryRecord r = c;
      r.name = copy_str(ds, src_, c.name);
      r.supercategory = copy_str(ds, src_, c.supercategory);
      r.extra = copy_str(ds, src_, c.extra);
      ds.categories.push_back(r);
    }
    for (size_t i = 0; i < src_.images.size(); ++i) {
      const ImageRecord& im = src_.images[i];
      if (im.width <= 0 || im.height <= 0) {
        Location loc;
        loc.file = src_.source_path;
        loc.record = "image id " + std::to_string(im.id);
        InputError e("bad_image_size", "image width and height must be positive", loc);
        if (policy_ == ErrorPolicy::kStrict) throw e;
        ds.skipped.add(e);
        continue;
      }
      const bool cut = slice_all_ || (config_.above > 0 && (im.width > config_.above || im.height > config_.above));
      if (cut) {
        slice_image(static_cast<uint32_t>(i));
      } else {
        pass_through(static_cast<uint32_t>(i));
      }
    }
    ds.rebuild_index();
  }

 private:
  int64_t add_image(uint32_t source_index, const Window& w, bool sliced) {
    CocoDataset& ds = out_.dataset;
    const ImageRecord& im = src_.images[source_index];
    ImageRecord r;
    r.id = static_cast<int64_t>(ds.images.size()) + 1;
    r.width = static_cast<int32_t>(w.width);
    r.height = static_cast<int32_t>(w.height);
    r.file_name = copy_str(ds, src_, im.file_name);
    // The source's own members (license, ...) first, then the view's.
    std::string extra = without_view_members(src_.str(im.extra));
    if (!extra.empty()) extra += ',';
    r.extra = ds.add_string(extra + image_extra(im.id, w));
    ds.images.push_back(r);
    View v;
    v.source_image_index = source_index;
    v.source_image_id = im.id;
    v.sliced = sliced;
    v.window = w;
    out_.views.push_back(v);
    return r.id;
  }

  AnnotationRecord new_annotation(const AnnotationRecord& a, int64_t image_id) {
    CocoDataset& ds = out_.dataset;
    AnnotationRecord r;
    r.id = static_cast<int64_t>(ds.annotations.size()) + 1;
    r.image_id = image_id;
    r.category_id = a.category_id;
    r.has_iscrowd = a.has_iscrowd;
    r.iscrowd = a.iscrowd;
    r.extra = copy_str(ds, src_, a.extra);
    return r;
  }

  void pass_through(uint32_t i) {
    const ImageRecord& im = src_.images[i];
    const int64_t id = add_image(i, Window{0, 0, im.width, im.height}, false);
    CocoDataset& ds = out_.dataset;
    for (uint32_t ai : src_.annotations_of(i)) {
      const AnnotationRecord& a = src_.annotations[ai];
      AnnotationRecord r = new_annotation(a, id);
      r.area = a.area;
      r.has_area = a.has_area;
      r.bbox = a.bbox;
      r.has_bbox = a.has_bbox;
      r.seg_kind = a.seg_kind;
      r.rle_height = a.rle_height;
      r.rle_width = a.rle_width;
      r.seg_count = a.seg_count;
      copy_segmentation(ds, src_, a, r);
      ds.annotations.push_back(r);
      out_.annotation_source.push_back(ai);
    }
  }

  /// The object of annotation `ai` of an image of h x w, or false when it
  /// is skipped (kSkip) or empty.
  bool make_object(uint32_t ai, uint32_t h, uint32_t w, Object& o) {
    const AnnotationRecord& a = src_.annotations[ai];
    o.source = ai;
    try {
      if (a.seg_kind == SegmentationKind::kNone) {
        const auto& b = a.bbox;
        if (!a.has_bbox) {
          throw InputError("no_segmentation", "annotation has neither a segmentation nor a bbox",
                           src_.annotation_location(a));
        }
        if (!(std::isfinite(b[0]) && std::isfinite(b[1]) && std::isfinite(b[2]) && std::isfinite(b[3])) ||
            b[2] < 0 || b[3] < 0) {
          throw InputError("bad_value", "bbox must be finite with width, height >= 0",
                           src_.annotation_location(a, ".bbox"));
        }
        o.boxes_only = true;
        // The part of the box inside the image.
        o.x0 = std::max(0.0, b[0]);
        o.y0 = std::max(0.0, b[1]);
        o.x1 = std::min(static_cast<double>(w), b[0] + b[2]);
        o.y1 = std::min(static_cast<double>(h), b[1] + b[3]);
        o.full_area = b[2] * b[3];
        return o.full_area > 0 && o.x1 > o.x0 && o.y1 > o.y0;
      }
      if ((a.seg_kind == SegmentationKind::kRleCounts || a.seg_kind == SegmentationKind::kRleString) &&
          (a.rle_height != h || a.rle_width != w)) {
        throw InputError("rle_size_mismatch",
                         "RLE size [" + std::to_string(a.rle_height) + ", " + std::to_string(a.rle_width) +
                             "] is not its image's [" + std::to_string(h) + ", " + std::to_string(w) + "]",
                         src_.annotation_location(a, ".segmentation"));
      }
      if (a.seg_kind == SegmentationKind::kPolygons && uint64_t(h) * uint64_t(w) > mask::kMaxPixels) {
        try {
          o.full = framed_polygons(src_, a, h, w, o.ox, o.oy);
        } catch (const InputError& e) {
          throw InputError(e.reason(), e.detail(), src_.annotation_location(a, ".segmentation"));
        }
      } else {
        o.full = mask::annotation_rle(src_, a, h, w);
      }
    } catch (const Error& e) {
      if (policy_ == ErrorPolicy::kStrict) throw;
      out_.dataset.skipped.add(e);
      return false;
    }
    const uint64_t area = mask::area(o.full);
    if (area == 0) return false;
    o.full_area = static_cast<double>(area);
    const auto bb = mask::bbox(o.full);  // a superset of the mask's rows when a run wraps a column
    o.x0 = bb[0] + static_cast<double>(o.ox);
    o.y0 = bb[1] + static_cast<double>(o.oy);
    o.x1 = o.x0 + bb[2];
    o.y1 = o.y0 + bb[3];
    return true;
  }

  void slice_image(uint32_t i) {
    const ImageRecord& im = src_.images[i];
    const int64_t W = im.width, H = im.height;
    const auto xs = detail::axis(W, config_.size, detail::overlap_px(config_.size, config_.overlap));
    const auto ys = detail::axis(H, config_.size, detail::overlap_px(config_.size, config_.overlap));
    if (static_cast<uint64_t>(xs.size()) * ys.size() > kMaxWindowsPerImage) {
      Location loc;
      loc.file = src_.source_path;
      loc.record = "image id " + std::to_string(im.id);
      throw InputError("too_many_slices",
                       "cutting " + std::to_string(W) + "x" + std::to_string(H) + " into " +
                           std::to_string(config_.size) + "-px slices gives more than 2^24 windows",
                       loc);
    }
    const size_t nx = xs.size(), ny = ys.size();
    std::vector<std::vector<Piece>> pieces(nx * ny);
    std::vector<Object> objects;
    const double ratio = config_.min_area_ratio;
    for (uint32_t ai : src_.annotations_of(i)) {
      Object o;
      if (!make_object(ai, static_cast<uint32_t>(H), static_cast<uint32_t>(W), o)) continue;
      const uint32_t oi = static_cast<uint32_t>(objects.size());
      for (size_t r = 0; r < ny; ++r) {
        const double wy0 = static_cast<double>(ys[r].start), wy1 = wy0 + static_cast<double>(ys[r].size);
        if (!(wy0 < o.y1 && o.y0 < wy1)) continue;
        for (size_t c = 0; c < nx; ++c) {
          const double wx0 = static_cast<double>(xs[c].start), wx1 = wx0 + static_cast<double>(xs[c].size);
          if (!(wx0 < o.x1 && o.x0 < wx1)) continue;
          Piece p;
          p.object = oi;
          if (o.boxes_only) {
            const double bx0 = std::max(o.x0, wx0), by0 = std::max(o.y0, wy0);
            const double bx1 = std::min(o.x1, wx1), by1 = std::min(o.y1, wy1);
            p.box = {bx0 - wx0, by0 - wy0, bx1 - bx0, by1 - by0};
            p.area = (bx1 - bx0) * (by1 - by0);
          } else {
            p.clipped = mask::crop(o.full, static_cast<int>(xs[c].start - o.ox), static_cast<int>(ys[r].start - o.oy),
                                   static_cast<uint32_t>(xs[c].size), static_cast<uint32_t>(ys[r].size));
            p.area = static_cast<double>(mask::area(p.clipped));
          }
          if (!(p.area > 0)) continue;
          if (p.area < ratio * o.full_area) {
            ++out_.objects_dropped;
            continue;
          }
          pieces[r * nx + c].push_back(std::move(p));
        }
      }
      // The full mask is no longer needed once every window has its piece.
      o.full = mask::Rle{};
      objects.push_back(std::move(o));
    }

    CocoDataset& ds = out_.dataset;
    for (size_t r = 0; r < ny; ++r) {
      for (size_t c = 0; c < nx; ++c) {
        const size_t k = r * nx + c;
        const Window win{xs[c].start, ys[r].start, xs[c].size, ys[r].size};
        std::vector<Piece>& list = pieces[k];
        if (list.empty()) {
          Rng rng(seed_, {static_cast<uint64_t>(im.id), static_cast<uint64_t>(k)});
          if (!rng.bernoulli(config_.keep_empty)) {
            ++out_.empty_dropped;
            continue;
          }
        }
        const int64_t id = add_image(i, win, true);
        for (Piece& p : list) {
          const Object& o = objects[p.object];
          const AnnotationRecord& a = src_.annotations[o.source];
          AnnotationRecord rec = new_annotation(a, id);
          rec.has_area = true;
          rec.has_bbox = true;
          rec.area = p.area;
          if (o.boxes_only) {
            rec.bbox = p.box;
            rec.seg_kind = SegmentationKind::kNone;
          } else {
            rec.bbox = mask::bbox(p.clipped);
            bool done = false;
            if (config_.polygons && a.seg_kind == SegmentationKind::kPolygons) {
              const uint64_t first = ds.part_offsets.size() - 1;
              uint32_t parts = 0;
              for (size_t q = 0; q < a.seg_count; ++q) {
                const std::vector<double> xy = clip_polygon(src_.polygon(a, q), win);
                if (xy.size() < 6) continue;
                ds.add_part(Span<const double>(xy.data(), xy.size()));
                ++parts;
              }
              if (parts > 0) {
                rec.seg_kind = SegmentationKind::kPolygons;
                rec.seg_begin = first;
                rec.seg_count = parts;
                done = true;
              }
            }
            if (!done) {  // compressed RLE of the clipped mask
              const StrRef s = ds.add_string(mask::to_string(p.clipped));
              rec.seg_kind = SegmentationKind::kRleString;
              rec.rle_height = p.clipped.h;
              rec.rle_width = p.clipped.w;
              rec.seg_begin = s.begin;
              rec.seg_count = s.size;
            }
          }
          ds.annotations.push_back(rec);
          out_.annotation_source.push_back(o.source);
        }
      }
    }
  }

  const CocoDataset& src_;
  const SliceConfig& config_;
  uint64_t seed_;
  bool slice_all_;
  ErrorPolicy policy_;
  SlicedDataset& out_;
};

}  // namespace

SlicedDataset slice_dataset(const io::CocoDataset& source, const SliceConfig& config, uint64_t seed, bool slice_all,
                            ErrorPolicy policy) {
  validate(config);
  SlicedDataset out;
  Slicer(source, config, seed, slice_all, policy, out).run();
  return out;
}

}  // namespace pasteflow::slice
