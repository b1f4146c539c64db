// Configuration of a training run (`pasteflow train --config C`): the data,
// the input pipeline, the model, the solver (SGD with momentum, linear
// warm-up, multi-step decay), checkpointing and periodic evaluation.
//
// The paper's schedule (Kisantal et al., sec. 5: Mask R-CNN R50-FPN,
// 36k iterations, learning rate 0.01 at 8 images per iteration divided by
// 10 at 24k and 32k) is the default of `solver`; configs/train/ holds
// complete files. Every key is described beside its field
// (`pasteflow config --schema` style); load_train_config() adds the
// cross-field checks.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "pasteflow/config/describe.hpp"
#include "pasteflow/dist/config.hpp"
#include "pasteflow/model/config.hpp"
#include "pasteflow/train/grad_scaler.hpp"
#include "pasteflow/pipeline/config.hpp"

namespace pasteflow::train {

/// Where the training and validation sets are. Relative paths resolve
/// against the working directory.
struct DataConfig {
  std::string train_annotations;  ///< COCO instances JSON (required)
  std::string train_images;       ///< directory the file names resolve against
  std::string val_annotations;    ///< empty: no evaluation
  std::string val_images;
  /// Low-data regime: train on this fraction of the training images, chosen
  /// by io::fraction_indices (hash of train_fraction_seed and file name;
  /// independent of pipeline.seed, so every run and seed of an experiment
  /// trains on the same images). 1 = all.
  double train_fraction = 1.0;
  uint64_t train_fraction_seed = 0;

  static void describe(config::Describer<DataConfig>& d);
};

/// SGD with momentum and weight decay; learning rate schedule
/// lr(i) = base * warmup(i) * gamma^(number of steps <= i), where
/// base = base_lr * batch / reference_batch when scale_lr (the linear
/// scaling rule) and warmup(i) = warmup_factor * (1 - i / warmup_iters) +
/// i / warmup_iters for i < warmup_iters ("linear"; "constant": the factor
/// itself), 1 afterwards (detectron2's WarmupMultiStepLR).
struct SolverConfig {
  double base_lr = 0.01;
  int reference_batch = 8;     ///< images per iteration base_lr is meant for
  bool scale_lr = true;        ///< linear scaling rule: lr = base_lr * batch_size / reference_batch
  double momentum = 0.9;
  bool nesterov = false;
  double weight_decay = 1e-4;
  double weight_decay_norm = 0.0;  ///< decay of normalisation layers' parameters (GroupNorm, BatchNorm)
  bool decay_bias = true;          ///< biases get weight_decay (false: none)
  uint64_t warmup_iters = 1000;
  double warmup_factor = 0.001;
  std::string warmup_method = "linear";  ///< linear | constant
  std::vector<uint64_t> steps{24000, 32000};
  double gamma = 0.1;
  uint64_t max_iter = 36000;
  double clip_grad_norm = 0.0;  ///< > 0: clip the global L2 norm of the gradients to this
  /// Mixed precision of the forward pass (model/precision.hpp): off, bf16
  /// (CPU and CUDA) or fp16 (CUDA only, with the dynamic loss `scaler`).
  /// Evaluation during training uses it too.
  std::string amp = "off";
  GradScalerConfig scaler;  ///< fp16 loss scaling (unused by off and bf16)

  static void describe(config::Describer<SolverConfig>& d);
};

struct CheckpointConfig {
  std::string dir = "checkpoints";  ///< relative paths resolve against output_dir
  uint64_t period = 2000;           ///< iterations between checkpoints (the last iteration always gets one)
  int keep_last = 3;                ///< checkpoints kept (older ones are deleted); 0 = keep all

  static void describe(config::Describer<CheckpointConfig>& d);
};

struct EvalConfig {
  uint64_t period = 4000;  ///< iterations between evaluations; 0 = only after the last iteration
  bool at_end = true;      ///< evaluate after the last iteration
  std::string metric = "segm_AP_small";  ///< decides best.pt; <bbox|segm>_<AP|AP50|...> (see metric_names())
  uint64_t max_images = 0;  ///< evaluate on the first N validation images only (0 = all)
  int batch_size = 0;       ///< images per evaluation batch (0 = the training batch size)
  double mask_threshold = 0.5;  ///< pasted mask probabilities > this are the object
  int threads = 0;          ///< COCOeval worker threads (0 = all cores)

  static void describe(config::Describer<EvalConfig>& d);
};

/// The root of a training config file.
struct TrainConfig {
  DataConfig data;
  pipeline::PipelineConfig pipeline;
  model::ModelConfig model;
  SolverConfig solver;
  CheckpointConfig checkpoint;
  EvalConfig eval;
  dist::DistConfig dist;  ///< data-parallel training (ranks come from the launcher's environment)
  std::string output_dir = "runs/train";
  std::string device = "cpu";  ///< cpu, cuda, cuda:N
  uint64_t log_period = 20;    ///< iterations per metrics line
  int torch_threads = 0;       ///< LibTorch intra-op threads (0 = LibTorch's default)

  static void describe(config::Describer<TrainConfig>& d);
};

/// load_config<TrainConfig>(path, overrides) and validate(config, path).
TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides = {});

/// As load_train_config for YAML text (`name` stands for the file).
TrainConfig parse_train_config(const std::string& yaml, const std::string& name,
                               const std::vector<std::string>& overrides = {});

/// Cross-field checks: the pipeline's and the model's own checks, steps
/// strictly increasing, warm-up and metric names, a parsable device, the
/// model's device agreeing with `device`, train_annotations set. Throws
/// ConfigError naming the key and `file`.
void validate(const TrainConfig& config, const std::string& file = {});

/// The base learning rate after the linear scaling rule.
double scaled_base_lr(const SolverConfig& solver, int batch_size);

/// The learning rate of iteration `iter` (0-based).
double learning_rate(const SolverConfig& solver, int batch_size, uint64_t iter);

/// One of the 12 COCO summary numbers of bbox or segm evaluation.
struct MetricId {
  bool segm = false;   ///< false: bbox
  size_t index = 0;    ///< into EvalResult::stats
};

/// "bbox_AP", "segm_AP_small", ...: <bbox|segm>_<stat> with stat one of
/// kStatNames. Throws ConfigError "bad_choice".
MetricId parse_metric(const std::string& name);

/// Names of EvalResult::stats entries, in order.
inline constexpr std::array<const char*, 12> kStatNames = {
    "AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
    "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large"};

/// Every accepted metric name (bbox_* then segm_*).
std::vector<std::string> metric_names();

}  // namespace pasteflow::train
