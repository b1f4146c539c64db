// The whole pipeline's configuration: one struct per stage, gathered here.
#pragma once

#include <cstdint>
#include <string>

#include "pasteflow/stages/batch.hpp"
#include "pasteflow/stages/decode.hpp"
#include "pasteflow/stages/instances.hpp"
#include "pasteflow/stages/paste.hpp"
#include "pasteflow/stages/sampler.hpp"
#include "pasteflow/stages/size_class.hpp"

namespace pasteflow::pipeline {

/// How the flow graph runs: threads, bounds, error policy.
struct LoaderConfig {
  int threads = 0;      ///< worker threads of the graph's task arena (0 = all cores)
  int batch_size = 2;   ///< images per batch
  int prefetch = 4;     ///< batches ready or in preparation at most
  int inflight = 8;     ///< samples inside the graph (decoded, not yet batched) at most
  int decode_concurrency = 0;   ///< parallel decode bodies (0 = unlimited)
  int augment_concurrency = 0;  ///< parallel paste bodies (0 = unlimited)
  int prepare_concurrency = 0;  ///< parallel resize/normalise bodies (0 = unlimited)
  std::string on_error = "strict";  ///< "strict": the consumer gets the error; "skip": drop and count
  bool drop_last = false;  ///< drop an epoch's last incomplete batch
  uint64_t max_epochs = 0;  ///< 0 = the stream never ends

  void validate() const;
};

struct PipelineConfig {
  uint64_t seed = 0;  ///< the one seed: sampler, paste and batch streams derive from it
  stages::SamplerConfig sampler;
  stages::DecodeConfig decode;
  stages::SizeClassConfig size;
  stages::InstancesConfig instances;
  stages::PasteConfig augment;
  stages::BatchConfig batch;
  LoaderConfig loader;

  /// Copies `seed` into the stage configs that draw random numbers.
  void propagate_seed();
};

}  // namespace pasteflow::pipeline
