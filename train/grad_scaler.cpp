#include "pasteflow/train/grad_scaler.hpp"

#include <cmath>
#include <string>

#include <ATen/ATen.h>

#include "pasteflow/core/error.hpp"

namespace pasteflow::train {

void GradScalerConfig::describe(config::Describer<GradScalerConfig>& d) {
  d.field("enabled", &GradScalerConfig::enabled,
          "dynamic loss scaling: auto (with solver.amp fp16 only), on (any precision), off")
      .one_of({"auto", "on", "off"});
  d.field("init_scale", &GradScalerConfig::init_scale, "fp16 loss scale at the start (torch GradScaler: 2^16)")
      .range(1e-8, 1e30);
  d.field("growth_factor", &GradScalerConfig::growth_factor,
          "the scale is multiplied by this after growth_interval finite steps in a row")
      .range(1.0, 1e6);
  d.field("backoff_factor", &GradScalerConfig::backoff_factor,
          "the scale is multiplied by this when a step's gradients hold inf or NaN (the step is skipped)")
      .range(1e-6, 1.0);
  d.field("growth_interval", &GradScalerConfig::growth_interval, "finite steps in a row before the scale grows")
      .range(1, 1000000000);
}

GradScaler::GradScaler(const GradScalerConfig& config, bool enabled) : config_(config), enabled_(enabled) {
  state_.scale = config.init_scale;
}

at::Tensor GradScaler::scale(const at::Tensor& loss) const {
  if (!enabled_) return loss;
  return loss * state_.scale;
}

bool GradScaler::unscale(const std::vector<at::Tensor>& params) const {
  // One flag on the gradients' device, read once: a host sync per parameter
  // would stall a GPU step ~200 times.
  at::Tensor all_finite;
  const double inv = 1.0 / state_.scale;
  for (const at::Tensor& p : params) {
    const at::Tensor& g = p.grad();
    if (!g.defined()) continue;
    // Unscale first (torch's _amp_foreach_non_finite_check_and_unscale_):
    // an inf stays inf and a NaN stays NaN.
    if (enabled_) g.mul_(inv);
    const at::Tensor ok = at::isfinite(g).all();
    all_finite = all_finite.defined() ? all_finite.logical_and(ok) : ok;
  }
  return !all_finite.defined() || all_finite.item<bool>();
}

void GradScaler::update(bool found_finite) {
  if (!found_finite) ++skipped_;
  if (!enabled_) return;
  // torch's _amp_update_scale_.
  if (!found_finite) {
    state_.scale *= config_.backoff_factor;
    state_.growth_tracker = 0;
    return;
  }
  if (++state_.growth_tracker == config_.growth_interval) {
    const double grown = state_.scale * config_.growth_factor;
    if (std::isfinite(grown)) state_.scale = grown;
    state_.growth_tracker = 0;
  }
}

void GradScaler::load_state(const GradScalerState& state) {
  if (!(state.scale > 0.0) || !std::isfinite(state.scale) || state.growth_tracker < 0) {
    throw InputError("bad_checkpoint", "grad scaler state out of range: scale " + std::to_string(state.scale) +
                                           ", growth tracker " + std::to_string(state.growth_tracker));
  }
  state_ = state;
}

}  // namespace pasteflow::train
