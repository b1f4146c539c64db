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
};

/// What the loader delivers: batches (training) or single augmented samples
/// (export, preview).
enum class Output { kBatches, kSamples };

/// Which tickets an epoch has; by default the Sampler's epoch(e).
using TicketSource = std::function<std::vector<stages::SampleTicket>(uint64_t epoch)>;

class Loader {
 public:
  /// `dataset` must outlive the loader. Validates the config (ConfigError).
  Loader(const io::CocoDataset& dataset, PipelineConfig config, Output output = Output::kBatches,
         TicketSource tickets = {});
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
