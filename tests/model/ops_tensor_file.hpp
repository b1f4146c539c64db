// Reader of the "PFTENSOR" files written by tools/parity/ops_parity.py
// (format documented there) and helpers shared by the ops parity tests.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "common/command.hpp"

namespace pasteflow::model::ops::testing {

inline std::map<std::string, at::Tensor> read_tensor_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t pos = 0;
  auto take = [&](void* dst, size_t n) {
    if (pos + n > bytes.size()) throw std::runtime_error("truncated tensor file " + path);
    if (n == 0) return;  // empty tensors have no storage
    std::memcpy(dst, bytes.data() + pos, n);
    pos += n;
  };
  char magic[8];
  take(magic, 8);
  if (std::memcmp(magic, "PFTENSOR", 8) != 0) throw std::runtime_error("bad magic in " + path);
  uint32_t count = 0;
  take(&count, 4);
  std::map<std::string, at::Tensor> out;
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t name_len = 0;
    take(&name_len, 4);
    std::string name(name_len, '\0');
    take(name.data(), name_len);
    uint8_t code = 0;
    take(&code, 1);
    uint32_t ndim = 0;
    take(&ndim, 4);
    std::vector<int64_t> dims(ndim);
    for (uint32_t d = 0; d < ndim; ++d) take(&dims[d], 8);
    at::ScalarType type;
    switch (code) {
      case 0: type = at::kFloat; break;
      case 1: type = at::kDouble; break;
      case 2: type = at::kLong; break;
      case 3: type = at::kByte; break;
      default: throw std::runtime_error("bad dtype code in " + path);
    }
    at::Tensor t = at::empty(dims, at::dtype(type));
    take(t.data_ptr(), static_cast<size_t>(t.nbytes()));
    out.emplace(name, t);
  }
  return out;
}

using pasteflow::testing::CommandResult;
using pasteflow::testing::python;
using pasteflow::testing::run_command;
using pasteflow::testing::torchvision_unavailable;

/// max |a - b| (as double); +inf on shape mismatch.
inline double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  if (a.sizes() != b.sizes()) return INFINITY;
  if (a.numel() == 0) return 0.0;
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

}  // namespace pasteflow::model::ops::testing
