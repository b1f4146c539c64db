// Data-parallel training across processes and machines on PyTorch's
// distributed engine, c10d (LibTorch's torch.distributed): ProcessGroupGloo
// on CPUs, ProcessGroupNCCL in CUDA builds that have it. Nothing here is a
// transport of our own: the rendezvous is a c10d TCPStore (or FileStore),
// the collectives are c10d's.
//
//   const dist::LaunchEnv env = dist::launch_environment();   // RANK, WORLD_SIZE, ...
//   dist::ProcessGroup group(env, config.dist);               // rendezvous
//   dist::broadcast_module(group, *model);                    // rank 0's weights everywhere
//   dist::GradientReducer reducer(group, trainable_params, config.dist);
//   for (...) {
//     reducer.prepare();               // before backward
//     loss.backward();                 // hooks all-reduce full buckets meanwhile
//     const auto sync = reducer.finish(stop_signal);   // averaged gradients in param.grad
//     optimizer.step();
//   }
//
// Failure: every collective runs under DistConfig::timeout_s. When one
// fails (a peer's connection closed, or the timeout passed), the error is a
// DistError naming the rank(s) that fell behind: before each collective a
// rank records how many it has entered in the store, so the survivors can
// tell which rank stopped (dead or hung) and where.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include "pasteflow/core/error.hpp"
#include "pasteflow/dist/config.hpp"

namespace pasteflow::dist {

/// Who this process is, as the launcher says (torchrun's environment).
struct LaunchEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;        ///< rank on this machine
  int local_world_size = 1;  ///< processes on this machine
  std::string master_addr;   ///< the TCP store's host (rank 0's machine)
  int master_port = 0;
  std::string source;        ///< "torchrun" (RANK, ...), "slurm" (SLURM_PROCID, ...) or "" (single process)

  /// Rank `rank` of `world_size` on this machine, the TCP store at
  /// 127.0.0.1:`port` (ranks started by a program itself: tests, benchmarks).
  static LaunchEnv loopback(int rank, int world_size, int port) {
    LaunchEnv e;
    e.rank = rank;
    e.world_size = world_size;
    e.local_rank = rank;
    e.local_world_size = world_size;
    e.master_addr = "127.0.0.1";
    e.master_port = port;
    e.source = "loopback";
    return e;
  }
};

/// Reads RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR,
/// MASTER_PORT (torchrun, `pasteflow train --nproc`); without RANK, Slurm's
/// SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NTASKS_PER_NODE (srun)
/// with MASTER_ADDR / MASTER_PORT; without either, a single process (world
/// size 1). `getenv` is the lookup (tests pass their own). Throws ConfigError
/// naming the variable (Location::key "env RANK") when a value is not an
/// integer, out of range, or one that a distributed run needs is missing.
LaunchEnv launch_environment(const std::function<const char*(const char*)>& getenv = {});

/// A collective failed: a peer died, hung past the timeout, or the store is
/// gone. ranks() are the ranks that fell behind (empty when unknown).
class DistError : public Error {
 public:
  DistError(std::string reason, const std::string& message, std::vector<int> ranks)
      : Error(std::move(reason), message), ranks_(std::move(ranks)) {}
  const std::vector<int>& ranks() const noexcept { return ranks_; }

 private:
  std::vector<int> ranks_;
};

/// One c10d process group with its store: rendezvous at construction (every
/// rank blocks until all WORLD_SIZE have joined, at most timeout_s).
class ProcessGroup {
 public:
  /// Throws ConfigError (backend unavailable, missing MASTER_ADDR) and
  /// DistError "rendezvous_failed" (no rendezvous within the timeout).
  ProcessGroup(const LaunchEnv& env, const DistConfig& config, const std::string& device = "cpu");
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const noexcept;
  int world_size() const noexcept;
  const LaunchEnv& env() const noexcept;
  const DistConfig& config() const noexcept;
  std::string backend_name() const;

  /// Rank `root`'s tensors into every rank's (same shapes and dtypes on all
  /// ranks); coalesced per dtype into one broadcast each.
  void broadcast(std::vector<at::Tensor>& tensors, int root = 0);
  /// Element-wise sum over ranks, in place.
  void all_reduce_sum(at::Tensor& tensor);
  /// Every rank's bytes, indexed by rank.
  std::vector<std::vector<uint8_t>> all_gather_bytes(const std::vector<uint8_t>& bytes);
  void barrier();

  /// Collectives this rank has entered (what the failure diagnosis compares).
  uint64_t collectives() const noexcept;

  /// Implementation access for GradientReducer (dist/ only).
  struct Impl;
  Impl& impl() noexcept { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

/// Rank 0's parameters and buffers copied into every rank's `module`.
void broadcast_module(ProcessGroup& group, torch::nn::Module& module);

/// FNV-1a hash of the bytes of a module's parameters and buffers, in
/// order: equal on two ranks exactly when their weights are bit-identical
/// (barring collisions).
uint64_t module_hash(const torch::nn::Module& module);

/// Every rank's module_hash compared with rank 0's (collective). Throws
/// DistError "ranks_diverged" naming the ranks that differ.
void verify_same_weights(ProcessGroup& group, const torch::nn::Module& module, const std::string& when);

/// Bucketed gradient all-reduce with autograd hooks (PyTorch DDP's Reducer,
/// simplified): the parameters are split, in reverse order (the order
/// backward produces their gradients), into buckets of about
/// DistConfig::bucket_mb; a hook on each parameter copies its gradient into
/// the bucket, and a full bucket's all-reduce is launched at once (overlap),
/// buckets always in the same order on every rank. finish() launches the
/// rest, waits, and sets each parameter's gradient to the mean over ranks
/// (a rank without a gradient for it contributes zeros); a parameter no rank
/// got a gradient for keeps an undefined gradient, as in one process. The
/// gradients are views into the buckets (PyTorch's gradient_as_bucket_view),
/// valid until the next prepare().
class GradientReducer {
 public:
  struct Sync {
    int stop = 0;          ///< max over ranks of the value given to finish (a signal number; 0 = none)
    double wait_s = 0.0;   ///< time finish() waited for communication
  };
  struct Layout {
    size_t buckets = 0;
    size_t parameters = 0;
    size_t bytes = 0;
  };

  /// `params`: the trainable parameters, in the module's order (the same on
  /// every rank). Registers the hooks (removed by the destructor).
  GradientReducer(ProcessGroup& group, std::vector<at::Tensor> params, const DistConfig& config);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  /// Before each backward: clears the buckets.
  void prepare();
  /// After backward: averaged gradients in the parameters, and the max of
  /// every rank's `stop` (so all ranks stop at the same iteration).
  Sync finish(int stop = 0);
  Layout layout() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pasteflow::dist
