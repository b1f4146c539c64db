// pasteflow.Loader's C++ half (_pasteflow.Loader): owns the dataset and a
// pipeline::Loader, hands batches to Python as torch tensors through DLPack
// (zero-copy: the Python tensor keeps the C++ storage alive, so the loader's
// batch pool never reuses memory Python still holds), and waits for batches
// with the GIL released. python/pasteflow/loader.py wraps it into the
// iterable users see.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <ATen/ATen.h>
#include <ATen/DLConvertor.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bindings.hpp"
#include "pasteflow/config/config.hpp"
#include "pasteflow/core/error.hpp"
#include "pasteflow/io/coco.hpp"
#include "pasteflow/io/select.hpp"
#include "pasteflow/pipeline/allocator.hpp"
#include "pasteflow/pipeline/config.hpp"
#include "pasteflow/pipeline/loader.hpp"
#include "pasteflow/train/config.hpp"

namespace py = pybind11;

namespace pasteflow::python {

namespace {

void delete_dltensor(PyObject* capsule) {
  // A capsule torch consumed is renamed "used_dltensor" and owned by torch.
  if (PyCapsule_IsValid(capsule, "dltensor") != 0) {
    auto* managed = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule, "dltensor"));
    if (managed != nullptr && managed->deleter != nullptr) managed->deleter(managed);
  } else {
    PyErr_Clear();
  }
}

}  // namespace

/// A torch.Tensor sharing `t`'s memory (DLPack).
py::object to_torch(const at::Tensor& t) {
  // Leaked on purpose: a static py::object would be destroyed after the
  // interpreter has finalised (exit handlers run without the GIL).
  static const py::object& from_dlpack = *new py::object(py::module_::import("torch.utils.dlpack").attr("from_dlpack"));
  DLManagedTensor* managed = at::toDLPack(t);
  PyObject* capsule = PyCapsule_New(managed, "dltensor", delete_dltensor);
  if (capsule == nullptr) {
    managed->deleter(managed);
    throw py::error_already_set();
  }
  return from_dlpack(py::reinterpret_steal<py::object>(capsule));
}

namespace {

/// Where the loader's images and annotations come from, and its config.
struct Source {
  pipeline::PipelineConfig config;
  std::string annotations;
  std::string images;
  double train_fraction = 1.0;
  uint64_t train_fraction_seed = 0;
};

Location at_key(const std::string& file, const std::string& key) {
  Location where;
  where.file = file;
  where.key = key;
  return where;
}

bool is_training_root(const std::string& key) {
  static const char* const kRoots[] = {"pipeline", "data",   "model",       "solver",     "checkpoint", "eval",
                                       "dist",     "device", "output_dir", "log_period", "torch_threads"};
  const std::string root = key.substr(0, key.find('.'));
  return std::any_of(std::begin(kRoots), std::end(kRoots), [&](const char* r) { return root == r; });
}

/// A pipeline config, or a training config's `pipeline` and `data` sections.
/// Overrides of a training config are relative to its `pipeline` section
/// (augment.copies=3) unless they start with one of its root keys
/// (data.train_fraction=0.5, pipeline.seed=1), as the CLI's pipeline
/// commands take them.
Source load_source(const std::string& path, const std::vector<std::string>& overrides) {
  Source s;
  try {
    s.config = pipeline::load_pipeline_config(path, overrides);
    return s;
  } catch (const ConfigError& e) {
    if (e.reason() != "unknown_key" || !is_training_root(e.where().key)) throw;
  }
  std::vector<std::string> train_overrides;
  for (const std::string& o : overrides) train_overrides.push_back(is_training_root(o) ? o : "pipeline." + o);
  train::TrainConfig t = config::load_config<train::TrainConfig>(path, train_overrides);
  pipeline::validate_pipeline_config(t.pipeline, path);
  s.config = std::move(t.pipeline);
  s.annotations = t.data.train_annotations;
  s.images = t.data.train_images;
  s.train_fraction = t.data.train_fraction;
  s.train_fraction_seed = t.data.train_fraction_seed;
  if (!(s.train_fraction > 0.0 && s.train_fraction <= 1.0)) {
    throw ConfigError("out_of_range", "must be in (0, 1] (1 = every training image)",
                      at_key(path, "data.train_fraction"));
  }
  return s;
}

}  // namespace

pipeline::PipelineConfig load_pipeline_section(const std::string& path, const std::vector<std::string>& overrides) {
  if (path.empty()) {
    pipeline::PipelineConfig c = config::parse_config_string<pipeline::PipelineConfig>("", "<defaults>", overrides);
    pipeline::validate_pipeline_config(c, "<defaults>");
    return c;
  }
  return load_source(path, overrides).config;
}

namespace {

py::dict target_dict(const stages::Target& t, bool torchvision) {
  py::dict d;
  d["boxes"] = to_torch(t.boxes);
  d["labels"] = to_torch(t.labels);
  if (t.masks.defined()) d["masks"] = to_torch(t.masks);
  // torchvision's references (0.14, coco_utils.ConvertCocoPolysToMask):
  // image_id a one-element int64 tensor, iscrowd int64, area float32.
  d["image_id"] = to_torch(at::full({1}, t.image_id, at::TensorOptions().dtype(at::kLong).device(t.labels.device())));
  d["area"] = to_torch(t.area);
  d["iscrowd"] = to_torch(t.iscrowd.to(at::kLong));
  d["annotation_ids"] = to_torch(t.annotation_ids);
  if (!torchvision) {
    d["image_size"] = py::make_tuple(t.image_size[0], t.image_size[1]);
    d["original_size"] = py::make_tuple(t.original_size[0], t.original_size[1]);
  }
  return d;
}

}  // namespace

class PyLoader {
 public:
  PyLoader(const std::string& config_path, const std::vector<std::string>& overrides, int rank, int world_size,
           const std::string& output, const std::string& annotations, const std::string& images) {
    if (output != "model" && output != "torchvision") {
      throw ConfigError("bad_choice", "output must be \"model\" or \"torchvision\", not \"" + output + "\"",
                        at_key(config_path, "output"));
    }
    if (world_size < 1 || rank < 0 || rank >= world_size) {
      throw ConfigError("out_of_range",
                        "rank " + std::to_string(rank) + " of world_size " + std::to_string(world_size) +
                            ": need 0 <= rank < world_size",
                        at_key(config_path, "rank"));
    }
    Source s = load_source(config_path, overrides);
    if (!annotations.empty()) s.annotations = annotations;
    if (!images.empty()) s.images = images;
    if (s.annotations.empty()) {
      throw ConfigError("missing_key",
                        "a pipeline config names no data: pass annotations= (and images=), or use a training "
                        "config with data.train_annotations",
                        at_key(config_path, "data.train_annotations"));
    }
    s.config.batch.output = output;
    if (world_size > 1 || rank > 0) {
      s.config.sampler.rank = static_cast<uint64_t>(rank);
      s.config.sampler.world_size = static_cast<uint64_t>(world_size);
    }
    config_ = s.config;

    io::LoadOptions load;
    load.policy = parse_error_policy(config_.loader.on_error);
    load.image_root = s.images;
    load.max_pixels = pipeline::load_max_pixels(config_);
    auto ds = std::make_shared<io::CocoDataset>(io::load_coco(s.annotations, load));
    if (s.train_fraction < 1.0) {
      ds = std::make_shared<io::CocoDataset>(
          io::keep_images(*ds, io::fraction_indices(*ds, s.train_fraction, s.train_fraction_seed)));
    }
    dataset_ = std::move(ds);
    torchvision_ = output == "torchvision";
    // The CLI's allocator policy for processes that run the loader (unless
    // the user set glibc's malloc tunables): without it every image's
    // buffers are faulted in again (pipeline/allocator.hpp).
    static const bool tuned = [] {
      pipeline::tune_allocator_for_pipeline();
      return true;
    }();
    (void)tuned;
    start(0, 0);
  }

  ~PyLoader() { close(); }

  /// Stops the graph (drains it) and frees the loader; idempotent.
  void close() {
    if (!loader_) return;
    if (_Py_IsFinalizing() != 0 || PyGILState_Check() == 0) {
      // Interpreter shutdown (or no thread state): nothing else can run
      // Python now, so the graph drains without giving the GIL away.
      std::lock_guard<std::mutex> lock(mutex_);
      loader_.reset();
      return;
    }
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mutex_);
    loader_.reset();
  }

  /// The next batch of the current epoch as (images, targets), or None at
  /// the epoch's end (the following call starts the next epoch).
  py::object next_batch() {
    if (!loader_) throw Error("closed", "the loader was closed");
    std::optional<stages::Batch> batch;
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mutex_);  // one consumer at a time (Python threads)
      if (!loader_) throw Error("closed", "the loader was closed");
      batch = loader_->next_batch();
    }
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();  // Ctrl-C while waiting
    if (!batch) {
      ++epoch_;
      batch_ = 0;
      return py::none();
    }
    ++batch_;
    py::list targets;
    for (const stages::Target& t : batch->targets) targets.append(target_dict(t, torchvision_));
    if (torchvision_) {
      py::list images;
      for (const at::Tensor& im : batch->image_list) images.append(to_torch(im));
      return py::make_tuple(images, targets);
    }
    return py::make_tuple(to_torch(batch->images), targets);
  }

  /// The C++ consumer, for benchmarks: takes up to `max_batches` batches of
  /// the current epoch in C++ (no conversion to Python objects, GIL
  /// released) and drops them; returns the number of images. Advances the
  /// stream as next_batch() does.
  uint64_t consume(uint64_t max_batches) {
    if (!loader_) throw Error("closed", "the loader was closed");
    uint64_t images = 0;
    uint64_t taken = 0;
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mutex_);
      if (!loader_) throw Error("closed", "the loader was closed");
      while (taken < max_batches) {
        std::optional<stages::Batch> batch = loader_->next_batch();
        if (!batch) {
          ++epoch_;
          batch_ = 0;
          break;
        }
        ++batch_;
        ++taken;
        images += batch->targets.size();
      }
    }
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    return images;
  }

  /// Positions the stream at batch `batch` of epoch `epoch` (a new graph).
  void seek(uint64_t epoch, uint64_t batch) {
    if (epoch == epoch_ && batch == batch_ && loader_) return;
    start(epoch, batch);
  }

  uint64_t epoch() const { return epoch_; }
  uint64_t batch() const { return batch_; }
  size_t batches_per_epoch(uint64_t e) const { return require().batches_per_epoch(e); }
  size_t samples_per_epoch(uint64_t e) const { return require().epoch_size(e); }
  uint64_t seed() const { return config_.seed; }
  int batch_size() const { return config_.loader.batch_size; }
  uint64_t rank() const { return config_.sampler.rank; }
  uint64_t world_size() const { return config_.sampler.world_size; }
  std::string config_yaml() const { return config::dump_config(config_); }
  size_t num_images() const { return dataset_->images.size(); }

  std::vector<std::pair<int64_t, std::string>> categories() const {
    std::vector<std::pair<int64_t, std::string>> out;
    for (int64_t id : require().categories().dataset_ids()) {
      const int64_t i = dataset_->category_index(id);
      out.emplace_back(id, i >= 0 ? std::string(dataset_->str(dataset_->categories[static_cast<size_t>(i)].name))
                                  : std::string());
    }
    return out;
  }

  py::dict stats() const {
    const pipeline::Loader& l = require();
    const pipeline::StageTimes t = l.times();
    py::dict stages;
    for (const auto& c : t.stages) {
      py::dict s;
      s["calls"] = c.calls;
      s["seconds"] = c.seconds;
      stages[py::str(c.name)] = s;
    }
    py::dict d;
    d["stages"] = stages;
    d["wait_seconds"] = t.consumer_wait_s;
    d["batches"] = t.batches;
    d["samples"] = t.samples;
    d["max_ready"] = t.max_ready;
    d["max_inflight"] = t.max_inflight;
    d["batches_copied"] = t.batches_copied;
    d["windows_read"] = t.windows_read;
    const SkipReport skipped = l.skipped();
    py::dict reasons;
    for (const auto& [reason, n] : skipped.counts()) reasons[py::str(reason)] = n;
    d["skipped"] = skipped.total();
    d["skipped_by_reason"] = reasons;
    py::dict cache;
    cache["hits"] = t.tile_cache.hits;
    cache["misses"] = t.tile_cache.misses;
    cache["peak_bytes"] = t.tile_cache.peak_bytes;
    cache["hit_rate"] = t.tile_cache.hit_rate();
    d["tile_cache"] = cache;
    return d;
  }

 private:
  const pipeline::Loader& require() const {
    if (!loader_) throw Error("closed", "the loader was closed");
    return *loader_;
  }

  void start(uint64_t epoch, uint64_t batch) {
    close();
    py::gil_scoped_release release;
    auto loader = std::make_unique<pipeline::Loader>(*dataset_, config_);
    if (epoch != 0 || batch != 0) loader->seek(epoch, batch);
    std::lock_guard<std::mutex> lock(mutex_);
    loader_ = std::move(loader);
    epoch_ = epoch;
    batch_ = batch;
  }

  pipeline::PipelineConfig config_;
  std::shared_ptr<const io::CocoDataset> dataset_;
  std::unique_ptr<pipeline::Loader> loader_;
  /// Held while a Python thread waits in next_batch() / consume() (with the
  /// GIL released) and while the loader is replaced: pipeline::Loader has one
  /// consumer.
  std::mutex mutex_;
  bool torchvision_ = false;
  uint64_t epoch_ = 0;  ///< the epoch the next batch belongs to
  uint64_t batch_ = 0;  ///< batches of epoch_ delivered so far
};

void bind_loader(py::module_& m) {
  py::class_<PyLoader>(m, "Loader")
      .def(py::init<const std::string&, const std::vector<std::string>&, int, int, const std::string&,
                    const std::string&, const std::string&>(),
           py::arg("config"), py::arg("overrides"), py::arg("rank"), py::arg("world_size"), py::arg("output"),
           py::arg("annotations"), py::arg("images"))
      .def("next_batch", &PyLoader::next_batch)
      .def("seek", &PyLoader::seek, py::arg("epoch"), py::arg("batch"))
      .def("consume", &PyLoader::consume, py::arg("max_batches"))
      .def("close", &PyLoader::close)
      .def_property_readonly("epoch", &PyLoader::epoch)
      .def_property_readonly("batch", &PyLoader::batch)
      .def("batches_per_epoch", &PyLoader::batches_per_epoch, py::arg("epoch"))
      .def("samples_per_epoch", &PyLoader::samples_per_epoch, py::arg("epoch"))
      .def_property_readonly("seed", &PyLoader::seed)
      .def_property_readonly("batch_size", &PyLoader::batch_size)
      .def_property_readonly("rank", &PyLoader::rank)
      .def_property_readonly("world_size", &PyLoader::world_size)
      .def_property_readonly("num_images", &PyLoader::num_images)
      .def("config_yaml", &PyLoader::config_yaml)
      .def("categories", &PyLoader::categories)
      .def("stats", &PyLoader::stats);
}

}  // namespace pasteflow::python
