#include "pasteflow/model/precision.hpp"

#include <ATen/autocast_mode.h>

#include "pasteflow/core/error.hpp"

namespace pasteflow::model {

Amp parse_amp(const std::string& name, const std::string& key) {
  if (name == "off") return Amp::kOff;
  if (name == "bf16") return Amp::kBf16;
  if (name == "fp16") return Amp::kFp16;
  Location where;
  where.key = key;
  throw ConfigError("bad_choice", "amp must be off, bf16 or fp16, got '" + name + "'", where);
}

std::string amp_name(Amp amp) {
  switch (amp) {
    case Amp::kBf16:
      return "bf16";
    case Amp::kFp16:
      return "fp16";
    case Amp::kOff:
      break;
  }
  return "off";
}

at::ScalarType amp_dtype(Amp amp) {
  switch (amp) {
    case Amp::kBf16:
      return at::kBFloat16;
    case Amp::kFp16:
      return at::kHalf;
    case Amp::kOff:
      break;
  }
  return at::kFloat;
}

bool amp_supported(Amp amp, c10::DeviceType device) {
  if (amp == Amp::kOff) return true;
  if (device == c10::kCUDA) return true;
  return device == c10::kCPU && amp == Amp::kBf16;
}

void require_amp_supported(Amp amp, c10::DeviceType device, const std::string& key) {
  if (amp_supported(amp, device)) return;
  Location where;
  where.key = key;
  throw ConfigError("unsupported",
                    "amp " + amp_name(amp) + " needs a CUDA device: on " +
                        c10::DeviceTypeName(device, /*lower_case=*/true) +
                        " LibTorch 1.13 autocasts to bf16 only (use bf16 or off)",
                    where);
}

AutocastGuard::AutocastGuard(c10::DeviceType device, Amp amp) {
  if (amp == Amp::kOff) return;
  require_amp_supported(amp, device, "");
  active_ = true;
  cuda_ = device == c10::kCUDA;
  if (cuda_) {
    prev_enabled_ = at::autocast::is_enabled();
    prev_dtype_ = at::autocast::get_autocast_gpu_dtype();
    at::autocast::set_enabled(true);
    at::autocast::set_autocast_gpu_dtype(amp_dtype(amp));
  } else {
    prev_enabled_ = at::autocast::is_cpu_enabled();
    prev_dtype_ = at::autocast::get_autocast_cpu_dtype();
    at::autocast::set_cpu_enabled(true);
    at::autocast::set_autocast_cpu_dtype(amp_dtype(amp));
  }
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
  // torch.autocast.__exit__: the cached low-precision copies of the weights
  // live until the outermost region ends (they are stale after the step).
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  if (cuda_) {
    at::autocast::set_enabled(prev_enabled_);
    at::autocast::set_autocast_gpu_dtype(prev_dtype_);
  } else {
    at::autocast::set_cpu_enabled(prev_enabled_);
    at::autocast::set_autocast_cpu_dtype(prev_dtype_);
  }
}

at::ScalarType full_precision_dtype(at::ScalarType dtype) {
  return is_reduced_precision(dtype) ? at::kFloat : dtype;
}

at::Tensor full_precision(const at::Tensor& t) {
  if (!t.defined() || !is_reduced_precision(t.scalar_type())) return t;
  return t.to(at::kFloat);
}

}  // namespace pasteflow::model
