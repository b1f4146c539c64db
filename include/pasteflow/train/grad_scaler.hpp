// Dynamic loss scaling for fp16 training (torch.cuda.amp.GradScaler's
// algorithm, device-independent): the loss is multiplied by `scale` before
// backward so that small fp16 gradients do not flush to zero; before the
// optimizer step the gradients are divided by it again (unscale) and
// checked: any inf or NaN skips the step and multiplies the scale by
// backoff_factor; growth_interval finite steps in a row multiply it by
// growth_factor.
//
//   GradScaler scaler(config.solver.scaler);
//   scaler.scale(loss).backward();
//   const bool finite = scaler.unscale(params);   // before clipping
//   if (finite) optimizer.step();
//   scaler.update(finite);
//
// bf16 has fp32's exponent range and needs no scaling (the trainer leaves
// the scaler disabled then, as PyTorch's CPU autocast recipes do).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "pasteflow/config/describe.hpp"

namespace pasteflow::train {

/// solver.scaler: torch.cuda.amp.GradScaler's constructor arguments.
struct GradScalerConfig {
  /// auto: loss scaling with solver.amp fp16 only; on: always (any
  /// precision; what the CPU tests of the fp16 path use); off: never.
  std::string enabled = "auto";
  double init_scale = 65536.0;  ///< 2^16
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;

  static void describe(config::Describer<GradScalerConfig>& d);
};

/// The scaler's state, saved in checkpoints (trainer.grad_scaler).
struct GradScalerState {
  double scale = 65536.0;
  int64_t growth_tracker = 0;  ///< finite steps since the last change of scale
};

class GradScaler {
 public:
  /// Disabled: scale() returns the loss as is, unscale() only checks, update() does nothing.
  explicit GradScaler(const GradScalerConfig& config = {}, bool enabled = true);

  bool enabled() const { return enabled_; }
  /// loss * scale (the loss itself when disabled).
  at::Tensor scale(const at::Tensor& loss) const;
  /// Divides every defined gradient of `params` by the scale in place (when
  /// enabled) and returns whether all of them are finite. In place, so
  /// gradients that are views into a distributed reducer's buckets stay views.
  bool unscale(const std::vector<at::Tensor>& params) const;
  /// After the step (taken or skipped): backoff on an inf / NaN, growth
  /// after growth_interval finite steps.
  void update(bool found_finite);

  /// Steps skipped since construction (or load_state).
  int64_t skipped() const { return skipped_; }
  GradScalerState state() const { return state_; }
  void load_state(const GradScalerState& state);
  double current_scale() const { return state_.scale; }

 private:
  GradScalerConfig config_;
  bool enabled_ = true;
  GradScalerState state_;
  int64_t skipped_ = 0;
};

}  // namespace pasteflow::train
