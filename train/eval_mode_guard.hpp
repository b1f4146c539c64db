// Private to train/: a module in eval mode for a scope (evaluation, prediction).
#pragma once

#include <torch/nn/module.h>

namespace pasteflow::train::detail {

/// Puts the module in eval mode for the scope, then back to what it was.
class EvalModeGuard {
 public:
  explicit EvalModeGuard(torch::nn::Module& m) : module_(m), was_training_(m.is_training()) { m.eval(); }
  ~EvalModeGuard() { module_.train(was_training_); }
  EvalModeGuard(const EvalModeGuard&) = delete;
  EvalModeGuard& operator=(const EvalModeGuard&) = delete;

 private:
  torch::nn::Module& module_;
  bool was_training_;
};

}  // namespace pasteflow::train::detail
