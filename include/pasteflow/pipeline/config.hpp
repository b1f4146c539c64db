// The whole pipeline's configuration: one struct per stage, gathered here.
//
// Every user-settable key is described beside its field by a static
// describe(config::Describer<X>&) (config/describe.hpp), written as a
// template so that stage headers do not depend on the config layer;
// `pasteflow config --schema` prints them all (docs/config.md).
// Fields filled at run time are not keys: the stage seeds and
// augment.composite.size_class come from the root (PipelineConfig::derive),
// augment.composite.id_base from the dataset (the Loader sets it to the
// largest annotation id, so pasted ids never collide with the dataset's).
//
// Huge images (issue 11): `raster` configures the TIFF window reader (the
// one tile cache shared by every worker), `slice` cuts images above
// slice.above px into views (windows) that the sampler draws like images;
// slice.above 0 (the default) leaves every image whole, exactly as before.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "pasteflow/raster/tiff.hpp"
#include "pasteflow/slice/slice.hpp"
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

  /// Config keys under "loader.".
  template <class Describer>
  static void describe(Describer& d) {
    d.field("threads", &LoaderConfig::threads, "worker threads of the flow graph, the consumer included (0 = all cores)")
        .range(0, 1024);
    d.field("batch_size", &LoaderConfig::batch_size, "images per batch").range(1, 100000);
    d.field("prefetch", &LoaderConfig::prefetch, "batches ready or in preparation at most").range(1, 100000);
    d.field("inflight", &LoaderConfig::inflight, "samples inside the graph (decoded, not yet batched) at most")
        .range(1, 100000);
    d.field("decode_concurrency", &LoaderConfig::decode_concurrency, "parallel decode bodies (0 = unlimited)")
        .range(0, 1024);
    d.field("augment_concurrency", &LoaderConfig::augment_concurrency, "parallel copy-paste bodies (0 = unlimited)")
        .range(0, 1024);
    d.field("prepare_concurrency", &LoaderConfig::prepare_concurrency,
            "parallel resize/normalise bodies (0 = unlimited)")
        .range(0, 1024);
    d.field("on_error", &LoaderConfig::on_error,
            "a sample whose stage fails: strict stops with the error, skip drops it and counts it")
        .one_of({"strict", "skip"});
    d.field("drop_last", &LoaderConfig::drop_last, "drop an epoch's last incomplete batch");
    d.field("max_epochs", &LoaderConfig::max_epochs, "epochs delivered before the stream ends (0 = never ends)");
  }
};

/// The root of a pipeline config file (configs/base.yaml documents it).
struct PipelineConfig {
  uint64_t seed = 0;  ///< the one seed: sampler, paste and batch streams derive from it
  stages::SamplerConfig sampler;
  stages::DecodeConfig decode;
  pasteflow::raster::RasterConfig raster;  // qualified: the member names hide the namespaces
  pasteflow::slice::SliceConfig slice;
  stages::SizeClassConfig size;
  stages::InstancesConfig instances;
  stages::PasteConfig augment;
  stages::BatchConfig batch;
  LoaderConfig loader;

  /// Copies `seed` into the stage configs that draw random numbers.
  void propagate_seed();
  /// propagate_seed() and the other fields derived from the root: the
  /// pasted objects' size classes use the root `size` section.
  void derive();

  template <class Describer>
  static void describe(Describer& d) {
    d.field("seed", &PipelineConfig::seed,
            "the one random seed: sampling, pasting and batching streams derive from it (results never depend on "
            "threads)");
    d.field("sampler", &PipelineConfig::sampler, "which images an epoch visits: oversampling and augmentation setting");
    d.field("decode", &PipelineConfig::decode, "image decoding");
    d.field("raster", &PipelineConfig::raster,
            "TIFF read by windows (huge images): the shared tile cache, samples to 8 bit, alpha, window limit");
    d.field("slice", &PipelineConfig::slice,
            "huge images cut into views (SAHI grid) that the sampler draws as images; above 0 = off");
    d.field("size", &PipelineConfig::size, "COCO size classes (small / medium / large), paper Table 1");
    d.field("instances", &PipelineConfig::instances, "annotations -> instances");
    d.field("augment", &PipelineConfig::augment, "copy-paste augmentation (paper sec. 4-5)");
    d.field("batch", &PipelineConfig::batch, "resizing, normalisation and batching (torchvision Mask R-CNN)");
    d.field("loader", &PipelineConfig::loader, "the flow graph: threads, bounds, error policy");
  }
};

/// load_config<PipelineConfig>(path, overrides), then the stages' own
/// checks (rank < world_size, an odd blur kernel, 3 mean/std values, ...);
/// every ConfigError names the key and `path`.
PipelineConfig load_pipeline_config(const std::string& path, const std::vector<std::string>& overrides = {});

/// The stages' own checks of a loaded config (as load_pipeline_config,
/// raster.* and slice.* included);
/// `file` is put in the errors' Location.
void validate_pipeline_config(const PipelineConfig& config, const std::string& file = {});

/// The largest width * height an annotation file's image record may have
/// when the pipeline `config` reads it (io::LoadOptions::max_pixels):
/// decode.max_pixels, or 0 (no whole-image limit) when slicing is on
/// (slice.above > 0), since a huge image is then read by windows only. An
/// image that is not sliced is still refused at decode above
/// decode.max_pixels ("pixel_limit"), and every window above
/// raster.max_window_pixels.
int64_t load_max_pixels(const PipelineConfig& config) noexcept;

}  // namespace pasteflow::pipeline
