// Configuration of data-parallel training (`dist.` keys of a training
// config). Who is which rank is not configured here: it comes from the
// launcher's environment (dist/dist.hpp: RANK, WORLD_SIZE, ... as torchrun
// sets them, or Slurm's SLURM_PROCID, ...), so one config file serves any
// number of processes.
#pragma once

#include <string>

namespace pasteflow::dist {

struct DistConfig {
  /// "gloo" (CPU tensors; the only backend of Debian's LibTorch), "nccl"
  /// (CUDA tensors; only in a LibTorch built with NCCL) or "auto" (nccl when
  /// the device is CUDA and LibTorch has NCCL, else gloo).
  std::string backend = "auto";
  /// Rendezvous and collective timeout: a rank that dies or hangs makes the
  /// others fail with an error naming it within this time.
  double timeout_s = 300.0;
  /// Gradient bucket size (MiB): gradients are all-reduced in buckets of
  /// about this size, each launched as soon as backward has produced all
  /// of its gradients (PyTorch DDP's bucket_cap_mb).
  double bucket_mb = 25.0;
  /// Launch each bucket's all-reduce from the gradient hooks during backward
  /// (overlap); false: all buckets after backward.
  bool overlap = true;
  /// Rendezvous through a file on a file system every rank sees (torch's
  /// FileStore, file://) instead of a TCP store at MASTER_ADDR:MASTER_PORT.
  std::string store_file;
  /// Every this many iterations the ranks compare a hash of their
  /// parameters and buffers and stop with an error naming the ranks that
  /// differ from rank 0 (0 = never; costs one small all-gather).
  uint64_t verify_period = 0;

  template <class Describer>
  static void describe(Describer& d) {
    d.field("backend", &DistConfig::backend,
            "c10d backend: gloo (CPU), nccl (CUDA; LibTorch built with NCCL only), auto (nccl on CUDA devices when "
            "available, else gloo)")
        .one_of({"auto", "gloo", "nccl"});
    d.field("timeout_s", &DistConfig::timeout_s,
            "rendezvous and collective timeout (s): a rank that dies or hangs stops the others within it, with an "
            "error naming the rank")
        .range(1.0, 604800.0);
    d.field("bucket_mb", &DistConfig::bucket_mb,
            "gradient all-reduce bucket size in MiB (PyTorch DDP's bucket_cap_mb)")
        .range(0.001, 65536.0);
    d.field("overlap", &DistConfig::overlap,
            "launch each bucket's all-reduce from the gradient hooks as soon as it is full, during backward "
            "(false: all buckets after backward)");
    d.field("store_file", &DistConfig::store_file,
            "rendezvous through this file on a shared file system (torch FileStore) instead of the TCP store at "
            "MASTER_ADDR:MASTER_PORT; empty: TCP");
    d.field("verify_period", &DistConfig::verify_period,
            "every N iterations the ranks compare a hash of their parameters and buffers and stop with an error "
            "naming the ranks that differ from rank 0 (0 = never)");
  }
};

}  // namespace pasteflow::dist
