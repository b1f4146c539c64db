#include "pasteflow/model/weights.hpp"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>
#include <vector>

#include <ATen/ATen.h>
#include <torch/serialize.h>

#include "pasteflow/core/error.hpp"

namespace pasteflow::model {

namespace {

std::string shape_string(at::IntArrayRef sizes) {
  std::ostringstream o;
  o << '[';
  for (size_t i = 0; i < sizes.size(); ++i) o << (i ? ", " : "") << sizes[i];
  o << ']';
  return o.str();
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool contains(const std::vector<char>& data, const std::string& needle) {
  return std::search(data.begin(), data.end(), needle.begin(), needle.end()) != data.end();
}

/// Throws the precise InputError for a file that cannot be a PyTorch
/// archive (torch.save's zip format): empty, not a zip, a truncated zip
/// (no end-of-central-directory record), a zip without data.pkl.
void check_torch_archive(const std::vector<char>& data, const Location& where) {
  if (data.empty()) {
    throw InputError("empty_weights_file",
                     "the file is empty (0 bytes), not a checkpoint (an interrupted save or copy?)", where);
  }
  static const std::string kZipLocal("PK\x03\x04", 4);
  static const std::string kZipEnd("PK\x05\x06", 4);
  if (data.size() < kZipLocal.size() || !std::equal(kZipLocal.begin(), kZipLocal.end(), data.begin())) {
    if (static_cast<unsigned char>(data[0]) == 0x80) {
      throw InputError("not_a_torch_archive",
                       "not a PyTorch zip archive: a raw pickle or a legacy (PyTorch < 1.6) torch.save file; re-save "
                       "it with a current torch.save",
                       where);
    }
    std::string head;
    for (size_t i = 0; i < std::min<size_t>(data.size(), 4); ++i) {
      char hex[4];
      std::snprintf(hex, sizeof hex, "%s%02x", i ? " " : "", static_cast<unsigned char>(data[i]));
      head += hex;
    }
    throw InputError("not_a_torch_archive",
                     "not a PyTorch archive (a .pt file is a zip archive starting with \"PK\"; this one starts with "
                     "bytes " + head + ")",
                     where);
  }
  // A complete zip ends with its end-of-central-directory record: 22 bytes
  // from the signature plus a comment whose length it gives (at most 65535).
  bool complete = false;
  const size_t size = data.size();
  for (size_t back = 22; back <= size && back <= 22 + 65535 && !complete; ++back) {
    const size_t at = size - back;
    if (!std::equal(kZipEnd.begin(), kZipEnd.end(), data.begin() + static_cast<std::ptrdiff_t>(at))) continue;
    const size_t comment = static_cast<unsigned char>(data[at + 20]) | (static_cast<unsigned char>(data[at + 21]) << 8);
    complete = at + 22 + comment == size;
  }
  if (!complete) {
    throw InputError("truncated_weights_file",
                     "the file is truncated: a zip archive of " + std::to_string(size) +
                         " bytes without its end record (an interrupted save or copy?)",
                     where);
  }
  if (!contains(data, "data.pkl")) {
    throw InputError("not_a_torch_archive", "a zip archive but not a PyTorch archive (no data.pkl record)", where);
  }
}

/// Key prefixes of torchvision's detection models, which pasteflow's models
/// share: an archive holding them is a state_dict saved by torchvision.
bool has_torchvision_keys(const std::vector<char>& data) {
  return contains(data, "backbone.body.") || contains(data, "roi_heads.") || contains(data, "rpn.head.");
}

}  // namespace

std::map<std::string, at::Tensor> state_dict(const torch::nn::Module& module) {
  std::map<std::string, at::Tensor> out;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) out[item.key()] = item.value();
  for (const auto& item : module.named_buffers(/*recurse=*/true)) out[item.key()] = item.value();
  return out;
}

std::map<std::string, at::Tensor> read_checkpoint(const std::string& path) {
  Location where;
  where.file = path;
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw InputError("cannot_open", "cannot open the checkpoint", where);
  const std::streamoff size = f.tellg();
  std::vector<char> data(static_cast<size_t>(size));
  f.seekg(0);
  if (!f.read(data.data(), static_cast<std::streamsize>(data.size()))) {
    throw InputError("cannot_open", "cannot read the checkpoint", where);
  }
  check_torch_archive(data, where);
  c10::IValue value;
  try {
    value = torch::pickle_load(data);
  } catch (const std::exception& e) {
    std::string what = e.what();
    what = what.substr(0, what.find('\n'));
    if (has_torchvision_keys(data)) {
      throw InputError("bad_weights_file",
                       "a PyTorch archive with torchvision-style keys that LibTorch cannot read as a plain dict of "
                       "tensors (a torchvision state_dict? convert it with tools/torchvision_to_pasteflow.py): " + what,
                       where);
    }
    throw InputError("bad_weights_file",
                     "a PyTorch archive that LibTorch cannot read as a plain dict of tensors (corrupt, or not a "
                     "pasteflow checkpoint): " + what,
                     where);
  }
  if (!value.isGenericDict()) {
    throw InputError("bad_weights_file",
                     "a PyTorch archive that is not a pasteflow checkpoint: it holds " + value.tagKind() +
                         ", not a dict of tensors",
                     where);
  }
  std::map<std::string, at::Tensor> out;
  for (const auto& kv : value.toGenericDict()) {
    if (!kv.key().isString()) throw InputError("bad_weights_file", "a checkpoint key is not a string", where);
    const std::string key = kv.key().toStringRef();
    if (!kv.value().isTensor()) {
      where.key = key;
      throw InputError("bad_weights_file", "entry '" + key + "' is not a tensor", where);
    }
    out[key] = kv.value().toTensor();
  }
  return out;
}

void write_checkpoint(const std::map<std::string, at::Tensor>& tensors, const std::string& path) {
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& [key, tensor] : tensors) dict.insert(key, tensor.detach().cpu().contiguous());
  const std::vector<char> bytes = torch::pickle_save(dict);
  const std::string tmp = path + ".tmp";
  Location where;
  where.file = path;
  {
    std::ofstream o(tmp, std::ios::binary | std::ios::trunc);
    if (!o) throw Error("cannot_write", "cannot create " + tmp, where);
    o.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    o.flush();
    if (!o) {
      std::remove(tmp.c_str());
      throw Error("cannot_write", "cannot write " + tmp, where);
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error("cannot_write", "cannot rename " + tmp + " to " + path, where);
  }
}

void load_state_dict(torch::nn::Module& module, const std::map<std::string, at::Tensor>& tensors) {
  const std::map<std::string, at::Tensor> own = state_dict(module);
  auto fail = [](const std::string& reason, const std::string& key, const std::string& message) {
    Location where;
    where.key = key;
    throw InputError(reason, message, where);
  };
  for (const auto& [key, tensor] : tensors) {
    const auto it = own.find(key);
    if (it == own.end()) {
      if (ends_with(key, ".num_batches_tracked")) continue;
      fail("unexpected_weight", key, "unexpected tensor '" + key + "' " + shape_string(tensor.sizes()) +
                                         ": the model has no parameter or buffer of that name");
    }
    if (it->second.sizes() != tensor.sizes()) {
      fail("weight_shape_mismatch", key,
           "tensor '" + key + "' has shape " + shape_string(tensor.sizes()) + ", the model expects " +
               shape_string(it->second.sizes()));
    }
    if (!at::isFloatingType(tensor.scalar_type()) && at::isFloatingType(it->second.scalar_type())) {
      fail("weight_dtype_mismatch", key, "tensor '" + key + "' is not floating point");
    }
  }
  for (const auto& [key, tensor] : own) {
    if (tensors.find(key) == tensors.end()) {
      fail("missing_weight", key, "the checkpoint has no tensor '" + key + "' " + shape_string(tensor.sizes()));
    }
  }
  torch::NoGradGuard guard;
  for (const auto& [key, tensor] : own) {
    at::Tensor target = tensor;  // shares storage with the module's tensor
    target.copy_(tensors.at(key));
  }
}

void load_weights(torch::nn::Module& module, const std::string& path) {
  const std::map<std::string, at::Tensor> tensors = read_checkpoint(path);
  try {
    load_state_dict(module, tensors);
  } catch (const InputError& e) {
    Location where = e.where();
    where.file = path;
    throw InputError(e.reason(), e.detail(), where);
  }
}

void save_weights(const torch::nn::Module& module, const std::string& path) {
  write_checkpoint(state_dict(module), path);
}

}  // namespace pasteflow::model
