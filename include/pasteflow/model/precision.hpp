// Mixed precision and memory format of the model (solver.amp,
// model.channels_last).
//
// Autocast is LibTorch's own (ATen/autocast_mode.h): inside an
// AutocastGuard, convolutions and matrix products run in the lower
// precision and the ops LibTorch lists as fp32-only in fp32; the model casts
// its heads' outputs back to fp32 (model::full_precision), so anchors, box
// decoding, proposals, losses and post-processing are fp32 whatever the
// setting (torchvision's autocast rules for roi_align and nms, plus its
// references' "losses in fp32"). CPU autocast in LibTorch 1.13 supports
// bf16 only; fp16 is for CUDA devices, with train::GradScaler.
//
//   model::AutocastGuard amp(c10::kCPU, model::Amp::kBf16);  // RAII, nests
//   auto out = net->forward_batch(images, targets);
#pragma once

#include <string>

#include <ATen/core/Tensor.h>
#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>

namespace pasteflow::model {

enum class Amp { kOff, kBf16, kFp16 };

/// "off" | "bf16" | "fp16" (the config's spelling). Throws ConfigError
/// "bad_choice" naming `key` for anything else.
Amp parse_amp(const std::string& name, const std::string& key = "solver.amp");
std::string amp_name(Amp amp);
/// kFloat (off), kBFloat16 or kHalf.
at::ScalarType amp_dtype(Amp amp);

/// Whether `device` can autocast to `amp` in this LibTorch build: off
/// always; bf16 on CPU and CUDA; fp16 on CUDA only (LibTorch 1.13's CPU
/// autocast takes bf16 only).
bool amp_supported(Amp amp, c10::DeviceType device);
/// Throws ConfigError "unsupported" naming `key` (the config key or flag that
/// chose `amp`) unless amp_supported(amp, device).
void require_amp_supported(Amp amp, c10::DeviceType device, const std::string& key);

/// Autocast to `amp` on `device` for the guard's lifetime (Amp::kOff: the
/// guard does nothing, and autocast already on stays on). Restores the
/// previous state on exit and clears LibTorch's cast-weight cache when the
/// outermost guard ends, as torch.autocast does. Not copyable.
class AutocastGuard {
 public:
  AutocastGuard(c10::DeviceType device, Amp amp);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool active_ = false;
  bool cuda_ = false;
  bool prev_enabled_ = false;
  at::ScalarType prev_dtype_ = at::kFloat;
};

/// A floating tensor in at least fp32: bf16 / fp16 tensors converted to
/// fp32, everything else (fp32, fp64, integers, undefined) returned as is.
at::Tensor full_precision(const at::Tensor& t);
/// The dtype full_precision gives for `dtype`.
at::ScalarType full_precision_dtype(at::ScalarType dtype);
inline bool is_reduced_precision(at::ScalarType dtype) { return dtype == at::kBFloat16 || dtype == at::kHalf; }

}  // namespace pasteflow::model
