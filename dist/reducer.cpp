#include <ATen/ATen.h>
#include <torch/utils.h>

#include <chrono>
#include <mutex>

#include "backend.hpp"
#include "pasteflow/dist/dist.hpp"

namespace pasteflow::dist {

struct GradientReducer::Impl {
  ProcessGroup::Impl& group;
  int world = 1;
  bool overlap = true;
  std::vector<at::Tensor> params;
  std::vector<unsigned> hooks;

  struct Slot {
    size_t bucket = 0;
    int64_t offset = 0;
  };
  struct Bucket {
    std::vector<size_t> params;
    int64_t numel = 0;
    at::ScalarType dtype = at::kFloat;
    c10::Device device{c10::kCPU};
    at::Tensor flat;
    size_t pending = 0;  ///< parameters whose gradient has not arrived
    c10::intrusive_ptr<c10d::Work> work;
    std::vector<at::Tensor> io;
  };
  std::vector<Slot> slots;
  std::vector<Bucket> buckets;
  std::vector<uint8_t> got;  ///< a gradient arrived for parameter i this iteration
  size_t next_launch = 0;
  bool prepared = false;
  std::mutex mu;

  explicit Impl(ProcessGroup::Impl& g) : group(g) {}

  void launch(Bucket& b) {
    b.io = {b.flat};
    group.enter("gradient all_reduce");
    b.work = group.pg->allreduce(b.io);
  }

  /// Launches the buckets from next_launch on while they are complete
  /// (`all`: complete or not), so every rank launches them in the same order.
  void launch_in_order(bool all) {
    while (next_launch < buckets.size() && (all || buckets[next_launch].pending == 0)) {
      launch(buckets[next_launch]);
      ++next_launch;
    }
  }

  void on_grad(size_t i, const at::Tensor& grad) {
    std::lock_guard<std::mutex> lock(mu);
    if (!prepared) return;  // a backward outside prepare()/finish(): not ours to reduce
    const Slot& s = slots[i];
    Bucket& b = buckets[s.bucket];
    if (b.work) {
      throw Error("late_gradient", "a gradient arrived after its bucket's all-reduce was launched (parameter " +
                                       std::to_string(i) + ")");
    }
    torch::NoGradGuard no_grad;
    at::Tensor dst = b.flat.narrow(0, s.offset, params[i].numel());
    if (got[i]) {
      dst.add_(grad.reshape({-1}));
      return;
    }
    dst.copy_(grad.reshape({-1}));
    got[i] = 1;
    --b.pending;
    if (overlap) launch_in_order(false);
  }
};

GradientReducer::GradientReducer(ProcessGroup& group, std::vector<at::Tensor> params, const DistConfig& config)
    : impl_(std::make_unique<Impl>(group.impl())) {
  Impl& im = *impl_;
  im.world = group.world_size();
  im.overlap = config.overlap;
  im.params = std::move(params);
  im.slots.resize(im.params.size());
  im.got.assign(im.params.size(), 0);
  const double cap_bytes = config.bucket_mb * 1024.0 * 1024.0;
  // Reverse order: backward produces the last layers' gradients first.
  for (size_t k = im.params.size(); k-- > 0;) {
    const at::Tensor& p = im.params[k];
    const double bytes = static_cast<double>(p.numel()) * static_cast<double>(p.element_size());
    const bool fresh = im.buckets.empty() || im.buckets.back().dtype != p.scalar_type() ||
                       im.buckets.back().device != p.device() ||
                       static_cast<double>(im.buckets.back().numel) * static_cast<double>(p.element_size()) + bytes >
                           cap_bytes;
    if (fresh) {
      Impl::Bucket b;
      b.dtype = p.scalar_type();
      b.device = p.device();
      im.buckets.push_back(std::move(b));
    }
    Impl::Bucket& b = im.buckets.back();
    im.slots[k] = {im.buckets.size() - 1, b.numel};
    b.params.push_back(k);
    b.numel += p.numel();
  }
  Impl* raw = impl_.get();
  for (size_t k = 0; k < im.params.size(); ++k) {
    im.hooks.push_back(im.params[k].register_hook([raw, k](const at::Tensor& grad) { raw->on_grad(k, grad); }));
  }
}

GradientReducer::~GradientReducer() {
  Impl& im = *impl_;
  for (size_t k = 0; k < im.params.size(); ++k) im.params[k].remove_hook(im.hooks[k]);
}

void GradientReducer::prepare() {
  Impl& im = *impl_;
  std::lock_guard<std::mutex> lock(im.mu);
  for (Impl::Bucket& b : im.buckets) {
    // Allocated once and never cleared: every slot is overwritten by its
    // gradient, and finish() zeroes the slots of those that got none.
    if (!b.flat.defined()) b.flat = at::empty({b.numel}, at::TensorOptions().dtype(b.dtype).device(b.device));
    b.pending = b.params.size();
    b.work.reset();
    b.io.clear();
  }
  std::fill(im.got.begin(), im.got.end(), 0);
  im.next_launch = 0;
  im.prepared = true;
}

GradientReducer::Sync GradientReducer::finish(int stop) {
  Impl& im = *impl_;
  if (!im.prepared) throw Error("reducer_not_prepared", "GradientReducer::finish() without prepare()");
  Sync sync;
  at::Tensor control;
  c10::intrusive_ptr<c10d::Work> control_work;
  {
    std::lock_guard<std::mutex> lock(im.mu);
    {
      // A parameter without a gradient contributes zeros (its bucket is not launched yet).
      torch::NoGradGuard no_grad;
      for (size_t k = 0; k < im.params.size(); ++k) {
        if (!im.got[k]) im.buckets[im.slots[k].bucket].flat.narrow(0, im.slots[k].offset, im.params[k].numel()).zero_();
      }
    }
    im.launch_in_order(true);
    // Which parameters got a gradient on any rank, and the stop request.
    control = at::zeros({static_cast<int64_t>(im.params.size()) + 1}, at::kFloat);
    float* c = control.data_ptr<float>();
    c[0] = static_cast<float>(stop);
    for (size_t k = 0; k < im.params.size(); ++k) c[k + 1] = im.got[k] ? 1.0f : 0.0f;
    control = control.to(im.group.tensor_device);
    std::vector<at::Tensor> io{control};
    c10d::AllreduceOptions max;
    max.reduceOp = c10d::ReduceOp::MAX;
    im.group.enter("gradient all_reduce (control)");
    control_work = im.group.pg->allreduce(io, max);
    im.prepared = false;
  }
  const auto t0 = std::chrono::steady_clock::now();
  for (Impl::Bucket& b : im.buckets) im.group.wait(b.work);
  im.group.wait(control_work);
  sync.wait_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // MAX over ranks: the largest stop value, and 1 where any rank had a gradient.
  control = control.cpu();
  const float* c = control.data_ptr<float>();
  sync.stop = static_cast<int>(c[0]);
  torch::NoGradGuard no_grad;
  const double inv = 1.0 / static_cast<double>(im.world);
  for (Impl::Bucket& b : im.buckets) b.flat.mul_(inv);
  for (size_t k = 0; k < im.params.size(); ++k) {
    at::Tensor& p = im.params[k];
    if (c[k + 1] == 0.0f) {
      p.mutable_grad() = at::Tensor();
      continue;
    }
    const Impl::Slot& s = im.slots[k];
    p.mutable_grad() = im.buckets[s.bucket].flat.narrow(0, s.offset, p.numel()).view_as(p);
  }
  return sync;
}

GradientReducer::Layout GradientReducer::layout() const {
  Layout l;
  l.buckets = impl_->buckets.size();
  l.parameters = impl_->params.size();
  for (const auto& b : impl_->buckets) {
    l.bytes += static_cast<size_t>(b.numel) * static_cast<size_t>(c10::elementSize(b.dtype));
  }
  return l;
}

}  // namespace pasteflow::dist
