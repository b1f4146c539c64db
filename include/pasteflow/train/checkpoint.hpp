// Training checkpoints: everything a run needs to continue bit-exactly.
//
// A checkpoint is one torch.save'd (zip format) plain dict {name: tensor},
// the format of model/weights.hpp, so Python reads it with torch.load:
//   model.<state_dict key>                  every parameter and buffer
//   optimizer.momentum_buffer.<param name>  SGD momentum of each parameter that has one
//   trainer.iteration                       int64 [1]: iterations completed
//   trainer.loader_position                 int64 [2]: (epoch, batch) of the next batch (Loader::seek)
//   trainer.rng.model                       int64 [4]: the model's Rng (multi-scale choice)
//   trainer.rng.torch_cpu                   uint8: LibTorch's default CPU generator (random samplers)
//   trainer.rng.torch_cuda.<i>              uint8: default CUDA generator of device i (when present)
//   trainer.best                            float64 [2]: (best metric value, its iteration)
//   trainer.lr                              float64 [1]: learning rate of the last iteration
//   trainer.config                          uint8: the resolved config (dump_config YAML)
//   trainer.format                          int64 [1]: kCheckpointFormat
//   trainer.world_size                      int64 [1]: processes of the run (absent: 1)
//   trainer.rank.<r>.rng.model / .rng.torch_cpu   rank r's generators (r >= 1, distributed runs)
//   trainer.grad_scaler                     float64 [2]: (loss scale, growth tracker) of solver.amp fp16 runs
// Files are written atomically: a temporary file in the same directory,
// flushed and fsync'ed, renamed over the target, then the directory fsync'ed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/optim/sgd.h>

#include "pasteflow/core/random.hpp"
#include "pasteflow/train/grad_scaler.hpp"

namespace pasteflow::train {

inline constexpr int64_t kCheckpointFormat = 1;

/// States of the random generators a run draws from (besides the loader's,
/// which depend on (seed, epoch, position) only).
struct RngStates {
  Rng::State model{};               ///< MaskRCNN::rng()
  at::Tensor torch_cpu;             ///< default CPU generator
  std::vector<at::Tensor> torch_cuda;  ///< default CUDA generator of each device
};

/// Captures / restores LibTorch's default generators (CPU, every CUDA device).
RngStates capture_torch_rng();
void restore_torch_rng(const RngStates& states);

/// The non-tensor part of a checkpoint.
struct TrainState {
  uint64_t iteration = 0;  ///< iterations completed
  uint64_t epoch = 0;      ///< loader position of the next batch
  uint64_t batch = 0;
  RngStates rng;
  double best_metric = -std::numeric_limits<double>::infinity();
  uint64_t best_iteration = 0;
  double lr = 0.0;
  std::string config_yaml;
  /// Distributed runs: the number of processes, and the generators of
  /// ranks 1 .. world_size - 1 (rank 0's are `rng`).
  uint64_t world_size = 1;
  std::vector<RngStates> rank_rng;
  /// solver.amp fp16: the dynamic loss scaler (absent otherwise).
  std::optional<GradScalerState> grad_scaler;
};

/// "model_0000100.pt" (7 digits, more when needed).
std::string checkpoint_file_name(uint64_t iteration);

/// Writes model, SGD momentum buffers and `state` to `path` atomically.
/// Throws Error "cannot_write".
void save_checkpoint(const std::string& path, const torch::nn::Module& model, const torch::optim::SGD& optimizer,
                     const TrainState& state);

/// Restores model and optimizer (momentum buffers replaced, on the
/// parameters' devices) and returns the state. The model must have the
/// checkpoint's architecture. Throws InputError "cannot_open",
/// "bad_weights_file", "bad_checkpoint" (missing / malformed trainer entry,
/// unknown format) and the model/weights.hpp mismatch codes, naming the file.
TrainState load_checkpoint(const std::string& path, torch::nn::Module& model, torch::optim::SGD& optimizer);

/// Only the model's weights of a training checkpoint (the "model." entries
/// without the prefix): what model::load_state_dict takes.
std::map<std::string, at::Tensor> checkpoint_model_weights(const std::string& path);

/// (iteration, path) of the files named checkpoint_file_name(i) in `dir`,
/// ordered by iteration; empty when `dir` does not exist.
std::vector<std::pair<uint64_t, std::string>> list_checkpoints(const std::string& dir);

/// The newest checkpoint of `dir`, "" when there is none.
std::string latest_checkpoint(const std::string& dir);

/// Deletes the temporary files a killed run left in `dir`: only names of the
/// exact form checkpoint_file_name(i) + ".tmp-" + PID (what save_checkpoint
/// writes) whose PID is not a running process (nor this one). Returns the
/// deleted paths (for the caller to report); a missing `dir` removes nothing.
std::vector<std::string> remove_stale_temporaries(const std::string& dir);

/// Deletes all but the newest `keep_last` checkpoints (keep_last 0: none
/// deleted). Returns the deleted paths.
std::vector<std::string> prune_checkpoints(const std::string& dir, int keep_last);

/// Writes `size` bytes to `path` atomically (temporary file in the same
/// directory, fsync, rename, directory fsync). Throws Error "cannot_write".
void write_file_atomic(const std::string& path, const void* data, size_t size);
inline void write_file_atomic(const std::string& path, const std::string& text) {
  write_file_atomic(path, text.data(), text.size());
}

}  // namespace pasteflow::train
