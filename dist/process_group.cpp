#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef PASTEFLOW_HAVE_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <ATen/ATen.h>
#include <torch/utils.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>

#include "backend.hpp"
#include "pasteflow/core/hash.hpp"
#include "pasteflow/core/short_number.hpp"
#include "pasteflow/dist/dist.hpp"

namespace pasteflow::dist {

namespace {

[[noreturn]] void env_error(const std::string& variable, const std::string& message) {
  Location where;
  where.key = "env " + variable;
  throw ConfigError("bad_environment", message, where);
}

/// The variable as an integer in [lo, hi]; `fallback` when unset.
int env_int(const std::function<const char*(const char*)>& getenv, const char* name, int lo, int hi,
            std::optional<int> fallback) {
  const char* text = getenv(name);
  if (text == nullptr || *text == '\0') {
    if (fallback) return *fallback;
    env_error(name, std::string(name) + " is not set (a distributed launch sets it)");
  }
  errno = 0;
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < lo || v > hi) {
    env_error(name, std::string(name) + "='" + text + "' is not an integer in [" + std::to_string(lo) + ", " +
                        std::to_string(hi) + "]");
  }
  return static_cast<int>(v);
}

std::string entered_key(int rank) { return "pasteflow/entered/" + std::to_string(rank); }

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

}  // namespace

LaunchEnv launch_environment(const std::function<const char*(const char*)>& getenv_fn) {
  const std::function<const char*(const char*)> getenv =
      getenv_fn ? getenv_fn : [](const char* name) -> const char* { return std::getenv(name); };
  LaunchEnv e;
  auto master = [&] {
    const char* addr = getenv("MASTER_ADDR");
    e.master_addr = addr != nullptr ? addr : "";
    e.master_port = env_int(getenv, "MASTER_PORT", 0, 65535, 0);
  };
  const char* rank = getenv("RANK");
  if (rank != nullptr && *rank != '\0') {
    e.source = "torchrun";
    e.world_size = env_int(getenv, "WORLD_SIZE", 1, 1 << 20, std::nullopt);
    e.rank = env_int(getenv, "RANK", 0, e.world_size - 1, std::nullopt);
    e.local_rank = env_int(getenv, "LOCAL_RANK", 0, e.world_size - 1, e.rank);
    e.local_world_size = env_int(getenv, "LOCAL_WORLD_SIZE", 1, e.world_size, e.world_size);
    master();
    return e;
  }
  const char* procid = getenv("SLURM_PROCID");
  if (procid != nullptr && *procid != '\0') {
    e.source = "slurm";
    e.world_size = env_int(getenv, "SLURM_NTASKS", 1, 1 << 20, std::nullopt);
    e.rank = env_int(getenv, "SLURM_PROCID", 0, e.world_size - 1, std::nullopt);
    e.local_rank = env_int(getenv, "SLURM_LOCALID", 0, e.world_size - 1, 0);
    // SLURM_NTASKS_PER_NODE may read "4" or "4(x2)"; the leading number is this node's.
    const char* per_node = getenv("SLURM_NTASKS_PER_NODE");
    e.local_world_size = per_node != nullptr ? std::max(1, std::atoi(per_node)) : 1;
    master();
    return e;
  }
  return e;
}

// ---------------------------------------------------------------- ProcessGroup

void ProcessGroup::Impl::enter(const char* op) {
  ++collectives;
  current_op = op;
  // Recorded before the collective: the survivors of a failure compare these.
  const std::string count = std::to_string(collectives.load());
  try {
    store->set(entered_key(env.rank), std::vector<uint8_t>(count.begin(), count.end()));
  } catch (const std::exception& e) {
    fail(e);
  }
}

void ProcessGroup::Impl::wait(const c10::intrusive_ptr<c10d::Work>& work) {
  try {
    work->wait();
  } catch (const std::exception& e) {
    fail(e);
  }
}

void ProcessGroup::Impl::fail(const std::exception& cause) {
  const uint64_t mine = collectives.load();
  std::vector<int> behind;
  std::string detail;
  try {
    for (int r = 0; r < env.world_size; ++r) {
      if (r == env.rank) continue;
      uint64_t theirs = 0;
      if (store->check({entered_key(r)})) {
        const std::vector<uint8_t> v = store->get(entered_key(r));
        theirs = std::strtoull(std::string(v.begin(), v.end()).c_str(), nullptr, 10);
      }
      if (theirs < mine) {
        behind.push_back(r);
        detail += "; rank " + std::to_string(r) + " entered " + std::to_string(theirs) + " collective(s)";
      }
    }
  } catch (const std::exception& store_error) {
    // The TCP store lives in rank 0: when it is gone, rank 0 is.
    if (env.rank != 0 && config.store_file.empty()) {
      throw DistError("rank_failed",
                      "rank 0 (which hosts the TCP store at " + store_text + ") is unreachable: it died or hangs; " +
                          std::string(current_op) + " (collective " + std::to_string(mine) + " of rank " +
                          std::to_string(env.rank) + ") failed: " + first_line(cause.what()),
                      {0});
    }
    detail += "; the store cannot be read: " + first_line(store_error.what());
  }
  std::string who;
  for (size_t i = 0; i < behind.size(); ++i) who += (i == 0 ? "" : ", ") + std::to_string(behind[i]);
  const std::string where = std::string(current_op) + " (collective " + std::to_string(mine) + " of rank " +
                            std::to_string(env.rank) + ", dist.timeout_s " + short_number(config.timeout_s) + ")";
  if (!behind.empty()) {
    throw DistError("rank_failed",
                    std::string(behind.size() == 1 ? "rank " : "ranks ") + who +
                        " stopped before " + where + ": it died or hangs" + detail + "; " + first_line(cause.what()),
                    behind);
  }
  throw DistError("collective_failed", where + " failed" + detail + ": " + first_line(cause.what()), {});
}

ProcessGroup::ProcessGroup(const LaunchEnv& env, const DistConfig& config, const std::string& device)
    : impl_(std::make_unique<Impl>()) {
  Impl& im = *impl_;
  im.env = env;
  im.config = config;
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(std::llround(config.timeout_s * 1000.0)));
  const bool cuda = device.rfind("cuda", 0) == 0;
  std::string backend = config.backend;
  if (backend == "auto") {
#ifdef PASTEFLOW_HAVE_NCCL
    backend = cuda ? "nccl" : "gloo";
#else
    backend = "gloo";
#endif
  }
#ifndef PASTEFLOW_HAVE_NCCL
  if (backend == "nccl") {
    Location where;
    where.key = "dist.backend";
    throw ConfigError("backend_unavailable",
                      "this LibTorch was built without NCCL (Debian's is CPU-only); use dist.backend gloo", where);
  }
#endif
  if (backend == "gloo" && cuda) {
    Location where;
    where.key = "dist.backend";
    throw ConfigError("backend_unavailable", "gloo all-reduces CPU tensors; a CUDA device needs dist.backend nccl",
                      where);
  }
  im.backend = backend;
  if (backend == "nccl") im.tensor_device = c10::Device(device);

  try {
    if (!config.store_file.empty()) {
      im.store = c10::make_intrusive<c10d::FileStore>(config.store_file, env.world_size);
      im.store_text = "file " + config.store_file;
    } else {
      if (env.master_addr.empty() || env.master_port == 0) {
        Location where;
        where.key = env.master_addr.empty() ? "env MASTER_ADDR" : "env MASTER_PORT";
        throw ConfigError("bad_environment",
                          "a distributed run of " + std::to_string(env.world_size) +
                              " processes needs MASTER_ADDR and MASTER_PORT (rank 0's host and a free port) or "
                              "dist.store_file",
                          where);
      }
      c10d::TCPStoreOptions o;
      o.port = static_cast<uint16_t>(env.master_port);
      o.isServer = env.rank == 0;
      o.numWorkers = env.world_size;
      o.waitWorkers = true;
      o.timeout = timeout;
      im.store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, o);
      im.store_text = env.master_addr + ":" + std::to_string(env.master_port);
    }
    im.store->setTimeout(timeout);
    if (backend == "gloo") {
      auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
      if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname != nullptr && *ifname != '\0') {
        opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      } else if (env.local_world_size == env.world_size ||
                 (config.store_file.empty() && is_loopback(env.master_addr))) {
        opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      } else {
        opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      }
      opts->threads = 2;
      im.pg = c10::make_intrusive<c10d::ProcessGroupGloo>(im.store, env.rank, env.world_size, opts);
    }
#ifdef PASTEFLOW_HAVE_NCCL
    if (backend == "nccl") {
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = timeout;
      im.pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(im.store, env.rank, env.world_size, opts);
    }
#endif
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw DistError("rendezvous_failed",
                    "rank " + std::to_string(env.rank) + " of " + std::to_string(env.world_size) +
                        " could not join the process group (store " + im.store_text + ", dist.timeout_s " +
                        short_number(config.timeout_s) + "): " + first_line(e.what()),
                    {});
  }
}

ProcessGroup::~ProcessGroup() = default;

int ProcessGroup::rank() const noexcept { return impl_->env.rank; }
int ProcessGroup::world_size() const noexcept { return impl_->env.world_size; }
const LaunchEnv& ProcessGroup::env() const noexcept { return impl_->env; }
const DistConfig& ProcessGroup::config() const noexcept { return impl_->config; }
std::string ProcessGroup::backend_name() const { return impl_->backend; }
uint64_t ProcessGroup::collectives() const noexcept { return impl_->collectives.load(); }

void ProcessGroup::broadcast(std::vector<at::Tensor>& tensors, int root) {
  Impl& im = *impl_;
  torch::NoGradGuard no_grad;
  // One flat tensor per (dtype, device), in first-appearance order (the same on every rank).
  std::vector<std::vector<size_t>> groups;
  for (size_t i = 0; i < tensors.size(); ++i) {
    bool placed = false;
    for (auto& g : groups) {
      const at::Tensor& first = tensors[g.front()];
      if (first.scalar_type() == tensors[i].scalar_type() && first.device() == tensors[i].device()) {
        g.push_back(i);
        placed = true;
        break;
      }
    }
    if (!placed) groups.push_back({i});
  }
  for (const auto& g : groups) {
    std::vector<at::Tensor> flat_parts;
    for (size_t i : g) flat_parts.push_back(tensors[i].detach().reshape({-1}));
    std::vector<at::Tensor> io{at::cat(flat_parts)};
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    im.enter("broadcast");
    im.wait(im.pg->broadcast(io, opts));
    int64_t offset = 0;
    for (size_t i : g) {
      const int64_t n = tensors[i].numel();
      tensors[i].detach().copy_(io[0].narrow(0, offset, n).view_as(tensors[i]));
      offset += n;
    }
  }
}

void ProcessGroup::all_reduce_sum(at::Tensor& tensor) {
  Impl& im = *impl_;
  const bool moved = tensor.device() != im.tensor_device;
  std::vector<at::Tensor> io{moved ? tensor.to(im.tensor_device) : tensor};
  im.enter("all_reduce");
  im.wait(im.pg->allreduce(io));
  if (moved) tensor.copy_(io[0]);
}

std::vector<std::vector<uint8_t>> ProcessGroup::all_gather_bytes(const std::vector<uint8_t>& bytes) {
  Impl& im = *impl_;
  const int w = im.env.world_size;
  const auto on = [&](at::ScalarType t) { return at::TensorOptions().dtype(t).device(im.tensor_device); };
  std::vector<at::Tensor> size_in{at::full({1}, static_cast<int64_t>(bytes.size()), on(at::kLong))};
  std::vector<std::vector<at::Tensor>> size_out(1);
  for (int r = 0; r < w; ++r) size_out[0].push_back(at::zeros({1}, on(at::kLong)));
  im.enter("all_gather (sizes)");
  im.wait(im.pg->allgather(size_out, size_in));
  int64_t longest = 1;
  std::vector<int64_t> sizes;
  for (const at::Tensor& t : size_out[0]) {
    sizes.push_back(t.cpu().item<int64_t>());
    longest = std::max(longest, sizes.back());
  }
  at::Tensor data = at::zeros({longest}, at::kByte);
  if (!bytes.empty()) std::copy(bytes.begin(), bytes.end(), data.data_ptr<uint8_t>());
  std::vector<at::Tensor> data_in{data.to(im.tensor_device)};
  std::vector<std::vector<at::Tensor>> data_out(1);
  for (int r = 0; r < w; ++r) data_out[0].push_back(at::zeros({longest}, on(at::kByte)));
  im.enter("all_gather");
  im.wait(im.pg->allgather(data_out, data_in));
  std::vector<std::vector<uint8_t>> out(static_cast<size_t>(w));
  for (int r = 0; r < w; ++r) {
    const at::Tensor host = data_out[0][static_cast<size_t>(r)].cpu();
    const uint8_t* p = host.data_ptr<uint8_t>();
    out[static_cast<size_t>(r)].assign(p, p + sizes[static_cast<size_t>(r)]);
  }
  return out;
}

void ProcessGroup::barrier() {
  Impl& im = *impl_;
  im.enter("barrier");
  im.wait(im.pg->barrier());
}

void broadcast_module(ProcessGroup& group, torch::nn::Module& module) {
  std::vector<at::Tensor> tensors;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) tensors.push_back(p.value());
  for (const auto& b : module.named_buffers(/*recurse=*/true)) tensors.push_back(b.value());
  group.broadcast(tensors, 0);
}

uint64_t module_hash(const torch::nn::Module& module) {
  uint64_t h = kFnv1aBasis;
  auto add = [&h](const at::Tensor& t) {
    const at::Tensor c = t.detach().cpu().contiguous();
    h = fnv1a(c.data_ptr(), static_cast<size_t>(c.numel()) * c.element_size(), h);
  };
  for (const auto& p : module.named_parameters(/*recurse=*/true)) add(p.value());
  for (const auto& b : module.named_buffers(/*recurse=*/true)) add(b.value());
  return h;
}

void verify_same_weights(ProcessGroup& group, const torch::nn::Module& module, const std::string& when) {
  const uint64_t mine = module_hash(module);
  std::vector<uint8_t> bytes(sizeof(mine));
  std::memcpy(bytes.data(), &mine, sizeof(mine));
  const std::vector<std::vector<uint8_t>> all = group.all_gather_bytes(bytes);
  uint64_t root = 0;
  std::memcpy(&root, all[0].data(), sizeof(root));
  std::vector<int> differ;
  std::string list;
  for (size_t r = 1; r < all.size(); ++r) {
    uint64_t theirs = 0;
    std::memcpy(&theirs, all[r].data(), sizeof(theirs));
    if (theirs != root) {
      differ.push_back(static_cast<int>(r));
      list += (list.empty() ? "" : ", ") + std::to_string(r);
    }
  }
  if (!differ.empty()) {
    throw DistError("ranks_diverged",
                    "the weights of rank(s) " + list + " differ from rank 0's " + when + " (dist.verify_period)",
                    differ);
  }
}

}  // namespace pasteflow::dist
