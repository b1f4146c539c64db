// The c10d objects behind dist::ProcessGroup (dist/ only: the public
// header does not include c10d).
#pragma once

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <atomic>
#include <string>

#include "pasteflow/dist/dist.hpp"

namespace pasteflow::dist {

struct ProcessGroup::Impl {
  LaunchEnv env;
  DistConfig config;
  std::string backend;
  std::string store_text;  ///< "host:port" or "file PATH"
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
  /// Where the backend's tensors must live: CPU for Gloo, the CUDA device
  /// for NCCL (helpers move their own small tensors there and back).
  c10::Device tensor_device{c10::kCPU};
  std::atomic<uint64_t> collectives{0};
  const char* current_op = "";

  /// Counts the collective `op` and records the count in the store.
  void enter(const char* op);
  /// Waits for `work`; a failure becomes fail(cause).
  void wait(const c10::intrusive_ptr<c10d::Work>& work);
  /// Throws DistError naming the ranks that entered fewer collectives.
  [[noreturn]] void fail(const std::exception& cause);
};

}  // namespace pasteflow::dist
