// Sliced prediction of huge images (train/predict.hpp, "Sliced prediction"):
// windows of the SAHI grid read by decode_window, batched through the
// evaluation transform and the model, merged across overlaps.
#include "sliced_predict.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/utils.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <fstream>

#include <opencv2/imgproc.hpp>

#include "pasteflow/mask/rle.hpp"
#include "pasteflow/slice/slice.hpp"
#include "pasteflow/train/evaluate.hpp"
#include "eval_mode_guard.hpp"

namespace pasteflow::train::detail {

namespace {

std::string window_text(const raster::Window& w) {
  return "window [" + std::to_string(w.x) + ", " + std::to_string(w.y) + ", " + std::to_string(w.width) + ", " +
         std::to_string(w.height) + "]";
}

}  // namespace

std::vector<eval::Detection> ResultFilter::operator()(const model::Detection& detection, int64_t image_id) {
  std::vector<eval::Detection> kept;
  for (eval::Detection& d : to_coco_results(detection, image_id, *categories, mask_threshold)) {
    if (d.score < score_threshold) {
      ++below_threshold;
    } else if (dataset->category_index(d.category_id) < 0) {
      ++dropped;
    } else {
      kept.push_back(std::move(d));
    }
  }
  return kept;
}

SlicedImage predict_sliced(model::MaskRCNN& net, const stages::Decoder& decoder, const std::string& path,
                           int64_t image_id, int64_t width, int64_t height, const stages::BatchConfig& batch,
                           uint64_t seed, const stages::CategoryMap& categories, const SliceRun& run,
                           ResultFilter& filter, const std::function<void(size_t done, size_t total)>& progress) {
  SlicedImage out;
  const std::vector<raster::Window> windows = slice::grid(width, height, run.size, run.size, run.overlap);
  out.slices = windows.size();
  const c10::Device dev(run.device);
  EvalModeGuard mode(*net);
  torch::NoGradGuard no_grad;
  const size_t per_batch = static_cast<size_t>(std::max(1, run.batch_size));
  std::vector<slice::SliceDetection> found;
  for (size_t first = 0; first < windows.size(); first += per_batch) {
    const size_t n = std::min(per_batch, windows.size() - first);
    // Read and prepare the batch's windows in parallel (each writes its own slot).
    std::vector<stages::PreparedImage> prepared(n);
    std::vector<std::exception_ptr> errors(n);
    at::parallel_for(0, static_cast<int64_t>(n), 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        try {
          const raster::Window& w = windows[first + static_cast<size_t>(i)];
          stages::Sample s;
          s.seq = first + static_cast<size_t>(i);
          s.epoch = 0;
          s.image_id = image_id;
          s.path = path;
          s.image = decoder.decode_window(path, w);
          if (s.image.cols != w.width || s.image.rows != w.height) {
            Location where;
            where.file = path;
            where.record = window_text(w);
            throw InputError("corrupt_image",
                             "the window decoded to " + std::to_string(s.image.cols) + " x " +
                                 std::to_string(s.image.rows) + " pixels",
                             where);
          }
          prepared[static_cast<size_t>(i)] =
              stages::prepare(s, batch, categories, stages::batch_rng(seed, s));
        } catch (...) {
          errors[static_cast<size_t>(i)] = std::current_exception();
        }
      }
    });
    for (const std::exception_ptr& e : errors) {
      if (e) std::rethrow_exception(e);
    }
    const stages::Batch b = stages::collate(std::move(prepared), batch);
    model::ImageList images;
    images.tensors = b.images.to(dev);
    images.image_sizes = b.image_sizes;
    std::vector<model::Size2> original;
    original.reserve(b.targets.size());
    for (const auto& t : b.targets) original.push_back(t.original_size);
    const model::MaskRCNNOutput res = net->forward_batch(images, {}, original);
    for (size_t i = 0; i < res.detections.size(); ++i) {
      const raster::Window& w = windows[first + i];
      for (const eval::Detection& d : filter(res.detections[i], image_id)) {
        const auto* rle = std::get_if<mask::Rle>(&d.segmentation);
        found.push_back(slice::from_window(d.category_id, d.score, *d.bbox, rle, w.x, w.y,
                                           static_cast<uint32_t>(first + i)));
      }
    }
    if (progress) progress(first + n, windows.size());
  }
  if (windows.size() > 1) {
    out.detections = slice::merge(found, run.method, run.metric, run.threshold, &out.merge);
  } else {
    out.detections = std::move(found);  // one window: the model's own NMS already ran (its order kept)
    out.merge.input = out.merge.output = out.detections.size();
  }
  return out;
}

eval::Detection to_full_result(const slice::SliceDetection& det, int64_t image_id, int64_t height, int64_t width,
                               bool& mask_omitted) {
  eval::Detection d;
  d.image_id = image_id;
  d.category_id = det.category_id;
  d.score = det.score;
  d.bbox = det.bbox;
  mask_omitted = false;
  if (det.has_mask) {
    if (static_cast<uint64_t>(height) * static_cast<uint64_t>(width) > mask::kMaxPixels) {
      mask_omitted = true;
    } else {
      d.segmentation = slice::full_mask(det, height, width);
    }
  }
  return d;
}

std::vector<OverlayItem> overlay_items(const std::vector<eval::Detection>& dets, int rows, int cols) {
  std::vector<OverlayItem> items;
  items.reserve(dets.size());
  for (const eval::Detection& d : dets) {
    OverlayItem it;
    it.category_id = d.category_id;
    it.score = d.score;
    it.bbox = d.bbox;
    const auto* rle = std::get_if<mask::Rle>(&d.segmentation);
    if (rle != nullptr && static_cast<int>(rle->h) == rows && static_cast<int>(rle->w) == cols) {
      // The mask's box with a 1-pixel margin (so outlines are those of the whole image).
      const std::array<double, 4> mb = mask::bbox(*rle);
      const int x0 = std::max(0, static_cast<int>(mb[0]) - 1), y0 = std::max(0, static_cast<int>(mb[1]) - 1);
      const int x1 = std::min(cols, static_cast<int>(mb[0] + mb[2]) + 1);
      const int y1 = std::min(rows, static_cast<int>(mb[1] + mb[3]) + 1);
      if (x1 > x0 && y1 > y0) {
        const mask::Rle local =
            mask::crop(*rle, x0, y0, static_cast<uint32_t>(x1 - x0), static_cast<uint32_t>(y1 - y0));
        it.mask = cv::Mat(y1 - y0, x1 - x0, CV_8U);
        mask::decode_into(local, it.mask.data, it.mask.step[0]);
        it.origin = cv::Point(x0, y0);
      }
    }
    items.push_back(std::move(it));
  }
  return items;
}

std::vector<OverlayItem> overlay_items_scaled(const std::vector<slice::SliceDetection>& dets, double scale, int rows,
                                              int cols) {
  std::vector<OverlayItem> items;
  items.reserve(dets.size());
  for (const slice::SliceDetection& d : dets) {
    OverlayItem it;
    it.category_id = d.category_id;
    it.score = d.score;
    it.bbox = std::array<double, 4>{d.bbox[0] / scale, d.bbox[1] / scale, d.bbox[2] / scale, d.bbox[3] / scale};
    if (d.has_mask && d.mask.w > 0 && d.mask.h > 0) {
      // The local mask resized (nearest) to its region of the overlay, plus a 1-pixel margin.
      const int x0 = static_cast<int>(std::floor(static_cast<double>(d.mask_x) / scale));
      const int y0 = static_cast<int>(std::floor(static_cast<double>(d.mask_y) / scale));
      const int x1 = static_cast<int>(std::ceil(static_cast<double>(d.mask_x + d.mask.w) / scale));
      const int y1 = static_cast<int>(std::ceil(static_cast<double>(d.mask_y + d.mask.h) / scale));
      cv::Mat local(static_cast<int>(d.mask.h), static_cast<int>(d.mask.w), CV_8U);
      mask::decode_into(d.mask, local.data, local.step[0]);
      cv::Mat small;
      cv::resize(local, small, cv::Size(std::max(1, x1 - x0), std::max(1, y1 - y0)), 0, 0, cv::INTER_NEAREST);
      cv::Mat padded;
      cv::copyMakeBorder(small, padded, 1, 1, 1, 1, cv::BORDER_CONSTANT, cv::Scalar(0));
      // Clip the padded region to the overlay.
      const cv::Rect region(x0 - 1, y0 - 1, padded.cols, padded.rows);
      const cv::Rect inside = region & cv::Rect(0, 0, cols, rows);
      if (inside.area() > 0) {
        it.mask = padded(cv::Rect(inside.x - region.x, inside.y - region.y, inside.width, inside.height)).clone();
        it.origin = inside.tl();
      }
    }
    items.push_back(std::move(it));
  }
  return items;
}

double overview_downsample(int64_t width, int64_t height, int max_side) {
  const double longer = static_cast<double>(std::max(width, height));
  return std::max(1.0, longer / static_cast<double>(std::max(1, max_side)));
}

cv::Mat read_overview(const std::string& path, int64_t width, int64_t height, double downsample,
                      raster::TiffPool& pool, const stages::Decoder& decoder, double band_pixels) {
  const int out_w = static_cast<int>(std::ceil(static_cast<double>(width) / downsample));
  const int out_h = static_cast<int>(std::ceil(static_cast<double>(height) / downsample));
  auto to_rgb8 = [](cv::Mat px) {
    if (px.depth() == CV_16U) px.convertTo(px, CV_8U, 1.0 / 257.0);
    if (px.channels() == 1) cv::cvtColor(px, px, cv::COLOR_GRAY2RGB);
    return px;
  };
  if (!file_is_tiff(path)) {
    // JPEG / PNG: decoded whole (decode.max_pixels bounds them), resized.
    cv::Mat px = to_rgb8(decoder.decode(path, width, height));
    cv::Mat r;
    cv::resize(px, r, cv::Size(out_w, out_h), 0, 0, cv::INTER_AREA);
    return r;
  }
  // A TIFF: band by band of output rows, each read with read_region (from the
  // pyramid level nearest the downsample, or level 0 when there is none),
  // so that no read holds more than about `band_pixels` level pixels and no
  // band's level-0 window exceeds raster.max_window_pixels.
  const std::shared_ptr<raster::TiffFile> tif = pool.open(path);
  const double level_ds = tif->level(tif->level_for_downsample(downsample)).downsample;
  const double per_row = (static_cast<double>(width) / level_ds) * (downsample / level_ds);
  int rows_per_band = std::max(1, static_cast<int>(band_pixels / std::max(1.0, per_row)));
  // read_region also checks the band's level-0 window against raster.max_window_pixels.
  const int64_t limit = pool.config().max_window_pixels;
  if (limit > 0) {
    const double level0_per_row = static_cast<double>(width) * (downsample + 1.0);
    rows_per_band = std::min(rows_per_band, std::max(1, static_cast<int>(static_cast<double>(limit) / level0_per_row) - 1));
  }
  cv::Mat out(out_h, out_w, CV_8UC3);
  for (int r0 = 0; r0 < out_h; r0 += rows_per_band) {
    const int r1 = std::min(out_h, r0 + rows_per_band);
    raster::Window band;
    band.x = 0;
    band.width = width;
    band.y = std::min<int64_t>(height - 1, static_cast<int64_t>(std::floor(r0 * downsample)));
    band.height = std::max<int64_t>(
        1, std::min<int64_t>(height, static_cast<int64_t>(std::ceil(r1 * downsample))) - band.y);
    cv::Mat px = to_rgb8(tif->read_region(band, downsample));
    if (px.cols != out_w || px.rows != r1 - r0) {
      cv::Mat r;
      cv::resize(px, r, cv::Size(out_w, r1 - r0), 0, 0, cv::INTER_AREA);
      px = r;
    }
    px.copyTo(out(cv::Rect(0, r0, out_w, r1 - r0)));
  }
  return out;
}

bool file_is_tiff(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  uint8_t head[16] = {};
  f.read(reinterpret_cast<char*>(head), sizeof head);
  return raster::is_tiff(head, static_cast<size_t>(f.gcount()));
}

}  // namespace pasteflow::train::detail
