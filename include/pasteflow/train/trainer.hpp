// The trainer: Mask R-CNN trained with SGD on the prefetching loader's
// batches, in this process.
//
//   pasteflow::train::Trainer trainer(pasteflow::train::load_train_config("exp.yaml"));
//   trainer.resume();            // optional: continue from the newest checkpoint
//   auto summary = trainer.train();
//
// Iteration-based: one iteration = one batch; when an epoch of the loader
// ends the next one starts. Iteration i (0-based) uses learning_rate(i)
// (linear warm-up, steps), SGD with momentum and per-group weight decay,
// optional gradient-norm clipping. Every checkpoint.period iterations (and
// after the last) a checkpoint (train/checkpoint.hpp) is written and the
// oldest pruned; every eval.period iterations the model is evaluated on the
// validation set and best.pt (model weights, model/weights.hpp format)
// follows the best eval.metric.
//
// Reproducibility: the batches depend on (pipeline.seed, epoch, position)
// only, LibTorch's default generator is seeded from pipeline.seed, gradients
// are reset to undefined before each backward (a parameter with no gradient
// is skipped alike in fresh and continued runs), and a checkpoint holds
// every state the next iteration reads, so a run resumed from a checkpoint
// produces the same losses and weights as one never interrupted (same
// device and LibTorch thread count).
//
// Output directory (output_dir): config.yaml (the resolved config),
// metrics.jsonl (one JSON object per line: "type" train / eval / summary),
// <checkpoint.dir>/model_NNNNNNN.pt, best.pt and best.json.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/optim/sgd.h>

#include "pasteflow/core/error.hpp"
#include "pasteflow/model/mask_rcnn.hpp"
#include "pasteflow/raster/tiff.hpp"
#include "pasteflow/stages/batch.hpp"
#include "pasteflow/train/checkpoint.hpp"
#include "pasteflow/train/config.hpp"
#include "pasteflow/train/evaluate.hpp"

namespace pasteflow::dist {
class ProcessGroup;
class GradientReducer;
}  // namespace pasteflow::dist

namespace pasteflow::train {

/// One optimisation step.
struct IterationRecord {
  uint64_t iteration = 0;  ///< iterations completed, this one included (1-based)
  uint64_t epoch = 0;      ///< the batch's epoch
  std::map<std::string, double> losses;  ///< the model's five losses (distributed: means over the ranks)
  double loss = 0.0;       ///< their sum (what was back-propagated; distributed: the mean over the ranks)
  double lr = 0.0;
  double grad_norm = -1.0;  ///< total gradient norm before clipping (-1: clipping off, not computed)
  size_t images = 0;
  double step_s = 0.0;     ///< forward + backward + update
  double comm_s = 0.0;     ///< distributed: time waiting for the gradient all-reduce after backward
  double data_s = 0.0;     ///< waiting for the batch (train() only)
  /// solver.amp fp16: the loss scale the backward used (0: no loss scaling),
  /// and whether its gradients overflowed, so the update was skipped.
  double loss_scale = 0.0;
  bool skipped_step = false;
};

/// Means over the iterations of one metrics.jsonl "train" line.
struct MetricsWindow {
  uint64_t iteration = 0;  ///< last iteration of the window
  uint64_t epoch = 0;
  uint64_t iterations = 0;  ///< iterations averaged
  double lr = 0.0;          ///< of the last iteration
  std::map<std::string, double> losses;
  double loss = 0.0;
  double time_s = 0.0;      ///< mean wall time per iteration (data wait included)
  double data_s = 0.0;      ///< mean data wait per iteration
  double data_share = 0.0;  ///< data_s / time_s
  double images_per_s = 0.0;  ///< over all ranks
  int world_size = 1;       ///< processes training together
  double comm_s = 0.0;      ///< mean wait for the gradient all-reduce per iteration
  double loss_scale = 0.0;  ///< fp16: loss scale of the last iteration (0: no loss scaling)
  uint64_t skipped_steps = 0;  ///< fp16: updates skipped for overflowing gradients in the window
};

/// A checkpoint Trainer::resume() passed over, and why.
struct RejectedCheckpoint {
  std::string path;
  std::string reason;   ///< the load error's reason code ("truncated_weights_file", ...)
  std::string message;  ///< its message (without the file name)
};

/// Where Trainer::resume() continued from.
struct ResumeInfo {
  std::string path;        ///< "" when the run was not resumed
  uint64_t iteration = 0;  ///< the checkpoint's iteration
  std::vector<RejectedCheckpoint> passed_over;  ///< newer checkpoints that could not be read, newest first
};

/// The loader delivered no batch in a whole epoch: every sample was skipped
/// (on_error: skip) or the dataset is empty. Location file = the training
/// annotations; the message names the image directory and the skip counts
/// by reason with each reason's first message, which skipped() carries
/// (records dropped while loading the annotations and samples the loader dropped).
class EmptyEpochError : public InputError {
 public:
  EmptyEpochError(const std::string& message, Location where, SkipReport skipped)
      : InputError("empty_epoch", message, std::move(where)), skipped_(std::move(skipped)) {}
  const SkipReport& skipped() const noexcept { return skipped_; }

 private:
  SkipReport skipped_;
};

struct TrainSummary {
  uint64_t start_iteration = 0;
  uint64_t end_iteration = 0;
  bool finished = false;      ///< reached solver.max_iter
  bool interrupted = false;   ///< stopped by TrainerHooks::stop
  bool data_exhausted = false;  ///< the loader's stream ended (pipeline.loader.max_epochs)
  double wall_s = 0.0;        ///< whole call, evaluation and checkpoints included
  double iterations_s = 0.0;  ///< sum of iteration times (data wait included)
  double data_wait_s = 0.0;   ///< time spent waiting for batches
  double data_wait_share = 0.0;  ///< data_wait_s / iterations_s (target < 2 %)
  double loader_wait_s = 0.0;    ///< the loader's own count of blocked time (StageTimes)
  /// Slicing (pipeline.slice.above > 0): the training set's views, the
  /// windows the loader read, and its TIFF tile cache (0 when not sliced).
  uint64_t views = 0;
  uint64_t windows_read = 0;
  raster::TileCache::Stats tile_cache;
  uint64_t images = 0;           ///< over all ranks (distributed: world_size x this rank's)
  double images_per_s = 0.0;     ///< images / iterations_s
  double best_metric = 0.0;
  uint64_t best_iteration = 0;   ///< 0: no evaluation yet
  std::string last_checkpoint;
  SkipReport skipped;            ///< samples the loader dropped (on_error: skip)
  ResumeInfo resumed;            ///< what resume() continued from (path "" when not resumed)
  std::vector<std::string> removed_temporaries;  ///< temporary checkpoint files of killed runs deleted at the start
  int world_size = 1;            ///< processes that trained together
  int rank = 0;
  double comm_wait_s = 0.0;      ///< distributed: waiting for gradient all-reduces (after backward)
  /// Distributed: the stop request every rank agreed on (a signal number,
  /// the largest raised on any rank; 0 = none). interrupted is set with it.
  int stop_signal = 0;
};

/// Callbacks for the CLI (the library never prints). All optional.
struct TrainerHooks {
  std::function<void(const std::string&)> log;            ///< human-readable notes
  std::function<void(const IterationRecord&)> on_iteration;
  std::function<void(const MetricsWindow&)> on_window;    ///< each metrics.jsonl "train" line
  std::function<void(uint64_t iteration, const EvaluationReport&)> on_eval;
  /// When it becomes true, train() finishes the current iteration, writes a
  /// checkpoint and returns (interrupted = true).
  const std::atomic<bool>* stop = nullptr;
  /// The signal that raised `stop` (distributed: the ranks agree on the
  /// largest); unset or 0: SIGTERM's number is reported.
  std::function<int()> stop_signal;
};

class Trainer {
 public:
  /// Loads the datasets, builds the loader, the model (on config.device,
  /// model.weights loaded when set) and the optimizer; seeds LibTorch's
  /// default generator from pipeline.seed. model.num_classes is set from the
  /// training set's categories and model.transform from pipeline.batch.
  /// Throws ConfigError / InputError.
  ///
  /// Distributed (`group` with world_size > 1): each rank holds the whole
  /// model; rank 0's initial weights are broadcast, every rank trains on its
  /// shard of each epoch (pipeline.sampler.rank / world_size are set from the
  /// group), gradients are averaged with bucketed all-reduce (dist.bucket_mb,
  /// overlapping backward), the learning rate follows the linear scaling
  /// rule over the global batch (batch_size x world_size), evaluation is
  /// sharded, and rank 0 alone writes config.yaml, metrics.jsonl,
  /// checkpoints (holding every rank's generators) and best.pt. Every rank
  /// must call the same methods in the same order (they are collective).
  explicit Trainer(TrainConfig config, TrainerHooks hooks = {}, std::shared_ptr<dist::ProcessGroup> group = nullptr);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  /// Continues from `checkpoint` ("" = the newest intact one in the
  /// checkpoint directory): model, optimizer, iteration, loader position,
  /// generators, best metric. Before train() only. Returns the path used.
  /// With "", a checkpoint that cannot be read (empty, truncated, not a
  /// PyTorch archive, not a training checkpoint) is passed over for the
  /// next older one, each reported through hooks.log and resume_info();
  /// a checkpoint of another model (missing / unexpected / mismatched
  /// weights) is an error, not passed over. Throws InputError
  /// "no_checkpoint" when there is none, "no_intact_checkpoint" (naming
  /// every file and its problem) when none can be read, and what
  /// load_checkpoint throws for an explicit `checkpoint`. Config keys that
  /// differ from the checkpoint's are reported through hooks.log.
  std::string resume(const std::string& checkpoint = "");

  /// What resume() continued from (path "" before / without it).
  const ResumeInfo& resume_info() const;

  /// Trains until `until` iterations are completed (0 = solver.max_iter),
  /// after deleting the temporary checkpoint files of killed runs
  /// (remove_stale_temporaries; reported through hooks.log and the summary),
  /// the stop flag is raised, or the loader's stream ends. Only the periodic
  /// checkpoints (and those at max_iter / on stop) are written: stopping at
  /// `until` is like being killed there. Appends to metrics.jsonl (lines of
  /// iterations after a resumed checkpoint are dropped first). A run that
  /// was not resumed refuses a checkpoint directory holding checkpoints
  /// (Error "stale_checkpoints"), which would mix two runs. Throws
  /// EmptyEpochError when the loader delivers no batch in a whole epoch.
  TrainSummary train(uint64_t until = 0);

  /// One SGD iteration on `batch` at the learning rate of the current
  /// iteration; advances iteration() (not the loader). Throws Error
  /// "non_finite_loss" when the loss is NaN or infinite.
  IterationRecord step(const stages::Batch& batch);

  /// Evaluates the model now (needs data.val_annotations; Error "no_val_set").
  EvaluationReport evaluate();

  /// Writes the checkpoint of the current iteration and prunes old ones;
  /// returns its path.
  std::string save_checkpoint();

  uint64_t iteration() const;
  double learning_rate() const;  ///< of the next iteration
  const TrainConfig& config() const;
  model::MaskRCNN& model();
  torch::optim::SGD& optimizer();
  const stages::CategoryMap& categories() const;
  std::string checkpoint_dir() const;
  std::string metrics_path() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

/// Parameter groups of the optimizer: trainable parameters split into
/// weights (solver.weight_decay), normalisation parameters
/// (weight_decay_norm) and biases (weight_decay or 0 with decay_bias off).
struct ParamGroups {
  std::vector<std::string> weights, norms, biases;  ///< parameter names
};
ParamGroups param_groups(const torch::nn::Module& model);

/// SGD over the trainable parameters of `model` with those groups.
std::unique_ptr<torch::optim::SGD> make_optimizer(torch::nn::Module& model, const SolverConfig& solver, double lr);

/// Sets the learning rate of every parameter group.
void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

}  // namespace pasteflow::train
