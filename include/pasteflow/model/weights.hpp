// Checkpoints of the LibTorch models: a torch.save'd (zip format) plain
// dict {state_dict key: tensor}, read and written with torch::pickle_load /
// torch::pickle_save. The keys are torchvision's state_dict keys, so
// tools/torchvision_to_pasteflow.py only validates and re-saves a torchvision
// state_dict (a plain dict instead of an OrderedDict with _metadata, which
// LibTorch's unpickler cannot read), and Python reads our files with
// torch.load.
#pragma once

#include <map>
#include <string>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

namespace pasteflow::model {

/// Every parameter and buffer of `module` by its state_dict name.
std::map<std::string, at::Tensor> state_dict(const torch::nn::Module& module);

/// Reads a checkpoint (any key set). Throws InputError, Location file =
/// path: "cannot_open", "empty_weights_file" (0 bytes), "not_a_torch_archive"
/// (not a zip, or a zip without data.pkl), "truncated_weights_file" (a zip
/// without its end record), "bad_weights_file" (a PyTorch archive that is
/// not a dict of str -> tensor; the torchvision conversion hint only when it
/// holds torchvision-style keys).
std::map<std::string, at::Tensor> read_checkpoint(const std::string& path);

/// Writes `tensors` (copied to CPU, contiguous) as a checkpoint, atomically
/// (temporary file + rename). Throws Error "cannot_write".
void write_checkpoint(const std::map<std::string, at::Tensor>& tensors, const std::string& path);

/// Copies `tensors` into `module` by name, with no renaming. Every
/// parameter and buffer must be present with the same shape; entries named
/// "*.num_batches_tracked" that the module lacks are ignored (torchvision's
/// FrozenBatchNorm2d drops them too). Nothing is copied unless everything
/// matches. Throws InputError "missing_weight", "unexpected_weight" or
/// "weight_shape_mismatch" naming the key (Location key).
void load_state_dict(torch::nn::Module& module, const std::map<std::string, at::Tensor>& tensors);

/// read_checkpoint + load_state_dict; errors name the file too.
void load_weights(torch::nn::Module& module, const std::string& path);

/// write_checkpoint(state_dict(module), path).
void save_weights(const torch::nn::Module& module, const std::string& path);

}  // namespace pasteflow::model
