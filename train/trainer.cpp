#include "pasteflow/train/trainer.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/utils.h>
#include <torch/serialize.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "pasteflow/config/config.hpp"
#include "pasteflow/core/cpu.hpp"
#include "pasteflow/core/json_writer.hpp"
#include "pasteflow/core/random.hpp"
#include "pasteflow/core/short_number.hpp"
#include "pasteflow/dist/dist.hpp"
#include "pasteflow/io/coco.hpp"
#include "pasteflow/io/select.hpp"
#include "pasteflow/model/backbone.hpp"
#include "pasteflow/model/weights.hpp"
#include "pasteflow/pipeline/loader.hpp"

namespace pasteflow::train {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

/// Stream ids of the generators seeded from pipeline.seed.
constexpr uint64_t kTorchSeedTag = 0x746f726368ULL;  // "torch"
constexpr uint64_t kModelRngTag = 0x6d6f64656cULL;   // "model"

double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

bool is_norm_module(const torch::nn::Module& m) {
  return dynamic_cast<const torch::nn::GroupNormImpl*>(&m) != nullptr ||
         dynamic_cast<const torch::nn::BatchNorm1dImpl*>(&m) != nullptr ||
         dynamic_cast<const torch::nn::BatchNorm2dImpl*>(&m) != nullptr ||
         dynamic_cast<const torch::nn::BatchNorm3dImpl*>(&m) != nullptr ||
         dynamic_cast<const torch::nn::LayerNormImpl*>(&m) != nullptr ||
         dynamic_cast<const model::FrozenBatchNorm2dImpl*>(&m) != nullptr;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// An annotation file as the pipeline reads it: its error policy, and image
/// records up to decode.max_pixels, or of any size when the pipeline slices
/// (pipeline::load_max_pixels: huge images are read by windows only).
io::CocoDataset load_dataset(const std::string& annotations, const std::string& images,
                             const pipeline::PipelineConfig& pipeline) {
  io::LoadOptions load;
  load.policy = parse_error_policy(pipeline.loader.on_error);
  load.image_root = images;
  load.max_pixels = pipeline::load_max_pixels(pipeline);
  return io::load_coco(annotations, load);
}

std::string views_text(const io::CocoDataset& source, const slice::SlicedDataset& views) {
  size_t sliced = 0;
  for (const slice::View& v : views.views) sliced += v.sliced ? 1 : 0;
  return std::to_string(source.images.size()) + " images -> " + std::to_string(views.views.size()) + " views (" +
         std::to_string(sliced) + " windows, " + std::to_string(views.views.size() - sliced) + " whole images; " +
         std::to_string(views.dataset.annotations.size()) + " cut annotations, " +
         std::to_string(views.empty_dropped) + " empty windows and " + std::to_string(views.objects_dropped) +
         " cut objects under slice.min_area_ratio left out)";
}

std::string one_decimal(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", v);
  return buf;
}

/// "iter" of a metrics line written by this file ({"type":"...","iter":N,...}).
std::optional<uint64_t> line_iteration(const std::string& line) {
  const std::string key = "\"iter\":";
  const size_t at = line.find(key);
  if (at == std::string::npos) return std::nullopt;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(line.c_str() + at + key.size(), &end, 10);
  if (end == line.c_str() + at + key.size()) return std::nullopt;
  return static_cast<uint64_t>(v);
}

}  // namespace

// ---------------------------------------------------------------- optimizer

ParamGroups param_groups(const torch::nn::Module& model) {
  ParamGroups g;
  for (const auto& item : model.named_modules(/*name_prefix=*/"", /*include_self=*/true)) {
    const std::string& prefix = item.key();
    const bool norm = is_norm_module(*item.value());
    for (const auto& p : item.value()->named_parameters(/*recurse=*/false)) {
      if (!p.value().requires_grad()) continue;
      const std::string name = prefix.empty() ? p.key() : prefix + "." + p.key();
      if (norm) {
        g.norms.push_back(name);
      } else if (ends_with(name, "bias")) {
        g.biases.push_back(name);
      } else {
        g.weights.push_back(name);
      }
    }
  }
  return g;
}

std::unique_ptr<torch::optim::SGD> make_optimizer(torch::nn::Module& model, const SolverConfig& solver, double lr) {
  const ParamGroups names = param_groups(model);
  std::map<std::string, at::Tensor> params;
  for (const auto& item : model.named_parameters(/*recurse=*/true)) params[item.key()] = item.value();
  auto options = [&](double decay) {
    return torch::optim::SGDOptions(lr).momentum(solver.momentum).weight_decay(decay).nesterov(solver.nesterov);
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  auto add = [&](const std::vector<std::string>& group, double decay) {
    if (group.empty()) return;
    std::vector<at::Tensor> tensors;
    for (const std::string& n : group) tensors.push_back(params.at(n));
    groups.emplace_back(tensors, std::make_unique<torch::optim::SGDOptions>(options(decay)));
  };
  add(names.weights, solver.weight_decay);
  add(names.norms, solver.weight_decay_norm);
  add(names.biases, solver.decay_bias ? solver.weight_decay : 0.0);
  if (groups.empty()) throw ConfigError("no_trainable_parameters", "the model has no trainable parameters");
  return std::make_unique<torch::optim::SGD>(std::move(groups), options(solver.weight_decay));
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

// ---------------------------------------------------------------- Impl

struct Trainer::Impl {
  TrainConfig config;
  TrainerHooks hooks;
  std::string config_yaml;
  io::CocoDataset train_set;
  std::optional<io::CocoDataset> val_set;
  /// The views of val_set evaluation runs on (pipeline slice.above > 0), made once.
  std::shared_ptr<const slice::SlicedDataset> val_views;
  std::unique_ptr<pipeline::Loader> loader;
  stages::CategoryMap categories;
  model::MaskRCNN net{nullptr};
  std::unique_ptr<torch::optim::SGD> optimizer;
  GradScaler scaler{GradScalerConfig{}, false};  ///< solver.scaler: on, or auto with solver.amp fp16
  c10::Device device{c10::kCPU};
  int batch_size = 1;    ///< images per iteration on this rank
  int global_batch = 1;  ///< images per iteration over all ranks (the learning rate's batch)
  std::shared_ptr<dist::ProcessGroup> group;  ///< null: one process
  std::unique_ptr<dist::GradientReducer> reducer;
  int rank = 0;
  int world = 1;
  int agreed_stop = 0;  ///< distributed: the stop request all ranks agreed on in the last step

  uint64_t iteration = 0;
  uint64_t epoch = 0;  ///< loader position of the next batch
  uint64_t batch = 0;
  double last_lr = 0.0;
  double best_metric = -std::numeric_limits<double>::infinity();
  uint64_t best_iteration = 0;
  bool started = false;
  bool resumed = false;
  ResumeInfo resume_info;
  uint64_t last_checkpoint_iteration = UINT64_MAX;
  std::string last_checkpoint;
  MetricId metric;

  void log(const std::string& text) const {
    if (hooks.log) hooks.log(text);
  }

  fs::path output_dir() const { return fs::path(config.output_dir); }
  fs::path checkpoint_dir() const {
    const fs::path d(config.checkpoint.dir);
    return d.is_absolute() ? d : output_dir() / d;
  }
  fs::path metrics_path() const { return output_dir() / "metrics.jsonl"; }
  bool writer() const { return rank == 0; }  ///< rank 0 alone writes the run's files
};

Trainer::Trainer(TrainConfig config, TrainerHooks hooks, std::shared_ptr<dist::ProcessGroup> group)
    : impl_(std::make_unique<Impl>()) {
  Impl& im = *impl_;
  im.hooks = std::move(hooks);
  if (group && group->world_size() > 1) {
    im.group = std::move(group);
    im.rank = im.group->rank();
    im.world = im.group->world_size();
    // Each rank's shard of every epoch (the sampler's DistributedSampler semantics).
    config.pipeline.sampler.rank = static_cast<uint64_t>(im.rank);
    config.pipeline.sampler.world_size = static_cast<uint64_t>(im.world);
  }
  validate(config);
  im.metric = parse_metric(config.eval.metric);
  im.device = c10::Device(config.device);
  if (config.torch_threads > 0) at::set_num_threads(config.torch_threads);

  im.train_set = load_dataset(config.data.train_annotations, config.data.train_images, config.pipeline);
  for (const auto& [reason, n] : im.train_set.skipped.counts()) {
    im.log("training set: skipped " + std::to_string(n) + " record(s): " + reason);
  }
  if (config.data.train_fraction < 1.0) {
    const size_t all = im.train_set.images.size();
    im.train_set = io::keep_images(
        im.train_set, io::fraction_indices(im.train_set, config.data.train_fraction, config.data.train_fraction_seed));
    im.log("training set: " + std::to_string(im.train_set.images.size()) + " of " + std::to_string(all) +
           " images, " + std::to_string(im.train_set.annotations.size()) + " objects (data.train_fraction " +
           std::to_string(config.data.train_fraction) + ", seed " + std::to_string(config.data.train_fraction_seed) +
           ")");
  }
  if (!config.data.val_annotations.empty()) {
    im.val_set = load_dataset(config.data.val_annotations, config.data.val_images, config.pipeline);
  }
  im.loader = std::make_unique<pipeline::Loader>(im.train_set, config.pipeline);
  if (const auto& views = im.loader->views()) {
    im.log("training set sliced (slice.above " + std::to_string(config.pipeline.slice.above) + "): " +
           views_text(im.train_set, *views));
    for (const auto& [reason, n] : views->dataset.skipped.counts()) {
      im.log("training set: slicing skipped " + std::to_string(n) + " annotation(s): " + reason);
    }
  }
  if (im.val_set) {
    // Evaluation sees the validation set as training sees its set: cut by
    // the same slice section (eval_pipeline_config keeps it).
    im.val_views = pipeline::make_views(*im.val_set, eval_pipeline_config(config.pipeline, config.eval.batch_size));
    if (im.val_views) im.log("validation set sliced: " + views_text(*im.val_set, *im.val_views));
  }
  im.categories = im.loader->categories();
  im.batch_size = config.pipeline.loader.batch_size;
  im.global_batch = im.batch_size * im.world;

  // Derived model keys: the dataset decides the classes, the pipeline the
  // input transform (which the trainer applies through the loader).
  if (config.model.num_classes != im.categories.num_classes()) {
    im.log("model.num_classes set to " + std::to_string(im.categories.num_classes()) + " (" +
           std::to_string(im.categories.size()) + " categories + background)");
    config.model.num_classes = static_cast<int>(im.categories.num_classes());
  }
  const stages::BatchConfig& b = config.pipeline.batch;
  config.model.transform.min_size = {b.min_size};
  config.model.transform.max_size = b.max_size;
  config.model.transform.size_divisible = b.size_divisible;
  config.model.transform.image_mean = b.mean;
  config.model.transform.image_std = b.std;
  config.model.device = config.device;
  im.config = std::move(config);
  im.config_yaml = config::dump_config(im.config);

  torch::manual_seed(derive_seed(im.config.pipeline.seed, {kTorchSeedTag}));
  im.net = model::MaskRCNN(im.config.model);
  // Rank 0 (and a single process) keeps the streams it always had; the other
  // ranks draw their own: the model's generator (multi-scale choices) here,
  // LibTorch's (random positive / negative sampling) after the broadcast below.
  const uint64_t seed = im.config.pipeline.seed;
  const auto rank = static_cast<uint64_t>(im.rank);
  im.net->rng().reseed(im.rank == 0 ? derive_seed(seed, {kModelRngTag}) : derive_seed(seed, {kModelRngTag, rank}));
  if (!im.config.model.weights.empty()) {
    model::load_weights(*im.net, im.config.model.weights);
    im.log("loaded weights " + im.config.model.weights);
  }
  im.net->to(im.device);
  im.net->train();
  const model::Amp amp = model::parse_amp(im.config.solver.amp);
  im.net->set_amp(amp);
  const std::string& scaling = im.config.solver.scaler.enabled;
  im.scaler = GradScaler(im.config.solver.scaler, scaling == "on" || (scaling == "auto" && amp == model::Amp::kFp16));
  if (amp == model::Amp::kBf16 && im.device.is_cpu() && !cpu_has_native_bf16()) {
    im.log("warning: this CPU has no native bf16 (no avx512_bf16 / amx_bf16 in /proc/cpuinfo): oneDNN emulates "
           "it, and solver.amp bf16 is likely slower than off");
  }
  if (amp != model::Amp::kOff || im.config.model.channels_last) {
    im.log(std::string("mixed precision: ") + model::amp_name(amp) +
           (im.scaler.enabled() ? " with dynamic loss scaling" : "") + ", memory format: " +
           (im.config.model.channels_last ? "channels-last" : "contiguous"));
  }
  im.optimizer = make_optimizer(*im.net, im.config.solver, train::learning_rate(im.config.solver, im.global_batch, 0));
  if (im.group) {
    if (im.rank != 0) torch::manual_seed(derive_seed(seed, {kTorchSeedTag, rank}));
    dist::broadcast_module(*im.group, *im.net);
    // The trainable parameters (frozen ones are skipped), in the module's order.
    std::vector<at::Tensor> params;
    for (const auto& p : im.net->named_parameters(/*recurse=*/true)) {
      if (p.value().requires_grad()) params.push_back(p.value());
    }
    im.reducer = std::make_unique<dist::GradientReducer>(*im.group, std::move(params), im.config.dist);
    const auto layout = im.reducer->layout();
    im.log("distributed: rank " + std::to_string(im.rank) + " of " + std::to_string(im.world) + " (" +
           im.group->backend_name() + "), " + std::to_string(layout.parameters) + " trainable tensors (" +
           one_decimal(static_cast<double>(layout.bytes) / (1024.0 * 1024.0)) + " MiB of gradients) in " +
           std::to_string(layout.buckets) + " bucket(s) of dist.bucket_mb " + short_number(im.config.dist.bucket_mb) +
           ", global batch " + std::to_string(im.global_batch));
  }
}

Trainer::~Trainer() = default;

uint64_t Trainer::iteration() const { return impl_->iteration; }
double Trainer::learning_rate() const {
  return train::learning_rate(impl_->config.solver, impl_->global_batch, impl_->iteration);
}
const TrainConfig& Trainer::config() const { return impl_->config; }
model::MaskRCNN& Trainer::model() { return impl_->net; }
torch::optim::SGD& Trainer::optimizer() { return *impl_->optimizer; }
const stages::CategoryMap& Trainer::categories() const { return impl_->categories; }
std::string Trainer::checkpoint_dir() const { return impl_->checkpoint_dir().string(); }
std::string Trainer::metrics_path() const { return impl_->metrics_path().string(); }

namespace {

/// Reasons of a checkpoint file that cannot be read (resume() passes it over
/// for an older one); any other load error means another model or config.
bool unreadable_checkpoint(const std::string& reason) {
  return reason == "cannot_open" || reason == "empty_weights_file" || reason == "truncated_weights_file" ||
         reason == "not_a_torch_archive" || reason == "bad_weights_file" || reason == "bad_checkpoint";
}

}  // namespace

std::string Trainer::resume(const std::string& checkpoint) {
  Impl& im = *impl_;
  if (im.started) throw Error("resume_after_start", "Trainer::resume() must come before train()");
  ResumeInfo info;
  std::optional<TrainState> state;
  if (!checkpoint.empty()) {
    state = load_checkpoint(checkpoint, *im.net, *im.optimizer);
    info.path = checkpoint;
  } else {
    const auto all = list_checkpoints(im.checkpoint_dir().string());
    Location where;
    where.file = im.checkpoint_dir().string();
    if (all.empty()) throw InputError("no_checkpoint", "no checkpoint to resume from", where);
    // Newest first; a checkpoint that fails to load leaves model and optimizer untouched.
    for (auto it = all.rbegin(); it != all.rend() && !state; ++it) {
      try {
        state = load_checkpoint(it->second, *im.net, *im.optimizer);
        info.path = it->second;
      } catch (const InputError& e) {
        if (!unreadable_checkpoint(e.reason())) throw;
        info.passed_over.push_back({it->second, e.reason(), e.detail()});
      }
    }
    if (!state) {
      std::string list;
      for (const RejectedCheckpoint& r : info.passed_over) {
        list += "; " + fs::path(r.path).filename().string() + ": " + r.message + " (" + r.reason + ")";
      }
      throw InputError("no_intact_checkpoint",
                       "none of the " + std::to_string(all.size()) + " checkpoint(s) can be read" + list, where);
    }
    for (const RejectedCheckpoint& r : info.passed_over) {
      im.log("passed over checkpoint " + r.path + ": " + r.message + " (" + r.reason + ")");
    }
  }
  const TrainState& s = *state;
  const std::string& path = info.path;
  if (s.world_size != static_cast<uint64_t>(im.world)) {
    Location where;
    where.file = path;
    where.key = "trainer.world_size";
    throw InputError("world_size_mismatch",
                     "the checkpoint was written by a run of " + std::to_string(s.world_size) +
                         " process(es); this run has " + std::to_string(im.world) +
                         ": resume it with the same number (each rank's data shard and generators depend on it)",
                     where);
  }
  info.iteration = s.iteration;
  im.resume_info = info;
  im.iteration = s.iteration;
  im.epoch = s.epoch;
  im.batch = s.batch;
  im.last_lr = s.lr;
  im.best_metric = s.best_metric;
  im.best_iteration = s.best_iteration;
  if (im.rank == 0) {
    im.net->rng().set_state(s.rng.model);
    restore_torch_rng(s.rng);
  } else {
    const RngStates& mine = s.rank_rng.at(static_cast<size_t>(im.rank - 1));
    im.net->rng().set_state(mine.model);
    restore_torch_rng(mine);
  }
  if (im.scaler.enabled()) {
    if (s.grad_scaler) {
      im.scaler.load_state(*s.grad_scaler);
    } else {
      im.log("the checkpoint has no loss scale (its run did not use fp16): starting at solver.scaler.init_scale");
    }
  }
  im.loader->seek(s.epoch, s.batch);
  im.last_checkpoint = path;
  im.last_checkpoint_iteration = s.iteration;
  im.resumed = true;
  try {
    const TrainConfig saved = config::parse_config_string<TrainConfig>(s.config_yaml, path + ":trainer.config");
    for (const std::string& key : config::config_diff(saved, im.config)) {
      im.log("config differs from the checkpoint's: " + key);
    }
  } catch (const Error& e) {
    im.log(std::string("cannot compare with the checkpoint's config: ") + e.what());
  }
  im.log("resumed from " + path + " at iteration " + std::to_string(s.iteration) + " (epoch " +
         std::to_string(s.epoch) + ", batch " + std::to_string(s.batch) + ")" +
         (info.passed_over.empty() ? std::string()
                                   : ", the newest intact checkpoint (" + std::to_string(info.passed_over.size()) +
                                         " newer one(s) passed over)"));
  return path;
}

const ResumeInfo& Trainer::resume_info() const { return impl_->resume_info; }

IterationRecord Trainer::step(const stages::Batch& batch) {
  Impl& im = *impl_;
  const auto t0 = Clock::now();
  IterationRecord rec;
  rec.lr = train::learning_rate(im.config.solver, im.global_batch, im.iteration);
  set_learning_rate(*im.optimizer, rec.lr);
  im.net->train();

  model::ImageList images;
  images.tensors = batch.images.to(im.device);
  images.image_sizes = batch.image_sizes;
  std::vector<model::Target> targets;
  targets.reserve(batch.targets.size());
  for (const stages::Target& t : batch.targets) {
    model::Target m;
    m.boxes = t.boxes.to(im.device);
    m.labels = t.labels.to(im.device);
    if (t.masks.defined()) m.masks = t.masks.to(im.device);
    targets.push_back(std::move(m));
  }
  const model::MaskRCNNOutput out = im.net->forward_batch(images, targets);
  at::Tensor total;
  for (const auto& [name, value] : out.losses) total = total.defined() ? total + value : value;
  if (!total.defined()) throw Error("no_losses", "the model returned no losses in training mode");
  for (const auto& [name, value] : out.losses) rec.losses[name] = value.item<double>();
  rec.loss = total.item<double>();
  if (!std::isfinite(rec.loss)) {
    std::ostringstream msg;
    msg << "loss became " << rec.loss << " at iteration " << im.iteration + 1 << ":";
    for (const auto& [name, v] : rec.losses) msg << " " << name << "=" << v;
    throw Error("non_finite_loss", msg.str());
  }
  // Gradients to undefined (PyTorch's zero_grad(set_to_none=True)): a
  // parameter that gets none is skipped by SGD in fresh and resumed runs alike.
  for (auto& group : im.optimizer->param_groups()) {
    for (auto& p : group.params()) p.mutable_grad() = at::Tensor();
  }
  if (im.reducer) im.reducer->prepare();
  // fp16: the scaled loss (GradScaler); the gradients are unscaled below.
  im.scaler.scale(total).backward();
  if (im.reducer) {
    // The mean gradient over ranks, and the stop request they agree on.
    int stop = 0;
    if (im.hooks.stop != nullptr && im.hooks.stop->load()) {
      stop = im.hooks.stop_signal && im.hooks.stop_signal() != 0 ? im.hooks.stop_signal() : SIGTERM;
    }
    const dist::GradientReducer::Sync sync = im.reducer->finish(stop);
    rec.comm_s = sync.wait_s;
    im.agreed_stop = sync.stop;
    // The losses reported (metrics.jsonl, hooks) are means over the ranks:
    // the loss of the global batch.
    at::Tensor means = at::empty({static_cast<int64_t>(rec.losses.size()) + 1}, at::kDouble);
    double* m = means.data_ptr<double>();
    m[0] = rec.loss;
    int64_t k = 1;
    for (const auto& [name, v] : rec.losses) m[k++] = v;
    im.group->all_reduce_sum(means);
    const double inv = 1.0 / static_cast<double>(im.world);
    rec.loss = m[0] * inv;
    k = 1;
    for (auto& [name, v] : rec.losses) v = m[k++] * inv;
  }
  std::vector<at::Tensor> params;
  if (im.scaler.enabled() || im.config.solver.clip_grad_norm > 0.0) {
    for (auto& group : im.optimizer->param_groups()) {
      for (auto& p : group.params()) params.push_back(p);
    }
  }
  // fp16: unscale, and skip the step when a gradient overflowed (every rank
  // sees the same all-reduced gradients, so all ranks agree).
  const bool finite = im.scaler.enabled() ? im.scaler.unscale(params) : true;
  if (finite && im.config.solver.clip_grad_norm > 0.0) {
    rec.grad_norm = torch::nn::utils::clip_grad_norm_(params, im.config.solver.clip_grad_norm);
  }
  if (finite) im.optimizer->step();
  if (im.scaler.enabled()) {
    rec.loss_scale = im.scaler.current_scale();
    rec.skipped_step = !finite;
    im.scaler.update(finite);
  }
  ++im.iteration;
  if (im.group && im.config.dist.verify_period > 0 && im.iteration % im.config.dist.verify_period == 0) {
    dist::verify_same_weights(*im.group, *im.net, "after iteration " + std::to_string(im.iteration));
  }
  im.last_lr = rec.lr;
  rec.iteration = im.iteration;
  rec.epoch = batch.epoch;
  rec.images = batch.targets.size();
  rec.step_s = seconds(t0, Clock::now());
  return rec;
}

std::string Trainer::save_checkpoint() {
  Impl& im = *impl_;
  const std::string path = (im.checkpoint_dir() / checkpoint_file_name(im.iteration)).string();
  TrainState s;
  if (im.group) {
    // Collective: every rank's generators go into rank 0's checkpoint.
    RngStates mine = capture_torch_rng();
    mine.model = im.net->rng().state();
    std::vector<uint8_t> bytes(sizeof(mine.model.s));
    std::memcpy(bytes.data(), mine.model.s, sizeof(mine.model.s));
    const at::Tensor cpu = mine.torch_cpu.contiguous();
    const auto* p = cpu.data_ptr<uint8_t>();
    bytes.insert(bytes.end(), p, p + cpu.numel());
    const std::vector<std::vector<uint8_t>> all = im.group->all_gather_bytes(bytes);
    s.world_size = static_cast<uint64_t>(im.world);
    for (int r = 1; r < im.world; ++r) {
      const std::vector<uint8_t>& b = all[static_cast<size_t>(r)];
      RngStates rs;
      std::memcpy(rs.model.s, b.data(), sizeof(rs.model.s));
      rs.torch_cpu = at::empty({static_cast<int64_t>(b.size() - sizeof(rs.model.s))}, at::kByte);
      std::memcpy(rs.torch_cpu.data_ptr<uint8_t>(), b.data() + sizeof(rs.model.s), b.size() - sizeof(rs.model.s));
      s.rank_rng.push_back(std::move(rs));
    }
    if (!im.writer()) {
      im.last_checkpoint = path;
      im.last_checkpoint_iteration = im.iteration;
      return path;
    }
  }
  std::error_code ec;
  fs::create_directories(im.checkpoint_dir(), ec);
  s.iteration = im.iteration;
  s.epoch = im.epoch;
  s.batch = im.batch;
  s.rng = capture_torch_rng();
  s.rng.model = im.net->rng().state();
  s.best_metric = im.best_metric;
  s.best_iteration = im.best_iteration;
  s.lr = im.last_lr;
  s.config_yaml = im.config_yaml;
  if (im.scaler.enabled()) s.grad_scaler = im.scaler.state();
  train::save_checkpoint(path, *im.net, *im.optimizer, s);
  write_file_atomic((im.checkpoint_dir() / "last_checkpoint").string(), checkpoint_file_name(im.iteration) + "\n");
  for (const std::string& removed : prune_checkpoints(im.checkpoint_dir().string(), im.config.checkpoint.keep_last)) {
    im.log("removed old checkpoint " + removed);
  }
  im.last_checkpoint = path;
  im.last_checkpoint_iteration = im.iteration;
  return path;
}

EvaluationReport Trainer::evaluate() {
  Impl& im = *impl_;
  if (!im.val_set) throw Error("no_val_set", "evaluation needs data.val_annotations");
  EvaluateOptions opts;
  opts.max_images = static_cast<size_t>(im.config.eval.max_images);
  opts.batch_size = im.config.eval.batch_size;
  opts.mask_threshold = im.config.eval.mask_threshold;
  opts.eval_threads = im.config.eval.threads;
  opts.device = im.config.device;
  opts.views = im.val_views;
  if (im.group) {
    opts.rank = im.rank;
    opts.world_size = im.world;
    dist::ProcessGroup* g = im.group.get();
    opts.all_gather = [g](const std::vector<uint8_t>& bytes) { return g->all_gather_bytes(bytes); };
  }
  return evaluate_model(im.net, *im.val_set, eval_pipeline_config(im.config.pipeline, im.config.eval.batch_size),
                        im.categories, opts);
}

namespace {

std::string window_json(const MetricsWindow& w) {
  JsonWriter j;
  j.begin_object();
  j.field("type", "train");
  j.field("iter", w.iteration);
  j.field("epoch", w.epoch);
  j.field("iterations", w.iterations);
  j.field("lr", w.lr);
  j.field("loss", w.loss);
  for (const auto& [name, v] : w.losses) j.field(name, v);
  j.field("time_s", w.time_s);
  j.field("data_s", w.data_s);
  j.field("data_share", w.data_share);
  j.field("images_per_s", w.images_per_s);
  j.field("world_size", static_cast<uint64_t>(w.world_size));
  if (w.world_size > 1) j.field("comm_s", w.comm_s);
  if (w.loss_scale > 0.0) {
    j.field("loss_scale", w.loss_scale);
    j.field("skipped_steps", w.skipped_steps);
  }
  j.end_object();
  return j.take();
}

}  // namespace

TrainSummary Trainer::train(uint64_t until) {
  Impl& im = *impl_;
  const TrainConfig& c = im.config;
  const uint64_t max_iter = c.solver.max_iter;
  const uint64_t end = until == 0 ? max_iter : std::min(until, max_iter);
  const auto wall0 = Clock::now();
  TrainSummary summary;
  summary.world_size = im.world;
  summary.rank = im.rank;
  if (!im.started && im.writer()) {
    summary.removed_temporaries = remove_stale_temporaries(im.checkpoint_dir().string());
    for (const std::string& path : summary.removed_temporaries) {
      im.log("removed " + path + ", a temporary checkpoint file of a killed run");
    }
  }
  if (!im.resumed && !im.started && im.writer()) {
    const auto stale = list_checkpoints(im.checkpoint_dir().string());
    if (!stale.empty()) {
      Location where;
      where.file = im.checkpoint_dir().string();
      throw Error("stale_checkpoints",
                  "the checkpoint directory holds " + std::to_string(stale.size()) +
                      " checkpoint(s) of an earlier run (newest: iteration " + std::to_string(stale.back().first) +
                      "); resume it or use another output_dir",
                  where);
    }
  }
  im.started = true;

  std::error_code ec;
  if (im.writer()) {
    fs::create_directories(im.output_dir(), ec);
    write_file_atomic((im.output_dir() / "config.yaml").string(), im.config_yaml);
  }

  // metrics.jsonl: a resumed run drops the lines of iterations after its
  // checkpoint, and a line the interruption cut short (every line written is
  // one JSON object, so a complete one ends with '}').
  const std::string metrics_file = im.metrics_path().string();
  if (!im.writer()) {
    // Ranks > 0 write nothing: rank 0's metrics.jsonl speaks for the run.
  } else if (im.resumed && fs::exists(metrics_file)) {
    std::ifstream in(metrics_file);
    std::string kept, line;
    while (std::getline(in, line)) {
      const auto it = line_iteration(line);
      if (!line.empty() && line.back() == '}' && (!it || *it <= im.iteration)) kept += line + "\n";
    }
    write_file_atomic(metrics_file, kept);
  } else if (!im.resumed && im.iteration == 0) {
    write_file_atomic(metrics_file, std::string());
  }
  std::ofstream metrics;
  if (im.writer()) metrics.open(metrics_file, std::ios::app);
  if (im.writer() && !metrics) {
    Location where;
    where.file = metrics_file;
    throw Error("cannot_write", "cannot open the metrics file", where);
  }
  auto write_line = [&](const std::string& json) {
    if (!im.writer()) return;
    metrics << json << '\n';
    metrics.flush();
  };

  summary.start_iteration = im.iteration;
  summary.resumed = im.resume_info;
  MetricsWindow window;
  double window_images = 0.0;
  auto flush_window = [&] {
    if (window.iterations == 0) return;
    const double n = static_cast<double>(window.iterations);
    MetricsWindow out = window;
    for (auto& [name, v] : out.losses) v /= n;
    out.loss /= n;
    const double total_time = out.time_s;
    out.time_s = total_time / n;
    out.data_share = total_time > 0 ? out.data_s / total_time : 0.0;
    out.data_s /= n;
    out.images_per_s = total_time > 0 ? window_images / total_time : 0.0;
    out.world_size = im.world;
    out.comm_s /= n;
    write_line(window_json(out));
    if (im.hooks.on_window) im.hooks.on_window(out);
    window = MetricsWindow();
    window_images = 0.0;
  };

  auto run_eval = [&] {
    const EvaluationReport r = evaluate();
    if (!r.evaluated) return;  // a rank > 0 of a sharded evaluation: rank 0 scores and writes
    const std::map<std::string, double> m = r.metrics();
    const double value = (im.metric.segm ? r.segm->stats : r.bbox.stats)[im.metric.index];
    const bool best = value > im.best_metric;
    JsonWriter j;
    j.begin_object();
    j.field("type", "eval");
    j.field("iter", im.iteration);
    j.field("world_size", static_cast<uint64_t>(im.world));
    j.field("images", static_cast<uint64_t>(r.images));
    j.field("detections", static_cast<uint64_t>(r.detections));
    j.field("inference_s", r.inference_s);
    j.field("eval_s", r.eval_s);
    for (const auto& [name, v] : m) j.field(name, v);
    j.field("metric", c.eval.metric);
    j.field("value", value);
    j.field("best", best);
    j.end_object();
    write_line(j.take());
    if (best) {
      im.best_metric = value;
      im.best_iteration = im.iteration;
      c10::Dict<std::string, at::Tensor> dict;
      for (const auto& [key, t] : model::state_dict(*im.net)) dict.insert(key, t.detach().cpu().contiguous());
      const std::vector<char> bytes = torch::pickle_save(dict);
      write_file_atomic((im.output_dir() / "best.pt").string(), bytes.data(), bytes.size());
      JsonWriter b(2);
      b.begin_object();
      b.field("metric", c.eval.metric);
      b.field("value", value);
      b.field("iter", im.iteration);
      b.end_object();
      write_file_atomic((im.output_dir() / "best.json").string(), b.str() + "\n");
      im.log("new best " + c.eval.metric + " = " + std::to_string(value) + " at iteration " +
             std::to_string(im.iteration) + " (best.pt)");
    }
    if (im.hooks.on_eval) im.hooks.on_eval(im.iteration, r);
  };

  // No batch in a whole epoch: name the data and say what was skipped.
  auto throw_empty_epoch = [&] {
    SkipReport skipped = im.train_set.skipped;
    skipped.merge(im.loader->skipped());
    Location where;
    where.file = c.data.train_annotations;
    std::string message = "the loader delivered no batch in a whole epoch of " +
                          std::to_string(im.train_set.images.size()) + " image(s) (images in " +
                          c.data.train_images + "): ";
    if (skipped.empty()) {
      message += "nothing was skipped";
    } else {
      message += std::to_string(skipped.total()) + " sample(s) or record(s) skipped:";
      for (const auto& [reason, n] : skipped.counts()) {
        message += " " + std::to_string(n) + " " + reason + " (first: " + skipped.first_messages().at(reason) + ");";
      }
      message.pop_back();
    }
    throw EmptyEpochError(message, where, std::move(skipped));
  };

  const uint64_t max_epochs = c.pipeline.loader.max_epochs;
  while (im.iteration < end) {
    // Distributed runs agree on stopping inside step() (the gradient sync).
    if (!im.group && im.hooks.stop != nullptr && im.hooks.stop->load()) {
      summary.interrupted = true;
      break;
    }
    const auto t0 = Clock::now();
    std::optional<stages::Batch> batch;
    for (int attempt = 0; attempt < 2 && !batch; ++attempt) {
      batch = im.loader->next_batch();
      if (!batch && max_epochs != 0 && im.loader->epoch() >= max_epochs) break;
    }
    if (!batch) {
      if (max_epochs != 0 && im.loader->epoch() >= max_epochs) {
        summary.data_exhausted = true;
        im.log("the data stream ended after " + std::to_string(max_epochs) + " epoch(s) (pipeline.loader.max_epochs)");
        break;
      }
      throw_empty_epoch();
    }
    const double data_s = seconds(t0, Clock::now());
    IterationRecord rec = step(*batch);
    rec.data_s = data_s;
    // Position of the next batch: the group after this one (seq / batch size
    // stays right when samples of the group were skipped).
    im.epoch = batch->epoch;
    // A sample's seq is its position in the whole epoch list, s * world + rank
    // for entry s of this rank's shard.
    im.batch = batch->seqs.empty() ? im.batch + 1
                                   : batch->seqs.back() / static_cast<uint64_t>(im.world) /
                                             static_cast<uint64_t>(im.batch_size) +
                                         1;
    const double iter_s = seconds(t0, Clock::now());

    summary.iterations_s += iter_s;
    summary.data_wait_s += data_s;
    summary.images += rec.images * static_cast<uint64_t>(im.world);  // equal shards: every rank's batch is as large
    window.iteration = rec.iteration;
    window.epoch = rec.epoch;
    ++window.iterations;
    window.lr = rec.lr;
    window.loss += rec.loss;
    for (const auto& [name, v] : rec.losses) window.losses[name] += v;
    window.time_s += iter_s;
    window.data_s += data_s;
    window.comm_s += rec.comm_s;
    if (rec.loss_scale > 0.0) {
      window.loss_scale = rec.loss_scale;
      window.skipped_steps += rec.skipped_step ? 1 : 0;
    }
    summary.comm_wait_s += rec.comm_s;
    window_images += static_cast<double>(rec.images) * im.world;
    if (im.hooks.on_iteration) im.hooks.on_iteration(rec);

    if (im.iteration % c.log_period == 0 || im.iteration == max_iter) flush_window();
    const bool last = im.iteration == max_iter;
    if (im.val_set && ((c.eval.period > 0 && im.iteration % c.eval.period == 0) || (last && c.eval.at_end))) {
      run_eval();
    }
    if (im.iteration % c.checkpoint.period == 0 || last) save_checkpoint();
    if (im.group && im.agreed_stop != 0) {
      summary.interrupted = true;
      summary.stop_signal = im.agreed_stop;
      break;
    }
  }
  flush_window();
  if (summary.interrupted && im.last_checkpoint_iteration != im.iteration) save_checkpoint();

  summary.end_iteration = im.iteration;
  summary.finished = im.iteration >= max_iter;
  summary.wall_s = seconds(wall0, Clock::now());
  summary.data_wait_share = summary.iterations_s > 0 ? summary.data_wait_s / summary.iterations_s : 0.0;
  summary.images_per_s = summary.iterations_s > 0 ? static_cast<double>(summary.images) / summary.iterations_s : 0.0;
  const pipeline::StageTimes times = im.loader->times();
  summary.loader_wait_s = times.consumer_wait_s;
  if (const auto& views = im.loader->views()) summary.views = views->views.size();
  summary.windows_read = times.windows_read;
  summary.tile_cache = times.tile_cache;
  summary.best_metric = im.best_metric;
  summary.best_iteration = im.best_iteration;
  summary.last_checkpoint = im.last_checkpoint;
  summary.skipped = im.loader->skipped();

  JsonWriter j;
  j.begin_object();
  j.field("type", "summary");
  j.field("iter", im.iteration);
  j.field("start_iter", summary.start_iteration);
  j.field("finished", summary.finished);
  j.field("interrupted", summary.interrupted);
  j.field("wall_s", summary.wall_s);
  j.field("iterations_s", summary.iterations_s);
  j.field("data_wait_s", summary.data_wait_s);
  j.field("data_wait_share", summary.data_wait_share);
  j.field("loader_wait_s", summary.loader_wait_s);
  j.field("images", summary.images);
  j.field("images_per_s", summary.images_per_s);
  j.field("skipped", summary.skipped.total());
  j.field("world_size", static_cast<uint64_t>(summary.world_size));
  if (summary.world_size > 1) {
    j.field("comm_wait_s", summary.comm_wait_s);
    if (summary.stop_signal != 0) j.field("stop_signal", static_cast<uint64_t>(summary.stop_signal));
  }
  if (!summary.resumed.path.empty()) {
    j.field("resumed_from", summary.resumed.path);
    j.field("resumed_iter", summary.resumed.iteration);
    j.key("checkpoints_passed_over").begin_array();
    for (const RejectedCheckpoint& r : summary.resumed.passed_over) {
      j.begin_object().field("path", r.path).field("reason", r.reason).field("message", r.message).end_object();
    }
    j.end_array();
  }
  j.end_object();
  write_line(j.take());
  return summary;
}

}  // namespace pasteflow::train
