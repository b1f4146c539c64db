// The mosaic generator (see include/pasteflow/synth/mosaic.hpp).
#include "pasteflow/synth/mosaic.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <limits>
#include <list>
#include <map>
#include <numeric>
#include <utility>

#include <opencv2/imgproc.hpp>

#include "pasteflow/core/error.hpp"
#include "pasteflow/core/json_writer.hpp"
#include "pasteflow/core/random.hpp"
#include "pasteflow/dataset/writer.hpp"
#include "pasteflow/io/select.hpp"
#include "pasteflow/mask/coco_mask.hpp"
#include "pasteflow/mask/rle.hpp"
#include "pasteflow/stages/decode.hpp"

namespace pasteflow::synth {

namespace {

ConfigError bad(const std::string& field, const std::string& message) {
  Location loc;
  loc.key = "mosaic." + field;
  return ConfigError("bad_value", message, loc);
}

}  // namespace

void MosaicConfig::validate() const {
  constexpr int64_t kMaxSide = std::numeric_limits<int32_t>::max();  // COCO image records are int32
  if (width < 1 || width > kMaxSide) throw bad("width", "width must be 1..2^31-1, got " + std::to_string(width));
  if (height < 1 || height > kMaxSide) throw bad("height", "height must be 1..2^31-1, got " + std::to_string(height));
  if (gap < 0 || gap > 1 << 20) throw bad("gap", "gap must be 0..2^20, got " + std::to_string(gap));
  if (background < 0 || background > 255) {
    throw bad("background", "background must be 0..255, got " + std::to_string(background));
  }
  if (cache_mb < 0) throw bad("cache_mb", "cache_mb must be >= 0");
  if (file_name.empty() || dataset::sanitize_file_name(file_name) != file_name) {
    throw bad("file_name", "file_name must be a plain relative name, got '" + file_name + "'");
  }
  raster::TiffWriterOptions o;
  o.width = width;
  o.height = height;
  o.tile = tile;
  o.quality = quality;
  o.compression = compression;
  o.pyramid = pyramid;
  raster::validate(o);
}

// ------------------------------------------------------------------ planning

MosaicPlan plan_mosaic(const io::CocoDataset& source, const MosaicConfig& config) {
  config.validate();
  MosaicPlan plan;
  const size_t n = source.images.size();
  const int64_t W = config.width, H = config.height, gap = config.gap;

  // Which images can fit at all.
  std::vector<uint32_t> fitting;
  for (size_t i = 0; i < n; ++i) {
    const io::ImageRecord& im = source.images[i];
    if (im.width > 0 && im.height > 0 && im.width + 2 * gap <= W && im.height + 2 * gap <= H) {
      fitting.push_back(static_cast<uint32_t>(i));
    }
  }
  plan.skipped_images = n - fitting.size();
  if (fitting.empty()) {
    Location loc;
    loc.file = source.source_path;
    throw InputError("no_images",
                     "no image of the dataset fits in a " + std::to_string(W) + " x " + std::to_string(H) +
                         " mosaic with a gap of " + std::to_string(gap) + " px",
                     loc);
  }

  // Shelf packing over seeded shuffles of the fitting images.
  int64_t x = gap, y = gap, shelf_h = 0;
  bool full = false;
  for (uint64_t cycle = 0; !full; ++cycle) {
    std::vector<uint32_t> order = fitting;
    Rng rng(config.seed, {0x6d6f73616963ULL /* "mosaic" */, cycle});
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
    size_t placed_this_cycle = 0;
    for (const uint32_t idx : order) {
      const io::ImageRecord& im = source.images[idx];
      if (x + im.width + gap > W) {  // next shelf
        y += shelf_h + gap;
        x = gap;
        shelf_h = 0;
      }
      if (y + im.height + gap > H) {
        full = true;
        break;
      }
      plan.placements.push_back({idx, im.id, x, y, im.width, im.height});
      x += im.width + gap;
      shelf_h = std::max<int64_t>(shelf_h, im.height);
      ++placed_this_cycle;
    }
    if (placed_this_cycle == 0) break;
  }

  // The dataset: one image, the categories, the moved annotations.
  io::CocoDataset& ds = plan.dataset;
  io::ImageRecord mosaic;
  mosaic.id = 1;
  mosaic.width = static_cast<int32_t>(W);
  mosaic.height = static_cast<int32_t>(H);
  mosaic.file_name = ds.add_string(config.file_name);
  ds.images.push_back(mosaic);
  io::copy_categories(source, ds, /*keep_extra=*/true);

  const bool rle_fits = static_cast<uint64_t>(W) * static_cast<uint64_t>(H) <= std::numeric_limits<uint32_t>::max();
  std::vector<double> shifted;
  for (size_t p = 0; p < plan.placements.size(); ++p) {
    const MosaicPlacement& pl = plan.placements[p];
    const io::ImageRecord& im = source.images[pl.source_image_index];
    for (const uint32_t ai : source.annotations_of(pl.source_image_index)) {
      const io::AnnotationRecord& a = source.annotations[ai];
      io::AnnotationRecord out;
      out.id = static_cast<int64_t>(ds.annotations.size()) + 1;
      out.image_id = 1;
      out.category_id = a.category_id;
      out.area = a.area;
      out.has_area = a.has_area;
      out.has_bbox = a.has_bbox;
      out.bbox = {a.bbox[0] + double(pl.x), a.bbox[1] + double(pl.y), a.bbox[2], a.bbox[3]};
      out.has_iscrowd = a.has_iscrowd;
      out.iscrowd = a.iscrowd;
      out.seg_kind = a.seg_kind;
      switch (a.seg_kind) {
        case io::SegmentationKind::kNone:
          break;
        case io::SegmentationKind::kPolygons: {
          const size_t parts = source.num_parts(a);
          out.seg_count = static_cast<uint32_t>(parts);
          out.seg_begin = ds.part_offsets.size() - 1;
          for (size_t k = 0; k < parts; ++k) {
            const Span<const double> xy = source.polygon(a, k);
            shifted.assign(xy.begin(), xy.end());
            for (size_t j = 0; j + 1 < shifted.size(); j += 2) {
              shifted[j] += double(pl.x);
              shifted[j + 1] += double(pl.y);
            }
            ds.add_part(Span<const double>(shifted.data(), shifted.size()));
          }
          break;
        }
        case io::SegmentationKind::kRleCounts:
        case io::SegmentationKind::kRleString: {
          if (!rle_fits) {
            Location loc;
            loc.key = "mosaic.width";
            throw ConfigError("bad_value",
                              "the source has RLE segmentations, whose counts are 32-bit: width * height of the "
                              "mosaic must be below 2^32 (" + std::to_string(W) + " x " + std::to_string(H) + ")",
                              loc);
          }
          const mask::Rle src = mask::annotation_rle(source, a, static_cast<uint32_t>(im.height),
                                                     static_cast<uint32_t>(im.width));
          const mask::Rle moved = mask::translate(src, static_cast<int>(pl.x), static_cast<int>(pl.y),
                                                  static_cast<uint32_t>(H), static_cast<uint32_t>(W));
          const std::string counts = mask::to_string(moved);
          out.seg_kind = io::SegmentationKind::kRleString;
          out.rle_height = static_cast<uint32_t>(H);
          out.rle_width = static_cast<uint32_t>(W);
          const io::StrRef ref = ds.add_string(counts);
          out.seg_begin = ref.begin;
          out.seg_count = ref.size;
          break;
        }
      }
      ds.annotations.push_back(out);
      plan.annotation_source.push_back(ai);
      plan.annotation_placement.push_back(static_cast<uint32_t>(p));
    }
  }
  ds.rebuild_index();
  return plan;
}

std::string mosaic_extra_json(const io::CocoDataset& source, const MosaicPlan& plan, const MosaicConfig& config) {
  JsonWriter w;
  w.begin_object();
  w.key("mosaic").begin_object();
  w.field("width", config.width).field("height", config.height).field("gap", config.gap);
  w.field("seed", config.seed).field("source", source.source_path);
  w.field("placements", static_cast<uint64_t>(plan.placements.size()));
  w.end_object();
  w.key("placements").begin_array();
  for (const MosaicPlacement& p : plan.placements) {
    w.begin_object();
    w.field("image_id", p.source_image_id);
    w.field("file_name", source.file_name(source.images[p.source_image_index]));
    w.field("x", p.x).field("y", p.y).field("width", p.width).field("height", p.height);
    w.end_object();
  }
  w.end_array();
  w.end_object();
  std::string text = w.take();
  return text.substr(1, text.size() - 2);  // members only
}

// ------------------------------------------------------------------- pixels

namespace {

/// Decoded (level 0) and resized (level k) source images, least recently
/// used out first once above the byte cap; images used by the current band
/// are never evicted.
class SourceCache {
 public:
  SourceCache(const io::CocoDataset& source, size_t max_bytes, MosaicPixelStats& stats)
      : source_(source), decoder_(make_decode_config()), max_bytes_(max_bytes), stats_(stats) {}

  /// Source `index` at level `level` (ceil(w / 2^level) x ceil(h / 2^level)).
  const cv::Mat& get(uint32_t index, int level, uint64_t band_stamp) {
    const Key key{index, level};
    auto it = entries_.find(key);
    if (it != entries_.end()) {
      ++stats_.cache_hits;
      it->second.stamp = band_stamp;
      return it->second.image;
    }
    cv::Mat image;
    const io::ImageRecord& im = source_.images[index];
    if (level == 0) {
      image = decoder_.decode(source_.image_path(im), im.width, im.height);
      ++stats_.decoded;
    } else {
      const cv::Mat& full = get(index, 0, band_stamp);
      const int f = 1 << level;
      const int w = (im.width + f - 1) >> level, h = (im.height + f - 1) >> level;
      cv::resize(full, image, cv::Size(w, h), 0, 0, cv::INTER_AREA);
      ++stats_.resized;
    }
    bytes_ += image.total() * image.elemSize();
    stats_.cache_peak_bytes = std::max(stats_.cache_peak_bytes, bytes_);
    auto& e = entries_[key];
    e.image = std::move(image);
    e.stamp = band_stamp;
    return e.image;
  }

  /// Evicts least recently used images not used by band `band_stamp`.
  void trim(uint64_t band_stamp) {
    if (bytes_ <= max_bytes_) return;
    std::vector<std::pair<uint64_t, Key>> old;
    for (const auto& [k, e] : entries_) {
      if (e.stamp != band_stamp) old.emplace_back(e.stamp, k);
    }
    std::sort(old.begin(), old.end());
    for (const auto& [stamp, k] : old) {
      if (bytes_ <= max_bytes_) break;
      auto it = entries_.find(k);
      bytes_ -= it->second.image.total() * it->second.image.elemSize();
      entries_.erase(it);
    }
  }

 private:
  static stages::DecodeConfig make_decode_config() {
    stages::DecodeConfig c;
    c.color = "rgb";
    c.keep_16bit = false;
    return c;
  }
  using Key = std::pair<uint32_t, int>;
  struct Entry {
    cv::Mat image;
    uint64_t stamp = 0;
  };
  const io::CocoDataset& source_;
  stages::Decoder decoder_;
  size_t max_bytes_;
  MosaicPixelStats& stats_;
  std::map<Key, Entry> entries_;
  size_t bytes_ = 0;
};

}  // namespace

MosaicPixelStats write_mosaic_pixels(const io::CocoDataset& source, const MosaicPlan& plan,
                                     const MosaicConfig& config, const std::string& tiff_path,
                                     const MosaicProgress& progress) {
  config.validate();
  MosaicPixelStats stats;
  raster::TiffWriterOptions o;
  o.width = config.width;
  o.height = config.height;
  o.channels = 3;
  o.tile = config.tile;
  o.compression = config.compression;
  o.quality = config.quality;
  o.pyramid = config.pyramid;
  raster::TiffWriter writer(tiff_path, o);
  stats.levels = writer.levels();
  uint64_t total = 0;
  for (int l = 0; l < writer.levels(); ++l) total += static_cast<uint64_t>(writer.bands(l));

  SourceCache cache(source, static_cast<size_t>(config.cache_mb) << 20, stats);
  const int64_t t = config.tile;
  const cv::Scalar grey = cv::Scalar::all(config.background);
  uint64_t stamp = 0;
  for (int l = 0; l < writer.levels(); ++l) {
    const int64_t lw = writer.level_width(l), lh = writer.level_height(l);
    // The placements at this level, by top edge.
    struct Rect {
      uint32_t placement;
      int64_t x, y, w, h;
    };
    std::vector<Rect> rects;
    rects.reserve(plan.placements.size());
    const int64_t f = int64_t(1) << l;
    for (size_t p = 0; p < plan.placements.size(); ++p) {
      const MosaicPlacement& pl = plan.placements[p];
      rects.push_back({static_cast<uint32_t>(p), pl.x >> l, pl.y >> l, (pl.width + f - 1) >> l,
                       (pl.height + f - 1) >> l});
    }
    std::stable_sort(rects.begin(), rects.end(), [](const Rect& a, const Rect& b) { return a.y < b.y; });
    size_t next = 0;
    std::vector<Rect> active;
    cv::Mat band(static_cast<int>(t), static_cast<int>(lw), CV_8UC3);
    for (int64_t b = 0; b < writer.bands(l); ++b, ++stamp) {
      const int64_t y0 = b * t, rows = writer.band_rows(l, b), y1 = y0 + rows;
      cv::Mat view = band(cv::Rect(0, 0, static_cast<int>(lw), static_cast<int>(rows)));
      view.setTo(grey);
      while (next < rects.size() && rects[next].y < y1) active.push_back(rects[next++]);
      active.erase(std::remove_if(active.begin(), active.end(), [&](const Rect& r) { return r.y + r.h <= y0; }),
                   active.end());
      for (const Rect& r : active) {
        const int64_t ry0 = std::max(r.y, y0), ry1 = std::min({r.y + r.h, y1, lh});
        const int64_t rx1 = std::min(r.x + r.w, lw);
        if (ry0 >= ry1 || r.x >= rx1) continue;
        const cv::Mat& img = cache.get(plan.placements[r.placement].source_image_index, l, stamp);
        const cv::Rect src(0, static_cast<int>(ry0 - r.y), static_cast<int>(rx1 - r.x), static_cast<int>(ry1 - ry0));
        const cv::Rect dst(static_cast<int>(r.x), static_cast<int>(ry0 - y0), src.width, src.height);
        img(src).copyTo(view(dst));
      }
      writer.write_band(view);
      cache.trim(stamp);
      ++stats.bands;
      if (progress && !progress(stats.bands, total)) return stats;  // writer removes the file
    }
  }
  writer.finish();
  stats.completed = true;
  return stats;
}

// ------------------------------------------------------------------- output

MosaicSummary generate_mosaic(const io::CocoDataset& source, const std::string& out_dir, const MosaicConfig& config,
                              const MosaicOutputOptions& options) {
  MosaicPlan plan = plan_mosaic(source, config);
  const std::string extra = mosaic_extra_json(source, plan, config);
  plan.dataset.top_level_extra = plan.dataset.add_string(extra);

  dataset::WriterOptions wo;
  wo.overwrite = options.overwrite;
  wo.command = "generate mosaic";
  wo.inputs = options.inputs;
  dataset::DatasetWriter writer(out_dir, wo);
  if (!writer.try_reserve(config.file_name)) {
    throw Error("io_error", "cannot reserve the image name " + config.file_name);
  }
  const std::string staged = writer.create_image_file(config.file_name);

  MosaicSummary summary;
  summary.placements = plan.placements.size();
  summary.annotations = plan.dataset.annotations.size();
  summary.skipped_images = plan.skipped_images;
  summary.pixels = write_mosaic_pixels(source, plan, config, staged, options.progress);
  if (!summary.pixels.completed) {
    writer.abort();
    return summary;
  }
  struct stat st {};
  if (::stat(staged.c_str(), &st) == 0) summary.file_bytes = static_cast<uint64_t>(st.st_size);
  writer.commit(plan.dataset);
  summary.annotations_path = writer.out_dir() + "/" + dataset::DatasetWriter::kAnnotations;
  summary.image_path = writer.out_dir() + "/" + dataset::DatasetWriter::kImagesDir + "/" + config.file_name;
  return summary;
}

}  // namespace pasteflow::synth
