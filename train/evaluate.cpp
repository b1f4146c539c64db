#include "pasteflow/train/evaluate.hpp"

#include <ATen/ATen.h>
#include <torch/utils.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <variant>

#include "pasteflow/core/error.hpp"
#include "pasteflow/eval/shard.hpp"
#include "pasteflow/mask/rle.hpp"
#include "pasteflow/pipeline/loader.hpp"
#include "pasteflow/train/config.hpp"
#include "eval_mode_guard.hpp"

namespace pasteflow::train {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

pipeline::PipelineConfig eval_pipeline_config(const pipeline::PipelineConfig& train, int batch_size) {
  pipeline::PipelineConfig c = train;
  c.sampler.oversample = 1.0;
  c.sampler.repeat_threshold = 0.0;
  c.sampler.shuffle = false;
  c.sampler.aug_mode = "none";
  c.sampler.rank = 0;
  c.sampler.world_size = 1;
  c.sampler.drop_last = false;
  c.batch.hflip = false;
  c.batch.train_min_sizes.clear();
  c.batch.keep_masks = false;
  c.batch.device = "cpu";
  c.loader.drop_last = false;
  c.loader.max_epochs = 1;
  if (batch_size > 0) c.loader.batch_size = batch_size;
  return c;
}

std::vector<eval::Detection> to_coco_results(const model::Detection& detection, int64_t image_id,
                                             const stages::CategoryMap& categories, double mask_threshold) {
  std::vector<eval::Detection> out;
  if (!detection.boxes.defined() || detection.boxes.size(0) == 0) return out;
  const int64_t n = detection.boxes.size(0);
  // torchvision references/detection/coco_eval.py: convert_to_xywh in the
  // boxes' dtype (float32), then .tolist().
  const at::Tensor boxes = detection.boxes.detach().to(at::kCPU).contiguous();
  const at::Tensor xy = boxes.slice(1, 0, 2);
  const at::Tensor wh = boxes.slice(1, 2, 4) - xy;
  const at::Tensor xywh = at::cat({xy, wh}, 1).to(at::kDouble).contiguous();
  const at::Tensor scores = detection.scores.detach().to(at::kCPU).to(at::kDouble).contiguous();
  const at::Tensor labels = detection.labels.detach().to(at::kCPU).to(at::kLong).contiguous();
  at::Tensor masks;
  if (detection.masks.defined()) {
    masks = (detection.masks.detach() > mask_threshold).to(at::kCPU).to(at::kByte).contiguous();
  }
  const double* b = xywh.data_ptr<double>();
  const double* s = scores.data_ptr<double>();
  const int64_t* l = labels.data_ptr<int64_t>();
  out.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    eval::Detection d;
    d.image_id = image_id;
    d.category_id = categories.to_dataset(l[i]);
    d.score = s[i];
    d.bbox = std::array<double, 4>{b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]};
    if (masks.defined()) {
      const at::Tensor m = masks[i][0];
      const auto h = static_cast<uint32_t>(m.size(0));
      const auto w = static_cast<uint32_t>(m.size(1));
      d.segmentation = mask::encode(m.data_ptr<uint8_t>(), h, w, w);
    }
    out.push_back(std::move(d));
  }
  return out;
}


std::map<std::string, double> EvaluationReport::metrics() const {
  std::map<std::string, double> out;
  for (size_t i = 0; i < kStatNames.size(); ++i) {
    out[std::string("bbox_") + kStatNames[i]] = bbox.stats[i];
    if (segm) out[std::string("segm_") + kStatNames[i]] = segm->stats[i];
  }
  return out;
}

InferenceReport run_inference(model::MaskRCNN& net, const io::CocoDataset& dataset,
                              const pipeline::PipelineConfig& pipeline, size_t max_images, const std::string& device,
                              const ImageDetectionsFn& on_image) {
  return run_inference(net, dataset, nullptr, pipeline, max_images, device, on_image);
}

InferenceReport run_inference(model::MaskRCNN& net, const io::CocoDataset& dataset,
                              std::shared_ptr<const slice::SlicedDataset> views,
                              const pipeline::PipelineConfig& pipeline, size_t max_images, const std::string& device,
                              const ImageDetectionsFn& on_image) {
  size_t n = views ? views->dataset.images.size() : dataset.images.size();
  if (max_images > 0) n = std::min(n, max_images);
  std::vector<uint32_t> indices(n);
  for (size_t i = 0; i < n; ++i) indices[i] = static_cast<uint32_t>(i);
  return run_inference(net, dataset, std::move(views), pipeline, indices, device, on_image);
}

InferenceReport run_inference(model::MaskRCNN& net, const io::CocoDataset& dataset,
                              std::shared_ptr<const slice::SlicedDataset> views,
                              const pipeline::PipelineConfig& pipeline, const std::vector<uint32_t>& indices,
                              const std::string& device, const ImageDetectionsFn& on_image) {
  InferenceReport report;
  pipeline::PipelineConfig cfg = pipeline;
  cfg.loader.max_epochs = 1;
  pipeline::TicketSource tickets = [indices](uint64_t epoch) {
    std::vector<stages::SampleTicket> out;
    if (epoch != 0) return out;
    out.resize(indices.size());
    for (size_t i = 0; i < indices.size(); ++i) {
      out[i].seq = i;
      out[i].epoch = 0;
      out[i].image_index = indices[i];
      out[i].position = i;
    }
    return out;
  };

  const c10::Device dev(device);
  const auto t0 = std::chrono::steady_clock::now();
  detail::EvalModeGuard mode(*net);
  torch::NoGradGuard no_grad;
  pipeline::Loader loader(dataset, std::move(views), cfg, pipeline::Output::kBatches, tickets);
  while (auto batch = loader.next_batch()) {
    model::ImageList images;
    images.tensors = batch->images.to(dev);
    images.image_sizes = batch->image_sizes;
    std::vector<model::Size2> original;
    original.reserve(batch->targets.size());
    for (const auto& t : batch->targets) original.push_back(t.original_size);
    const model::MaskRCNNOutput out = net->forward_batch(images, {}, original);
    for (size_t i = 0; i < out.detections.size(); ++i) on_image(batch->targets[i], out.detections[i]);
    report.images += batch->targets.size();
  }
  report.skipped = loader.skipped();
  report.seconds = seconds_since(t0);
  return report;
}

EvaluationReport evaluate_model(model::MaskRCNN& net, const io::CocoDataset& dataset,
                                const pipeline::PipelineConfig& pipeline, const stages::CategoryMap& categories,
                                const EvaluateOptions& options) {
  EvaluationReport report;
  std::shared_ptr<const slice::SlicedDataset> views = options.views;
  if (!views) views = pipeline::make_views(dataset, pipeline);
  // The ground truth: the views dataset when slicing (views' ids, cut annotations).
  const io::CocoDataset& gt = views ? views->dataset : dataset;
  if (views) report.views = gt.images.size();
  size_t n = gt.images.size();
  if (options.max_images > 0) n = std::min(n, options.max_images);
  std::vector<int64_t> img_ids;
  img_ids.reserve(n);
  for (size_t i = 0; i < n; ++i) img_ids.push_back(gt.images[i].id);

  pipeline::PipelineConfig cfg = pipeline;
  if (options.batch_size > 0) cfg.loader.batch_size = options.batch_size;
  const int world = std::max(1, options.world_size);
  if (world > 1 && !options.all_gather) {
    throw Error("no_all_gather", "a sharded evaluation (world_size > 1) needs EvaluateOptions::all_gather");
  }
  // This rank's images: every batch the single process would form, dealt round-robin.
  std::vector<uint32_t> indices;
  const size_t per_batch = static_cast<size_t>(std::max(1, cfg.loader.batch_size));
  for (size_t b = 0; b * per_batch < n; ++b) {
    if (static_cast<int>(b % static_cast<size_t>(world)) != options.rank) continue;
    for (size_t i = b * per_batch; i < std::min(n, (b + 1) * per_batch); ++i) indices.push_back(static_cast<uint32_t>(i));
  }
  std::map<int64_t, uint32_t> position_of;
  for (size_t i = 0; i < n; ++i) position_of[img_ids[i]] = static_cast<uint32_t>(i);

  std::vector<eval::Detection> results;
  std::vector<uint32_t> positions;  // of each result's image
  const bool with_masks = net->config().mask.enabled;
  const InferenceReport inference = run_inference(
      net, dataset, views, cfg, indices, options.device,
      [&](const stages::Target& image, const model::Detection& detection) {
        for (eval::Detection& d : to_coco_results(detection, image.image_id, categories, options.mask_threshold)) {
          if (gt.category_index(d.category_id) < 0) {
            ++report.dropped;
            continue;
          }
          results.push_back(std::move(d));
          positions.push_back(position_of.at(image.image_id));
        }
      });
  report.images = inference.images;
  report.inference_s = inference.seconds;

  if (world > 1) {
    eval::DetectionShard mine;
    mine.images = report.images;
    mine.dropped = report.dropped;
    mine.detections = results;
    mine.positions = positions;
    const std::vector<std::vector<uint8_t>> all = options.all_gather(eval::encode_shard(mine));
    if (options.rank != 0) {
      report.evaluated = false;
      report.detections = results.size();
      return report;
    }
    // Rank 0: every rank's detections, back in the single-process order
    // (by image position; an image's detections come from one rank, in order).
    std::vector<std::pair<uint32_t, eval::Detection>> merged;
    report.images = 0;
    report.dropped = 0;
    for (const std::vector<uint8_t>& bytes : all) {
      eval::DetectionShard shard = eval::decode_shard(bytes);
      report.images += shard.images;
      report.dropped += shard.dropped;
      for (size_t i = 0; i < shard.detections.size(); ++i) {
        merged.emplace_back(shard.positions[i], std::move(shard.detections[i]));
      }
    }
    std::stable_sort(merged.begin(), merged.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    results.clear();
    for (auto& [pos, d] : merged) results.push_back(std::move(d));
  }

  report.detections = results.size();

  const auto t1 = std::chrono::steady_clock::now();
  eval::EvalParams params;
  params.img_ids = img_ids;
  eval::EvalOptions eopts;
  eopts.threads = options.eval_threads;
  // As torchvision's and detectron2's COCO evaluators: bbox results carry no
  // segmentation, segm results no bbox (so loadRes takes their area from the
  // mask, which decides the area ranges of unmatched detections).
  std::vector<eval::Detection> boxes_only;
  boxes_only.reserve(results.size());
  for (const eval::Detection& d : results) {
    eval::Detection b;
    b.image_id = d.image_id;
    b.category_id = d.category_id;
    b.score = d.score;
    b.bbox = d.bbox;
    boxes_only.push_back(std::move(b));
  }
  params.iou_type = eval::IouType::kBbox;
  report.bbox = eval::evaluate(gt, boxes_only, params, eopts);
  if (with_masks) {
    for (eval::Detection& d : results) d.bbox.reset();
    params.iou_type = eval::IouType::kSegm;
    report.segm = eval::evaluate(gt, results, params, eopts);
  }
  report.eval_s = seconds_since(t1);
  return report;
}

}  // namespace pasteflow::train
