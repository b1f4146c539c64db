// The prefetching loader: a oneTBB flow graph (pipeline/graph.cpp builds it)
// that turns the sampler's tickets into ordered batches (or ordered samples).
//
//   for (auto& batch : loader) { ... }      // one epoch
//
// Guarantees:
//  - Order and content depend only on (config, seed): every random choice
//    is drawn from Rng(seed, {epoch, seq, stage}), and a sequencer restores
//    the sampler's order, so the stream is identical at any thread count.
//  - Memory: at most `loader.prefetch` batches are ready or in preparation
//    (the consumer releases a batch's tickets when it takes the batch), and
//    at most `loader.inflight` samples are inside the graph (limiter node).
//  - Errors: a stage that throws turns its sample into a tombstone carrying
//    the exception and the image id. "strict": next() rethrows it as
//    PipelineError; "skip": the sample is dropped and counted in skipped().
//  - Destroying the loader mid-epoch stops feeding, cancels and drains the
//    graph; nothing leaks.
//
// Huge images (issue 11, "slices are samples"): with slice.above > 0 the
// loader samples views, not images. It cuts the dataset once
// (make_views: slice::slice_dataset with the config's slice section and
// seed) and owns the result; the sampler, instances, paste and batch stages
// see the views dataset as an ordinary dataset (one image record per view,
// of the window's size, with the annotations cut to it), so oversampling
// and repeat factors apply per view, pasting happens inside the view, and
// targets carry the views' image ids. The load node reads a sliced view's
// pixels with Decoder::decode_window (only the TIFF tiles that touch the
// window are decoded, through the one raster::TiffPool the loader creates
// from config.raster and shares with every worker); views that are whole
// images are decoded as before. dataset() is what is sampled, views() maps
// each of its images back to the source image and window. With
// slice.above 0 nothing changes: the stream is bit-identical to a loader
// without these sections.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pasteflow/core/error.hpp"
#include "pasteflow/io/coco.hpp"
#include "pasteflow/pipeline/config.hpp"
#include "pasteflow/raster/tiff.hpp"
#include "pasteflow/slice/slice.hpp"

namespace pasteflow::pipeline {

/// A stage failed on one sample. what() names the stage, the image id and
/// path and the original message (which carries its own file/record).
class PipelineError : public Error {
 public:
  PipelineError(std::string reason, const std::string& message, Location where, int64_t image_id,
                std::string stage)
      : Error(std::move(reason), message, std::move(where)), image_id_(image_id), stage_(std::move(stage)) {}
  int64_t image_id() const noexcept { return image_id_; }
  const std::string& stage() const noexcept { return stage_; }

 private:
  int64_t image_id_;
  std::string stage_;
};

/// Time spent in each node body, summed over threads, and the consumer's wait.
struct StageTimes {
  struct Counter {
    std::string name;
    uint64_t calls = 0;
    double seconds = 0;
  };
  std::vector<Counter> stages;  ///< in graph order
  double consumer_wait_s = 0;   ///< time next() spent blocked waiting for data
  uint64_t batches = 0;
  uint64_t samples = 0;
  uint64_t max_ready = 0;       ///< most batches (or samples) ever ready at once
  uint64_t max_inflight = 0;    ///< most samples ever inside the graph at once
  uint64_t batches_copied = 0;  ///< batches whose images were copied into a new tensor (a skipped sample, an unknown image size, a GPU device) instead of prepared in place
  uint64_t windows_read = 0;    ///< sliced views whose window was read (Decoder::decode_window)
  uint64_t batch_tensors_allocated = 0;  ///< planned batch tensors newly allocated (the others reused a pooled one)
  uint64_t batch_tensors_reused = 0;     ///< planned batch tensors that reused the memory of a released batch
  /// The shared TIFF tile cache (Loader::tile_cache()) when these times were taken.
  raster::TileCache::Stats tile_cache;
};

/// What the loader delivers: batches (training) or single augmented samples
/// (export, preview).
enum class Output { kBatches, kSamples };

/// Which tickets an epoch has; by default the Sampler's epoch(e). Tickets'
/// image_index refer to the sampled dataset (Loader::dataset(): the views
/// when slicing).
using TicketSource = std::function<std::vector<stages::SampleTicket>(uint64_t epoch)>;

/// The views a loader with `config` samples from `dataset`: null when
/// config.slice.above is 0 (no slicing), else slice::slice_dataset(dataset,
/// config.slice, config.seed, false, the policy of loader.on_error) with the
/// views dataset's image_root set to `dataset`'s (its file names are the
/// source images'). Deterministic: the same views for the same (dataset,
/// slice section, seed). Throws what slice_dataset throws (InputError
/// naming a bad annotation under "strict"; "skip" drops and counts it in
/// the views dataset's `skipped`).
std::shared_ptr<const slice::SlicedDataset> make_views(const io::CocoDataset& dataset, const PipelineConfig& config);

class Loader {
 public:
  /// `dataset` must outlive the loader. Validates the config (ConfigError).
  /// With config.slice.above > 0 the loader cuts `dataset` into views
  /// itself (make_views) and samples those.
  Loader(const io::CocoDataset& dataset, PipelineConfig config, Output output = Output::kBatches,
         TicketSource tickets = {});
  /// Samples the views given (made by make_views(dataset, config), e.g. to
  /// build tickets or a ground truth over them first) instead of cutting
  /// again; null `views`: `dataset`'s images, unsliced, whatever
  /// config.slice says. Throws Error "bad_views" when a view names an
  /// image `dataset` lacks or the views and their dataset disagree.
  Loader(const io::CocoDataset& dataset, std::shared_ptr<const slice::SlicedDataset> views, PipelineConfig config,
         Output output = Output::kBatches, TicketSource tickets = {});
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  /// The next batch of the current epoch; nullopt at its end (the following
  /// call starts the next epoch). Output::kBatches only.
  std::optional<stages::Batch> next_batch();
  /// The next augmented sample (image + instances), Output::kSamples only.
  std::optional<stages::Sample> next_sample();

  /// Starts the stream at batch `batch` of epoch `epoch` instead of at the
  /// beginning (resuming a checkpoint): the batches delivered are exactly
  /// those an uninterrupted run delivers from that point, since every random
  /// draw depends on (seed, epoch, sample position) only. Only before the
  /// first next_batch()/next_sample(); throws Error otherwise.
  void seek(uint64_t epoch, uint64_t batch);

  /// Range-for over one epoch of batches.
  class Iterator;
  Iterator begin();
  Iterator end();

  /// The epoch the next call to next_batch()/next_sample() belongs to.
  uint64_t epoch() const noexcept;
  /// Tickets (samples) of epoch `e` on this rank.
  size_t epoch_size(uint64_t e) const;
  size_t batches_per_epoch(uint64_t e) const;

  StageTimes times() const;
  /// Samples dropped under on_error = "skip", by reason.
  SkipReport skipped() const;
  const stages::CategoryMap& categories() const noexcept;
  const stages::Sampler& sampler() const noexcept;
  const PipelineConfig& config() const noexcept;

  /// The dataset the sampler draws from and the targets' image ids refer
  /// to: the views dataset when slicing, else the dataset given.
  const io::CocoDataset& dataset() const noexcept;
  /// The dataset given to the constructor (the source of the views).
  const io::CocoDataset& source() const noexcept;
  /// The views (dataset().images[i] is views()->views[i]), or null when
  /// the loader does not slice.
  const std::shared_ptr<const slice::SlicedDataset>& views() const noexcept;
  /// Counters of the one TIFF tile cache the loader's workers share (hits,
  /// misses, bytes held, peak, hit_rate()); zeros when nothing was read
  /// through it.
  raster::TileCache::Stats tile_cache() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

class Loader::Iterator {
 public:
  using value_type = stages::Batch;
  Iterator() = default;
  explicit Iterator(Loader* loader) : loader_(loader) { advance(); }
  stages::Batch& operator*() { return *current_; }
  stages::Batch* operator->() { return &*current_; }
  Iterator& operator++() {
    advance();
    return *this;
  }
  bool operator!=(const Iterator& other) const { return done() != other.done(); }
  bool operator==(const Iterator& other) const { return done() == other.done(); }

 private:
  bool done() const { return loader_ == nullptr || !current_.has_value(); }
  void advance() { current_ = loader_->next_batch(); }
  Loader* loader_ = nullptr;
  std::optional<stages::Batch> current_;
};

/// Per-image facts the sampler needs (size classes present, categories),
/// computed with the size classifier; crowd annotations are ignored.
std::vector<stages::ImageInfo> image_infos(const io::CocoDataset& dataset, const stages::SizeClassConfig& size);

}  // namespace pasteflow::pipeline
