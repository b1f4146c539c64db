#include "pasteflow/train/config.hpp"

#include <c10/core/Device.h>

#include <cmath>
#include <exception>

#include "pasteflow/config/config.hpp"
#include "pasteflow/core/error.hpp"
#include "pasteflow/model/precision.hpp"

namespace pasteflow::train {

void DataConfig::describe(config::Describer<DataConfig>& d) {
  d.field("train_annotations", &DataConfig::train_annotations,
          "COCO instances JSON of the training set (required; relative to the working directory)");
  d.field("train_images", &DataConfig::train_images, "directory the training images' file names resolve against");
  d.field("val_annotations", &DataConfig::val_annotations,
          "COCO instances JSON of the validation set (empty: no evaluation)");
  d.field("val_images", &DataConfig::val_images, "directory the validation images' file names resolve against");
  d.field("train_fraction", &DataConfig::train_fraction,
          "train on this fraction of the training images (low-data regime): images ordered by a hash of "
          "(train_fraction_seed, file_name), the first max(1, round(fraction * N)) kept; 1 = all")
      .range(0.0, 1.0);
  d.field("train_fraction_seed", &DataConfig::train_fraction_seed,
          "seed of the train_fraction selection (independent of pipeline.seed: every seed trains on the same images)");
}

void SolverConfig::describe(config::Describer<SolverConfig>& d) {
  d.field("base_lr", &SolverConfig::base_lr, "learning rate at reference_batch images per iteration (paper: 0.01 at 8)")
      .range(0.0, 1e6);
  d.field("reference_batch", &SolverConfig::reference_batch, "images per iteration base_lr is meant for")
      .range(1, 1 << 20);
  d.field("scale_lr", &SolverConfig::scale_lr,
          "linear scaling rule: lr = base_lr * pipeline.loader.batch_size / reference_batch (false: base_lr as is)");
  d.field("momentum", &SolverConfig::momentum, "SGD momentum").range(0.0, 1.0);
  d.field("nesterov", &SolverConfig::nesterov, "Nesterov momentum");
  d.field("weight_decay", &SolverConfig::weight_decay, "L2 weight decay of the weights").range(0.0, 1.0);
  d.field("weight_decay_norm", &SolverConfig::weight_decay_norm,
          "weight decay of normalisation layers' parameters (GroupNorm / BatchNorm; frozen BN has none)")
      .range(0.0, 1.0);
  d.field("decay_bias", &SolverConfig::decay_bias, "biases get weight_decay (false: no decay on biases)");
  d.field("warmup_iters", &SolverConfig::warmup_iters, "iterations of learning-rate warm-up (0 = none)");
  d.field("warmup_factor", &SolverConfig::warmup_factor, "learning-rate factor at iteration 0 of the warm-up")
      .range(0.0, 1.0);
  d.field("warmup_method", &SolverConfig::warmup_method,
          "linear: the factor rises linearly to 1; constant: the factor holds until warmup_iters")
      .one_of({"linear", "constant"});
  d.field("steps", &SolverConfig::steps,
          "iterations at which the learning rate is multiplied by gamma (paper: 24000, 32000), increasing");
  d.field("gamma", &SolverConfig::gamma, "learning-rate factor at each step").range(0.0, 1.0);
  d.field("max_iter", &SolverConfig::max_iter, "iterations of training (paper: 36000)").range(1, UINT64_C(1) << 40);
  d.field("clip_grad_norm", &SolverConfig::clip_grad_norm,
          "clip the global L2 norm of the gradients to this (0 = no clipping)")
      .range(0.0, 1e12);
  d.field("amp", &SolverConfig::amp,
          "mixed precision of the forward pass: off (fp32), bf16 (CPU with AVX-512 BF16 / AMX, or CUDA), "
          "fp16 (CUDA only, with dynamic loss scaling)")
      .one_of({"off", "bf16", "fp16"});
  d.field("scaler", &SolverConfig::scaler, "dynamic loss scaling of solver.amp fp16 (torch GradScaler)");
}

void CheckpointConfig::describe(config::Describer<CheckpointConfig>& d) {
  d.field("dir", &CheckpointConfig::dir, "checkpoint directory (relative paths resolve against output_dir)");
  d.field("period", &CheckpointConfig::period,
          "iterations between checkpoints; the last iteration (and an interrupted run) always gets one")
      .range(1, UINT64_C(1) << 40);
  d.field("keep_last", &CheckpointConfig::keep_last, "newest checkpoints kept, older ones deleted (0 = keep all)")
      .range(0, 1 << 20);
}

void EvalConfig::describe(config::Describer<EvalConfig>& d) {
  d.field("period", &EvalConfig::period,
          "iterations between evaluations on the validation set (0 = only after the last iteration)");
  d.field("at_end", &EvalConfig::at_end, "evaluate after the last iteration");
  d.field("metric", &EvalConfig::metric,
          "COCO number that picks best.pt: <bbox|segm>_<AP|AP50|AP75|AP_small|AP_medium|AP_large|AR1|AR10|AR100|"
          "AR_small|AR_medium|AR_large>");
  d.field("max_images", &EvalConfig::max_images, "evaluate on the first N validation images (0 = all)");
  d.field("batch_size", &EvalConfig::batch_size, "images per evaluation batch (0 = pipeline.loader.batch_size)")
      .range(0, 1 << 20);
  d.field("mask_threshold", &EvalConfig::mask_threshold,
          "a pixel belongs to a detected mask when its pasted probability is > this")
      .range(0.0, 1.0);
  d.field("threads", &EvalConfig::threads, "COCOeval worker threads (0 = all cores); results never depend on it")
      .range(0, 1024);
}

void TrainConfig::describe(config::Describer<TrainConfig>& d) {
  d.field("data", &TrainConfig::data, "training and validation sets");
  d.field("pipeline", &TrainConfig::pipeline,
          "the input pipeline (configs/base.yaml keys); its batch section also sets model.transform, which the "
          "trainer does not apply itself");
  d.field("model", &TrainConfig::model,
          "Mask R-CNN (model.num_classes is set from the training set's categories)");
  d.field("solver", &TrainConfig::solver, "SGD, learning-rate schedule, iterations");
  d.field("checkpoint", &TrainConfig::checkpoint, "periodic checkpoints (resumable bit-exactly with --resume)");
  d.field("eval", &TrainConfig::eval, "periodic COCO evaluation on the validation set; best.pt");
  d.field("dist", &TrainConfig::dist,
          "data-parallel training over processes and machines (c10d); the ranks come from the launcher's "
          "environment (torchrun's RANK, WORLD_SIZE, ...; Slurm; pasteflow train --nproc)");
  d.field("output_dir", &TrainConfig::output_dir,
          "run directory: config.yaml, metrics.jsonl, checkpoints, best.pt");
  d.field("device", &TrainConfig::device, "where the model trains: cpu, cuda or cuda:N");
  d.field("log_period", &TrainConfig::log_period, "iterations averaged into one metrics.jsonl line")
      .range(1, UINT64_C(1) << 40);
  d.field("torch_threads", &TrainConfig::torch_threads, "LibTorch intra-op threads (0 = LibTorch's default)")
      .range(0, 1024);
}

namespace {

[[noreturn]] void fail(const std::string& key, const std::string& file, const std::string& message,
                       const std::string& reason = "bad_value") {
  Location where;
  where.key = key;
  where.file = file;
  throw ConfigError(reason, message, where);
}

/// Runs `check`; ConfigErrors get `prefix` in front of their key and `file`.
template <class F>
void prefixed(const std::string& prefix, const std::string& file, F check) {
  try {
    check();
  } catch (const ConfigError& e) {
    Location where = e.where();
    if (!where.key.empty() && where.key.rfind(prefix + ".", 0) != 0) where.key = prefix + "." + where.key;
    if (where.key.empty()) where.key = prefix;
    if (where.file.empty()) where.file = file;
    throw ConfigError(e.reason(), e.detail(), where);
  }
}

}  // namespace

void validate(const TrainConfig& c, const std::string& file) {
  prefixed("pipeline", file, [&] { pipeline::validate_pipeline_config(c.pipeline, file); });
  prefixed("model", file, [&] { model::validate(c.model, "model"); });

  if (c.pipeline.batch.output != "model") {
    fail("pipeline.batch.output", file,
         "the trainer's model takes the normalised, padded batch tensor: output must be model, not '" +
             c.pipeline.batch.output + "'",
         "bad_choice");
  }
  if (c.data.train_annotations.empty()) {
    fail("data.train_annotations", file, "the training set's annotation file is required", "missing_key");
  }
  if (!(c.data.train_fraction > 0.0 && c.data.train_fraction <= 1.0)) {
    fail("data.train_fraction", file, "must be in (0, 1] (1 = every training image)");
  }
  const SolverConfig& s = c.solver;
  for (size_t i = 1; i < s.steps.size(); ++i) {
    if (s.steps[i] <= s.steps[i - 1]) fail("solver.steps", file, "steps must be strictly increasing");
  }
  if (s.nesterov && !(s.momentum > 0.0)) fail("solver.nesterov", file, "Nesterov momentum needs momentum > 0");
  try {
    const MetricId m = parse_metric(c.eval.metric);
    if (m.segm && !c.model.mask.enabled) {
      fail("eval.metric", file, "a segm metric needs the mask branch (model.mask.enabled)");
    }
  } catch (const ConfigError& e) {
    if (!e.where().key.empty()) throw;
    fail("eval.metric", file, e.detail(), e.reason());
  }
  try {
    const c10::Device device(c.device);
    (void)device;
  } catch (const std::exception&) {
    fail("device", file, "'" + c.device + "' is not a LibTorch device (cpu, cuda, cuda:N)");
  }
  prefixed("solver", file, [&] {
    model::require_amp_supported(model::parse_amp(c.solver.amp, "amp"), c10::Device(c.device).type(), "amp");
  });
  if (c.model.device != "cpu" && c.model.device != c.device) {
    fail("model.device", file,
         "the model trains on `device` ('" + c.device + "'); model.device ('" + c.model.device +
             "') must be left at cpu or equal it",
         "conflicting_device");
  }
}

TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides) {
  TrainConfig config = config::load_config<TrainConfig>(path, overrides);
  validate(config, path);
  return config;
}

TrainConfig parse_train_config(const std::string& yaml, const std::string& name,
                               const std::vector<std::string>& overrides) {
  TrainConfig config = config::parse_config_string<TrainConfig>(yaml, name, overrides);
  validate(config, name);
  return config;
}

double scaled_base_lr(const SolverConfig& solver, int batch_size) {
  if (!solver.scale_lr) return solver.base_lr;
  return solver.base_lr * static_cast<double>(batch_size) / static_cast<double>(solver.reference_batch);
}

double learning_rate(const SolverConfig& solver, int batch_size, uint64_t iter) {
  double factor = 1.0;
  if (iter < solver.warmup_iters) {
    if (solver.warmup_method == "constant") {
      factor = solver.warmup_factor;
    } else {
      const double alpha = static_cast<double>(iter) / static_cast<double>(solver.warmup_iters);
      factor = solver.warmup_factor * (1.0 - alpha) + alpha;
    }
  }
  // bisect_right(steps, iter): steps already passed, the step iteration included.
  int passed = 0;
  for (uint64_t step : solver.steps) {
    if (step <= iter) ++passed;
  }
  return scaled_base_lr(solver, batch_size) * factor * std::pow(solver.gamma, passed);
}

MetricId parse_metric(const std::string& name) {
  MetricId id;
  std::string stat;
  if (name.rfind("bbox_", 0) == 0) {
    stat = name.substr(5);
  } else if (name.rfind("segm_", 0) == 0) {
    id.segm = true;
    stat = name.substr(5);
  }
  for (size_t i = 0; i < kStatNames.size(); ++i) {
    if (!stat.empty() && stat == kStatNames[i]) {
      id.index = i;
      return id;
    }
  }
  std::string all;
  for (const std::string& n : metric_names()) all += (all.empty() ? "" : ", ") + n;
  throw ConfigError("bad_choice", "unknown metric '" + name + "' (one of: " + all + ")");
}

std::vector<std::string> metric_names() {
  std::vector<std::string> out;
  for (const char* type : {"bbox_", "segm_"}) {
    for (const char* stat : kStatNames) out.push_back(std::string(type) + stat);
  }
  return out;
}

}  // namespace pasteflow::train
