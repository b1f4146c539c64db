#include "pasteflow/train/predict.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
#include <variant>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "pasteflow/config/config.hpp"
#include "pasteflow/eval/results.hpp"
#include "pasteflow/io/coco.hpp"
#include "pasteflow/io/select.hpp"
#include "pasteflow/mask/rle.hpp"
#include "pasteflow/model/mask_rcnn.hpp"
#include "pasteflow/model/weights.hpp"
#include "pasteflow/stages/decode.hpp"
#include "pasteflow/stages/draw.hpp"
#include "pasteflow/train/checkpoint.hpp"
#include "pasteflow/train/config.hpp"
#include "pasteflow/train/evaluate.hpp"
#include "pasteflow/raster/tiff.hpp"
#include "pasteflow/slice/merge.hpp"
#include "sliced_predict.hpp"

namespace pasteflow::train {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

Location file_location(const std::string& file, const std::string& key = {}) {
  Location where;
  where.file = file;
  where.key = key;
  return where;
}

/// The model's tensors of `path` (a weights file or a trainer checkpoint)
/// and, for a checkpoint, its embedded training config.
struct LoadedWeights {
  std::map<std::string, at::Tensor> tensors;
  std::string config_yaml;  ///< "" for a weights file
  bool checkpoint = false;
};

LoadedWeights read_weights(const std::string& path) {
  LoadedWeights w;
  std::map<std::string, at::Tensor> all = model::read_checkpoint(path);
  if (all.count("trainer.format") == 0) {
    w.tensors = std::move(all);
    return w;
  }
  w.checkpoint = true;
  const std::string prefix = "model.";
  for (auto& [key, t] : all) {
    if (key.rfind(prefix, 0) == 0) w.tensors[key.substr(prefix.size())] = t;
  }
  if (w.tensors.empty()) {
    throw InputError("bad_checkpoint", "the checkpoint holds no 'model.' entries", file_location(path, "model"));
  }
  const auto cfg = all.find("trainer.config");
  if (cfg != all.end()) {
    const at::Tensor c = cfg->second.to(at::kByte).cpu().contiguous();
    w.config_yaml.assign(reinterpret_cast<const char*>(c.data_ptr<uint8_t>()), static_cast<size_t>(c.numel()));
  }
  return w;
}

/// True when the YAML file's top level has a key only a training config has.
bool is_training_config(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw ConfigError("cannot_open", "cannot read the config file", file_location(path));
  } catch (const YAML::Exception& e) {
    throw ConfigError("bad_yaml", e.what(), file_location(path));
  }
  if (!root.IsMap()) return false;
  for (const char* key : {"data", "pipeline", "model", "solver", "checkpoint", "eval", "output_dir", "log_period",
                          "torch_threads"}) {
    if (root[key]) return true;
  }
  return false;
}

/// The model config and the evaluation pipeline of a run.
struct Setup {
  model::ModelConfig model;
  pipeline::PipelineConfig pipeline;
  std::string train_annotations;  ///< a training config's data.train_annotations
  int eval_batch_size = 0;
  std::string device = "cpu";
  std::string amp = "off";  ///< a training config's solver.amp
  int torch_threads = 0;
  std::string source;
};

Setup setup_from_train(const TrainConfig& t, const std::string& source) {
  Setup s;
  s.model = t.model;
  s.pipeline = t.pipeline;
  s.train_annotations = t.data.train_annotations;
  s.eval_batch_size = t.eval.batch_size;
  s.device = t.device;
  s.amp = t.solver.amp;
  s.torch_threads = t.torch_threads;
  s.source = source;
  return s;
}

Setup load_setup(const PredictOptions& o, const LoadedWeights& w) {
  if (!o.config.empty()) {
    if (is_training_config(o.config)) return setup_from_train(load_train_config(o.config, o.overrides), o.config);
    Setup s;
    s.model = config::load_config<model::ModelConfig>(o.config, o.overrides);
    model::validate(s.model);
    const model::TransformConfig& tr = s.model.transform;
    stages::BatchConfig& b = s.pipeline.batch;
    b.min_size = tr.min_size.empty() ? b.min_size : tr.min_size.back();
    b.max_size = tr.max_size;
    b.size_divisible = tr.size_divisible;
    b.mean = tr.image_mean;
    b.std = tr.image_std;
    s.device = s.model.device;
    s.source = o.config;
    return s;
  }
  if (w.config_yaml.empty()) {
    throw ConfigError("no_config",
                      "--config is required: the weights file carries no config (only trainer checkpoints do)",
                      file_location(o.weights));
  }
  const std::string name = o.weights + ":trainer.config";
  TrainConfig t = parse_train_config(w.config_yaml, name, o.overrides);
  return setup_from_train(t, name);
}

/// The dataset whose categories give the map, and where it came from.
io::CocoDataset category_dataset(const PredictOptions& o, const Setup& s, const io::CocoDataset* annotations,
                                 std::string& source) {
  if (!o.categories.empty()) {
    source = o.categories;
    return io::load_coco(o.categories);
  }
  if (annotations != nullptr) {
    source = o.annotations;
    return *annotations;
  }
  if (!s.train_annotations.empty()) {
    source = s.train_annotations;
    return io::load_coco(s.train_annotations);
  }
  throw ConfigError("no_categories",
                    "no category map: give --categories (a COCO file), --annotations, or a training config "
                    "(its data.train_annotations)",
                    file_location(s.source));
}

/// Image list -> a dataset (ids 1..n, sizes from the headers, no annotations).
io::CocoDataset list_dataset(const std::vector<std::string>& files, const io::CocoDataset& cats, bool skip,
                             SkipReport& skipped, raster::TiffPool& pool) {
  io::CocoDataset ds;
  io::copy_categories(cats, ds, /*keep_extra=*/false);
  for (size_t i = 0; i < files.size(); ++i) {
    stages::ImageHeader h;
    try {
      if (detail::file_is_tiff(files[i])) {
        // A TIFF of any size: its tags only (read_image_header reads the whole file).
        const std::shared_ptr<raster::TiffFile> tif = pool.open(files[i]);
        h.width = tif->width();
        h.height = tif->height();
      } else {
        h = stages::read_image_header(files[i]);
      }
      if (h.width > INT32_MAX || h.height > INT32_MAX) {
        throw InputError("pixel_limit", "an image side above 2^31 - 1 pixels", file_location(files[i]));
      }
    } catch (const InputError& e) {
      if (!skip) throw;
      skipped.add(e);
      continue;
    }
    io::ImageRecord im;
    im.id = static_cast<int64_t>(i) + 1;
    im.width = static_cast<int32_t>(h.width);
    im.height = static_cast<int32_t>(h.height);
    im.file_name = ds.add_string(files[i]);
    ds.images.push_back(im);
  }
  ds.rebuild_index();
  return ds;
}

/// The images of `ds` whose flag in `flags` is `keep_flag`, with no
/// annotations (prediction needs none), categories and strings as they are.
io::CocoDataset subset(const io::CocoDataset& ds, const std::vector<bool>& flags, bool keep_flag) {
  io::CocoDataset out = ds;
  out.images.clear();
  out.annotations.clear();
  for (size_t i = 0; i < ds.images.size(); ++i) {
    if (flags[i] == keep_flag) out.images.push_back(ds.images[i]);
  }
  out.rebuild_index();
  return out;
}

cv::Scalar category_colour(int64_t category_id) {
  // Well-separated hues by the golden angle, full saturation (RGB).
  const double hue = std::fmod(static_cast<double>(category_id) * 137.508, 360.0);
  cv::Mat hsv(1, 1, CV_8UC3, cv::Scalar(hue / 2.0, 220, 255));
  cv::Mat rgb;
  cv::cvtColor(hsv, rgb, cv::COLOR_HSV2RGB);
  const cv::Vec3b c = rgb.at<cv::Vec3b>(0, 0);
  return cv::Scalar(c[0], c[1], c[2]);
}

}  // namespace

namespace detail {

cv::Mat draw_overlay(cv::Mat rgb, const std::vector<OverlayItem>& items, const io::CocoDataset& names,
                     stages::OverlayStyle style) {
  if (rgb.depth() == CV_16U) rgb.convertTo(rgb, CV_8U, 1.0 / 257.0);
  if (rgb.channels() == 1) cv::cvtColor(rgb, rgb, cv::COLOR_GRAY2RGB);
  cv::Mat out = rgb.clone();
  const bool fill = style != stages::OverlayStyle::kOutline;
  const bool boxes = style == stages::OverlayStyle::kFill;
  const bool labels = style != stages::OverlayStyle::kMasksOnly;
  // Lowest score first, so the best detections end on top: tints, then
  // outlines (and boxes), then labels (best first, so they get the free places).
  std::vector<size_t> order(items.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return items[a].score < items[b].score; });
  if (fill) {
    for (size_t i : order) {
      const OverlayItem& it = items[i];
      if (!it.mask.empty()) stages::draw_fill(out, it.mask, it.origin, category_colour(it.category_id), 0.45);
    }
  }
  std::vector<cv::Rect> boxes_px(items.size());
  for (size_t i : order) {
    const OverlayItem& it = items[i];
    const cv::Scalar colour = category_colour(it.category_id);
    cv::Rect box;
    if (it.bbox) {
      const auto& b = *it.bbox;
      const cv::Point p0(static_cast<int>(std::lround(b[0])), static_cast<int>(std::lround(b[1])));
      const cv::Point p1(static_cast<int>(std::lround(b[0] + b[2])), static_cast<int>(std::lround(b[1] + b[3])));
      box = cv::Rect(p0, p1);
    }
    // Labels go outside the object: its box and its mask (a pasted mask may pass the box by a pixel).
    boxes_px[i] = box;
    if (!it.mask.empty()) {
      cv::Rect extent = cv::boundingRect(it.mask);
      if (extent.area() > 0) {
        extent += it.origin;
        boxes_px[i] = box.area() > 0 ? (box | extent) : extent;
      }
    }
    if (!it.mask.empty()) {
      stages::draw_outline(out, it.mask, it.origin, colour);
      if (boxes && box.area() > 0) cv::rectangle(out, box, colour, 1);
    } else if (box.area() > 0 && style != stages::OverlayStyle::kMasksOnly) {
      cv::rectangle(out, box, colour, 1);  // a detection without a mask: its box
    }
  }
  if (labels) {
    std::vector<cv::Rect> taken;
    for (auto i = order.rbegin(); i != order.rend(); ++i) {
      const OverlayItem& d = items[*i];
      if (boxes_px[*i].area() == 0) continue;
      const int64_t ci = names.category_index(d.category_id);
      const std::string name = ci >= 0 ? std::string(names.str(names.categories[static_cast<size_t>(ci)].name))
                                       : std::to_string(d.category_id);
      char score[16];
      std::snprintf(score, sizeof score, " %.2f", d.score);
      stages::draw_label(out, name + score, boxes_px[*i], category_colour(d.category_id), taken);
    }
  }
  return out;
}

}  // namespace detail

PredictReport predict(const PredictOptions& o, const std::function<void(const std::string&)>& log) {
  const auto wall0 = Clock::now();
  auto note = [&](const std::string& s) {
    if (log) log(s);
  };
  if (o.weights.empty()) throw ConfigError("missing_option", "no weights file given");
  if (o.out_dir.empty()) throw ConfigError("missing_option", "no output directory given");
  if (o.images.empty() == o.annotations.empty()) {
    throw ConfigError("bad_inputs", "give either image files or an annotations file (with its image directory)");
  }
  if (o.score_threshold < 0.0 || o.score_threshold > 1.0) {
    throw ConfigError("bad_value", "the score threshold must be in [0, 1]");
  }
  if (o.slice_above < -1) throw ConfigError("bad_value", "--slice-above must be >= 0 (0 = no slicing)");
  if (o.overlay_max_side < 16) throw ConfigError("bad_value", "--overlay-max-side must be >= 16");
  const stages::OverlayStyle style = stages::parse_overlay_style(o.overlay_style);
  slice::MergeConfig merge_config;
  merge_config.method = o.merge;
  merge_config.threshold = o.merge_threshold;
  merge_config.metric = o.merge_metric;
  slice::validate(merge_config);
  PredictReport report;

  const LoadedWeights weights = read_weights(o.weights);
  Setup s = load_setup(o, weights);
  report.config_source = s.source;
  if (!o.device.empty()) s.device = o.device;
  if (!o.amp.empty()) s.amp = o.amp;
  const std::string amp_key = o.amp.empty() ? "solver.amp" : "--amp";
  const model::Amp amp = model::parse_amp(s.amp, amp_key);
  model::require_amp_supported(amp, c10::Device(s.device).type(), amp_key);
  if (!o.on_error.empty()) s.pipeline.loader.on_error = o.on_error;
  const bool skip = parse_error_policy(s.pipeline.loader.on_error) == ErrorPolicy::kSkip;
  const int threads = o.threads > 0 ? o.threads : s.torch_threads;
  if (threads > 0) at::set_num_threads(threads);
  if (o.threads > 0) s.pipeline.loader.threads = o.threads;
  report.slice_above = o.slice_above >= 0 ? o.slice_above : s.pipeline.slice.above;
  const int64_t slice_size = o.slice_size > 0 ? o.slice_size : s.pipeline.slice.size;
  const double slice_overlap = o.slice_overlap >= 0.0 ? o.slice_overlap : s.pipeline.slice.overlap;
  if (slice_size < 16) throw ConfigError("bad_value", "--slice-size must be >= 16");
  if (!(slice_overlap >= 0.0 && slice_overlap < 1.0)) {
    throw ConfigError("bad_value", "--slice-overlap must be in [0, 1)");
  }
  const bool slicing = report.slice_above > 0;

  // Decoding: one TIFF pool for the sliced windows, the image list's headers and the overviews.
  stages::DecodeConfig decode_config = s.pipeline.decode;
  auto pool = std::make_shared<raster::TiffPool>(s.pipeline.raster);  // as the loader's: pipeline.raster
  const stages::Decoder decoder(decode_config, pool);

  std::optional<io::CocoDataset> annotated;
  if (!o.annotations.empty()) {
    io::LoadOptions load;
    load.policy = skip ? ErrorPolicy::kSkip : ErrorPolicy::kStrict;
    load.image_root = o.image_dir;
    // Huge images are sliced, never decoded whole: their records pass (an
    // unsliced image above decode.max_pixels still fails at its decode).
    if (slicing) load.max_pixels = 0;
    annotated = io::load_coco(o.annotations, load);
  }
  const io::CocoDataset names =
      category_dataset(o, s, annotated ? &*annotated : nullptr, report.categories_source);
  std::vector<int64_t> ids;
  for (const io::CategoryRecord& c : names.categories) ids.push_back(c.id);
  const stages::CategoryMap categories(ids);

  const auto cls = weights.tensors.find("roi_heads.box_predictor.cls_score.weight");
  if (cls != weights.tensors.end() && cls->second.dim() == 2 && cls->second.size(0) != categories.num_classes()) {
    throw InputError("category_mismatch",
                     "the weights have " + std::to_string(cls->second.size(0) - 1) + " categories but " +
                         report.categories_source + " has " + std::to_string(categories.size()),
                     file_location(o.weights, "roi_heads.box_predictor.cls_score.weight"));
  }
  note("categories from " + report.categories_source + " (" + std::to_string(categories.size()) + ")");

  // The model, as the trainer builds it: classes from the map, transform from the batch.
  model::ModelConfig mc = s.model;
  mc.num_classes = static_cast<int>(categories.num_classes());
  const stages::BatchConfig& b = s.pipeline.batch;
  mc.transform.min_size = {b.min_size};
  mc.transform.max_size = b.max_size;
  mc.transform.size_divisible = b.size_divisible;
  mc.transform.image_mean = b.mean;
  mc.transform.image_std = b.std;
  mc.device = s.device;
  mc.weights.clear();
  model::MaskRCNN net(mc);
  try {
    model::load_state_dict(*net, weights.tensors);
  } catch (const InputError& e) {
    Location where = e.where();
    where.file = o.weights;
    throw InputError(e.reason(), e.detail(), where);
  }
  net->to(c10::Device(s.device));
  net->set_amp(amp);
  if (amp != model::Amp::kOff) note("inference in " + model::amp_name(amp) + " (autocast)");
  note("model from " + s.source + ", weights " + o.weights + (weights.checkpoint ? " (trainer checkpoint)" : ""));

  const io::CocoDataset dataset =
      annotated ? std::move(*annotated) : list_dataset(o.images, names, skip, report.skipped, *pool);
  const pipeline::PipelineConfig pipe =
      eval_pipeline_config(s.pipeline, o.batch_size > 0 ? o.batch_size : s.eval_batch_size);

  // Images above the slicing threshold take the sliced path; the others the loader's.
  std::vector<bool> sliced(dataset.images.size(), false);
  size_t n_sliced = 0;
  for (size_t i = 0; i < dataset.images.size(); ++i) {
    const io::ImageRecord& im = dataset.images[i];
    sliced[i] = slicing && std::max<int64_t>(im.width, im.height) > report.slice_above;
    n_sliced += sliced[i] ? 1 : 0;
  }

  detail::ResultFilter filter;
  filter.categories = &categories;
  filter.dataset = &dataset;
  filter.score_threshold = o.score_threshold;
  filter.mask_threshold = o.mask_threshold;

  // Unsliced images: the loader (the trainer's evaluation path), COCO results per image.
  std::map<int64_t, std::vector<eval::Detection>> per_image;
  if (n_sliced < dataset.images.size()) {
    const io::CocoDataset whole = n_sliced == 0 ? io::CocoDataset() : subset(dataset, sliced, false);
    const io::CocoDataset& unsliced = n_sliced == 0 ? dataset : whole;
    const InferenceReport inf =
        run_inference(net, unsliced, pipe, 0, s.device, [&](const stages::Target& image, const model::Detection& det) {
          std::vector<eval::Detection>& kept = per_image[image.image_id];
          for (eval::Detection& d : filter(det, image.image_id)) kept.push_back(std::move(d));
        });
    report.images += inf.images;
    report.inference_s += inf.seconds;
    report.skipped.merge(inf.skipped);
  }

  // Sliced images: window by window, merged; kept with local masks for the overlays.
  std::map<int64_t, std::vector<slice::SliceDetection>> per_sliced;
  if (n_sliced > 0) {
    const auto t0 = Clock::now();
    detail::SliceRun run;
    run.size = slice_size;
    run.overlap = slice_overlap;
    run.method = slice::parse_merge_method(merge_config.method);
    run.metric = slice::parse_merge_metric(merge_config.metric, run.method);
    run.threshold = merge_config.threshold;
    run.batch_size = pipe.loader.batch_size;
    run.device = s.device;
    for (size_t i = 0; i < dataset.images.size(); ++i) {
      if (!sliced[i]) continue;
      const io::ImageRecord& im = dataset.images[i];
      const std::string path = dataset.image_path(im);
      detail::SlicedImage r;
      try {
        auto last = Clock::now();
        const auto started = last;
        r = detail::predict_sliced(
            net, decoder, path, im.id, im.width, im.height, pipe.batch, pipe.seed, categories, run, filter,
            [&](size_t done, size_t total) {
              if (done < total && seconds_since(last) < 30.0) return;  // a note every 30 s, and at the end
              last = Clock::now();
              char line[160];
              std::snprintf(line, sizeof line, "image %lld: %zu / %zu slices (%.1f slices/s)",
                            static_cast<long long>(im.id), done, total,
                            static_cast<double>(done) / std::max(1e-9, seconds_since(started)));
              note(line);
            });
      } catch (const InputError& e) {
        if (!skip) throw;
        report.skipped.add(e);
        continue;
      }
      note("image " + std::to_string(im.id) + " (" + std::to_string(im.width) + " x " + std::to_string(im.height) +
           "): " + std::to_string(r.slices) + " slices, " + std::to_string(r.merge.input) + " detections -> " +
           std::to_string(r.detections.size()) + " after " + slice::to_string(run.method));
      ++report.sliced_images;
      ++report.images;
      report.slices += r.slices;
      report.merge_input += r.merge.input;
      report.merge_suppressed += r.merge.suppressed;
      report.merge_merged += r.merge.merged;
      report.merge_rejected += r.merge.rejected;
      per_sliced[im.id] = std::move(r.detections);
    }
    report.inference_s += seconds_since(t0);
  }
  report.below_threshold = filter.below_threshold;
  report.dropped = filter.dropped;

  // results.json in the dataset's image order.
  std::vector<eval::Detection> all;
  for (const io::ImageRecord& im : dataset.images) {
    const auto it = per_image.find(im.id);
    if (it != per_image.end()) all.insert(all.end(), it->second.begin(), it->second.end());
    const auto st = per_sliced.find(im.id);
    if (st == per_sliced.end()) continue;
    for (const slice::SliceDetection& d : st->second) {
      bool omitted = false;
      all.push_back(detail::to_full_result(d, im.id, im.height, im.width, omitted));
      report.masks_omitted += omitted ? 1 : 0;
    }
  }
  report.detections = all.size();
  std::error_code ec;
  fs::create_directories(o.out_dir, ec);
  if (ec) throw Error("cannot_write", "cannot create the output directory: " + ec.message(), file_location(o.out_dir));
  report.results_path = (fs::path(o.out_dir) / "results.json").string();
  write_file_atomic(report.results_path, eval::results_to_json(all));
  all.clear();
  all.shrink_to_fit();

  if (o.overlays) {
    const auto t0 = Clock::now();
    const fs::path dir = fs::path(o.out_dir) / "overlays";
    fs::create_directories(dir, ec);
    if (ec) throw Error("cannot_write", "cannot create the overlay directory: " + ec.message(), file_location(dir));
    report.overlay_dir = dir.string();
    stages::DecodeConfig dc = decode_config;
    dc.color = "rgb";
    const stages::Decoder overlay_decoder(dc, pool);
    for (const io::ImageRecord& im : dataset.images) {
      const std::string path = dataset.image_path(im);
      cv::Mat drawn;
      if (const auto it = per_image.find(im.id); it != per_image.end()) {
        const cv::Mat rgb = overlay_decoder.decode(path, im.width, im.height);
        drawn = detail::draw_overlay(rgb, detail::overlay_items(it->second, rgb.rows, rgb.cols), names, style);
      } else if (const auto st = per_sliced.find(im.id); st != per_sliced.end()) {
        const double ds = detail::overview_downsample(im.width, im.height, o.overlay_max_side);
        const cv::Mat rgb = detail::read_overview(path, im.width, im.height, ds, *pool, overlay_decoder);
        drawn = detail::draw_overlay(rgb, detail::overlay_items_scaled(st->second, ds, rgb.rows, rgb.cols), names,
                                      style);
      } else {
        continue;  // skipped
      }
      cv::Mat bgr;
      cv::cvtColor(drawn, bgr, cv::COLOR_RGB2BGR);
      std::vector<uint8_t> png;
      if (!cv::imencode(".png", bgr, png)) {
        throw Error("cannot_write", "cannot encode the overlay PNG", file_location(path));
      }
      const std::string stem = fs::path(std::string(dataset.file_name(im))).stem().string();
      write_file_atomic((dir / (std::to_string(im.id) + "_" + stem + ".png")).string(), png.data(), png.size());
    }
    report.overlay_s = seconds_since(t0);
  }
  report.wall_s = seconds_since(wall0);
  return report;
}

}  // namespace pasteflow::train
