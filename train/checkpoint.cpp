#include "pasteflow/train/checkpoint.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <c10/util/string_utils.h>
#include <torch/cuda.h>
#include <torch/serialize.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>

#include "pasteflow/core/error.hpp"
#include "pasteflow/model/weights.hpp"

namespace pasteflow::train {

namespace fs = std::filesystem;

namespace {

const std::string kModelPrefix = "model.";
const std::string kMomentumPrefix = "optimizer.momentum_buffer.";

at::Tensor bytes_tensor(const std::string& text) {
  at::Tensor t = at::empty({static_cast<int64_t>(text.size())}, at::kByte);
  if (!text.empty()) std::memcpy(t.data_ptr<uint8_t>(), text.data(), text.size());
  return t;
}

std::string tensor_bytes(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kByte).cpu().contiguous();
  return std::string(reinterpret_cast<const char*>(c.data_ptr<uint8_t>()), static_cast<size_t>(c.numel()));
}

at::Tensor int64_tensor(const std::vector<int64_t>& values) {
  at::Tensor t = at::empty({static_cast<int64_t>(values.size())}, at::kLong);
  std::copy(values.begin(), values.end(), t.data_ptr<int64_t>());
  return t;
}

at::Tensor double_tensor(const std::vector<double>& values) {
  at::Tensor t = at::empty({static_cast<int64_t>(values.size())}, at::kDouble);
  std::copy(values.begin(), values.end(), t.data_ptr<double>());
  return t;
}

std::string param_key(const at::Tensor& p) { return c10::guts::to_string(p.unsafeGetTensorImpl()); }

[[noreturn]] void bad(const std::string& path, const std::string& key, const std::string& message) {
  Location where;
  where.file = path;
  where.key = key;
  throw InputError("bad_checkpoint", message, where);
}

const at::Tensor& need(const std::map<std::string, at::Tensor>& t, const std::string& path, const std::string& key,
                       at::ScalarType type, int64_t numel) {
  const auto it = t.find(key);
  if (it == t.end()) bad(path, key, "the checkpoint has no '" + key + "' (not a training checkpoint?)");
  if (it->second.scalar_type() != type || (numel >= 0 && it->second.numel() != numel)) {
    bad(path, key, "entry '" + key + "' has the wrong type or size");
  }
  return it->second;
}

void fsync_dir(const fs::path& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

// ---------------------------------------------------------------- files

void write_file_atomic(const std::string& path, const void* data, size_t size) {
  const fs::path target(path);
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  Location where;
  where.file = path;
  auto fail = [&](const std::string& what) {
    const std::string err = std::strerror(errno);
    ::unlink(tmp.c_str());
    throw Error("cannot_write", what + ": " + err, where);
  };
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("cannot create " + tmp);
  const char* p = static_cast<const char*>(data);
  size_t left = size;
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      fail("cannot write " + tmp);
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    ::close(fd);
    fail("cannot flush " + tmp);
  }
  if (::close(fd) != 0) fail("cannot close " + tmp);
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail("cannot rename " + tmp + " to " + path);
  fsync_dir(target.parent_path());
}

namespace {

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

/// The iteration of a checkpoint_file_name(), none for any other name.
std::optional<uint64_t> checkpoint_iteration(const std::string& name) {
  if (name.size() < 10 || name.rfind("model_", 0) != 0 || name.compare(name.size() - 3, 3, ".pt") != 0) {
    return std::nullopt;
  }
  const std::string digits = name.substr(6, name.size() - 9);
  if (!all_digits(digits) || digits.size() > 19) return std::nullopt;
  const uint64_t iteration = std::stoull(digits);
  if (checkpoint_file_name(iteration) != name) return std::nullopt;
  return iteration;
}

/// False only when no process `pid` exists (kill(pid, 0) fails with ESRCH).
bool process_exists(pid_t pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }

}  // namespace

std::string checkpoint_file_name(uint64_t iteration) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "model_%07llu.pt", static_cast<unsigned long long>(iteration));
  return buf;
}

std::vector<std::pair<uint64_t, std::string>> list_checkpoints(const std::string& dir) {
  std::vector<std::pair<uint64_t, std::string>> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const auto iteration = checkpoint_iteration(entry.path().filename().string());
    if (iteration) out.emplace_back(*iteration, entry.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string latest_checkpoint(const std::string& dir) {
  const auto all = list_checkpoints(dir);
  return all.empty() ? std::string() : all.back().second;
}

std::vector<std::string> remove_stale_temporaries(const std::string& dir) {
  std::vector<std::string> removed;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return removed;
  const std::string marker = ".tmp-";
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const size_t at = name.rfind(marker);
    if (at == std::string::npos || !checkpoint_iteration(name.substr(0, at))) continue;
    const std::string pid_text = name.substr(at + marker.size());
    if (!all_digits(pid_text) || pid_text.size() > 9) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(pid_text));
    if (pid <= 0 || pid == ::getpid() || process_exists(pid)) continue;
    std::error_code rm;
    if (entry.is_regular_file(rm) && fs::remove(entry.path(), rm)) removed.push_back(entry.path().string());
  }
  std::sort(removed.begin(), removed.end());
  return removed;
}

std::vector<std::string> prune_checkpoints(const std::string& dir, int keep_last) {
  std::vector<std::string> removed;
  if (keep_last <= 0) return removed;
  const auto all = list_checkpoints(dir);
  const size_t keep = static_cast<size_t>(keep_last);
  for (size_t i = 0; i + keep < all.size(); ++i) {
    std::error_code ec;
    if (fs::remove(all[i].second, ec)) removed.push_back(all[i].second);
  }
  return removed;
}

// ---------------------------------------------------------------- generators

RngStates capture_torch_rng() {
  RngStates s;
  {
    at::Generator gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    s.torch_cpu = gen.get_state().clone();
  }
  if (torch::cuda::is_available()) {
    const size_t n = torch::cuda::device_count();
    for (size_t i = 0; i < n; ++i) {
      at::Generator gen = at::globalContext().defaultGenerator(c10::Device(c10::kCUDA, static_cast<int8_t>(i)));
      std::lock_guard<std::mutex> lock(gen.mutex());
      s.torch_cuda.push_back(gen.get_state().clone());
    }
  }
  return s;
}

void restore_torch_rng(const RngStates& s) {
  if (s.torch_cpu.defined()) {
    at::Generator gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(s.torch_cpu);
  }
  if (!s.torch_cuda.empty() && torch::cuda::is_available()) {
    const size_t n = std::min(s.torch_cuda.size(), torch::cuda::device_count());
    for (size_t i = 0; i < n; ++i) {
      at::Generator gen = at::globalContext().defaultGenerator(c10::Device(c10::kCUDA, static_cast<int8_t>(i)));
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(s.torch_cuda[i]);
    }
  }
}

// ---------------------------------------------------------------- checkpoints

void save_checkpoint(const std::string& path, const torch::nn::Module& model, const torch::optim::SGD& optimizer,
                     const TrainState& state) {
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& [key, tensor] : model::state_dict(model)) {
    dict.insert(kModelPrefix + key, tensor.detach().cpu().contiguous());
  }
  const auto& opt_state = optimizer.state();
  for (const auto& item : model.named_parameters(/*recurse=*/true)) {
    const auto it = opt_state.find(param_key(item.value()));
    if (it == opt_state.end()) continue;
    const auto& sgd = static_cast<const torch::optim::SGDParamState&>(*it->second);
    if (!sgd.momentum_buffer().defined()) continue;
    dict.insert(kMomentumPrefix + item.key(), sgd.momentum_buffer().detach().cpu().contiguous());
  }
  dict.insert("trainer.format", int64_tensor({kCheckpointFormat}));
  dict.insert("trainer.iteration", int64_tensor({static_cast<int64_t>(state.iteration)}));
  dict.insert("trainer.loader_position",
              int64_tensor({static_cast<int64_t>(state.epoch), static_cast<int64_t>(state.batch)}));
  std::vector<int64_t> rng(4);
  for (int i = 0; i < 4; ++i) rng[static_cast<size_t>(i)] = static_cast<int64_t>(state.rng.model.s[i]);
  dict.insert("trainer.rng.model", int64_tensor(rng));
  if (state.rng.torch_cpu.defined()) dict.insert("trainer.rng.torch_cpu", state.rng.torch_cpu.cpu().contiguous());
  for (size_t i = 0; i < state.rng.torch_cuda.size(); ++i) {
    dict.insert("trainer.rng.torch_cuda." + std::to_string(i), state.rng.torch_cuda[i].cpu().contiguous());
  }
  dict.insert("trainer.best", double_tensor({state.best_metric, static_cast<double>(state.best_iteration)}));
  dict.insert("trainer.lr", double_tensor({state.lr}));
  dict.insert("trainer.config", bytes_tensor(state.config_yaml));
  if (state.grad_scaler) {
    dict.insert("trainer.grad_scaler", double_tensor({state.grad_scaler->scale,
                                                      static_cast<double>(state.grad_scaler->growth_tracker)}));
  }
  if (state.world_size > 1) {
    dict.insert("trainer.world_size", int64_tensor({static_cast<int64_t>(state.world_size)}));
    for (size_t r = 0; r < state.rank_rng.size(); ++r) {
      const std::string prefix = "trainer.rank." + std::to_string(r + 1) + ".rng.";
      std::vector<int64_t> m(4);
      for (int i = 0; i < 4; ++i) m[static_cast<size_t>(i)] = static_cast<int64_t>(state.rank_rng[r].model.s[i]);
      dict.insert(prefix + "model", int64_tensor(m));
      if (state.rank_rng[r].torch_cpu.defined()) {
        dict.insert(prefix + "torch_cpu", state.rank_rng[r].torch_cpu.cpu().contiguous());
      }
    }
  }

  std::vector<char> bytes;
  try {
    bytes = torch::pickle_save(dict);
  } catch (const std::exception& e) {
    Location where;
    where.file = path;
    throw Error("cannot_write", std::string("cannot serialise the checkpoint: ") + e.what(), where);
  }
  write_file_atomic(path, bytes.data(), bytes.size());
}

TrainState load_checkpoint(const std::string& path, torch::nn::Module& model, torch::optim::SGD& optimizer) {
  const std::map<std::string, at::Tensor> all = model::read_checkpoint(path);
  const int64_t format = need(all, path, "trainer.format", at::kLong, 1).item<int64_t>();
  if (format != kCheckpointFormat) {
    bad(path, "trainer.format", "checkpoint format " + std::to_string(format) + " (this build reads " +
                                    std::to_string(kCheckpointFormat) + ")");
  }
  TrainState s;
  s.iteration = static_cast<uint64_t>(need(all, path, "trainer.iteration", at::kLong, 1).item<int64_t>());
  const at::Tensor pos = need(all, path, "trainer.loader_position", at::kLong, 2).contiguous();
  s.epoch = static_cast<uint64_t>(pos.data_ptr<int64_t>()[0]);
  s.batch = static_cast<uint64_t>(pos.data_ptr<int64_t>()[1]);
  const at::Tensor rng = need(all, path, "trainer.rng.model", at::kLong, 4).contiguous();
  for (int i = 0; i < 4; ++i) s.rng.model.s[i] = static_cast<uint64_t>(rng.data_ptr<int64_t>()[i]);
  if (all.count("trainer.rng.torch_cpu")) s.rng.torch_cpu = need(all, path, "trainer.rng.torch_cpu", at::kByte, -1);
  for (size_t i = 0;; ++i) {
    const auto it = all.find("trainer.rng.torch_cuda." + std::to_string(i));
    if (it == all.end()) break;
    s.rng.torch_cuda.push_back(it->second);
  }
  const at::Tensor best = need(all, path, "trainer.best", at::kDouble, 2).contiguous();
  s.best_metric = best.data_ptr<double>()[0];
  s.best_iteration = static_cast<uint64_t>(best.data_ptr<double>()[1]);
  s.lr = need(all, path, "trainer.lr", at::kDouble, 1).item<double>();
  s.config_yaml = tensor_bytes(need(all, path, "trainer.config", at::kByte, -1));
  if (all.count("trainer.grad_scaler")) {
    const at::Tensor g = need(all, path, "trainer.grad_scaler", at::kDouble, 2).contiguous();
    GradScalerState gs;
    gs.scale = g.data_ptr<double>()[0];
    const double tracker = g.data_ptr<double>()[1];
    if (!(gs.scale > 0.0) || !std::isfinite(gs.scale) || !(tracker >= 0.0) || tracker > 9.0e15 ||
        tracker != std::floor(tracker)) {
      bad(path, "trainer.grad_scaler", "loss scale " + std::to_string(gs.scale) + ", growth tracker " +
                                           std::to_string(tracker));
    }
    gs.growth_tracker = static_cast<int64_t>(tracker);
    s.grad_scaler = gs;
  }
  if (all.count("trainer.world_size")) {
    const int64_t w = need(all, path, "trainer.world_size", at::kLong, 1).item<int64_t>();
    if (w < 1) bad(path, "trainer.world_size", "world size " + std::to_string(w));
    s.world_size = static_cast<uint64_t>(w);
    for (uint64_t r = 1; r < s.world_size; ++r) {
      const std::string prefix = "trainer.rank." + std::to_string(r) + ".rng.";
      RngStates rs;
      const at::Tensor m = need(all, path, prefix + "model", at::kLong, 4).contiguous();
      for (int i = 0; i < 4; ++i) rs.model.s[i] = static_cast<uint64_t>(m.data_ptr<int64_t>()[i]);
      if (all.count(prefix + "torch_cpu")) rs.torch_cpu = need(all, path, prefix + "torch_cpu", at::kByte, -1);
      s.rank_rng.push_back(std::move(rs));
    }
  }

  std::map<std::string, at::Tensor> weights;
  std::map<std::string, at::Tensor> momentum;
  for (const auto& [key, tensor] : all) {
    if (key.rfind(kModelPrefix, 0) == 0) weights[key.substr(kModelPrefix.size())] = tensor;
    if (key.rfind(kMomentumPrefix, 0) == 0) momentum[key.substr(kMomentumPrefix.size())] = tensor;
  }
  // Check the optimizer entries before touching anything.
  std::map<std::string, at::Tensor> params;
  for (const auto& item : model.named_parameters(/*recurse=*/true)) params[item.key()] = item.value();
  for (const auto& [name, buf] : momentum) {
    const auto it = params.find(name);
    if (it == params.end()) bad(path, kMomentumPrefix + name, "momentum of an unknown parameter '" + name + "'");
    if (it->second.sizes() != buf.sizes()) bad(path, kMomentumPrefix + name, "momentum shape mismatch for " + name);
  }
  try {
    model::load_state_dict(model, weights);
  } catch (const InputError& e) {
    Location where = e.where();
    where.file = path;
    throw InputError(e.reason(), e.detail(), where);
  }
  auto& opt_state = optimizer.state();
  opt_state.clear();
  for (const auto& [name, buf] : momentum) {
    const at::Tensor& p = params.at(name);
    auto st = std::make_unique<torch::optim::SGDParamState>();
    st->momentum_buffer(buf.to(p.device(), p.scalar_type()).clone());
    opt_state[param_key(p)] = std::move(st);
  }
  return s;
}

std::map<std::string, at::Tensor> checkpoint_model_weights(const std::string& path) {
  std::map<std::string, at::Tensor> out;
  for (const auto& [key, tensor] : model::read_checkpoint(path)) {
    if (key.rfind(kModelPrefix, 0) == 0) out[key.substr(kModelPrefix.size())] = tensor;
  }
  if (out.empty()) bad(path, "model", "the checkpoint holds no 'model.' entries");
  return out;
}

}  // namespace pasteflow::train
