// Options shared by the subcommands that run the pipeline (augment, preview,
// bench pipeline): a config file, the dataset, and key=value overrides.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "cli.hpp"
#include "pasteflow/io/coco.hpp"
#include "pasteflow/pipeline/allocator.hpp"
#include "pasteflow/pipeline/config.hpp"

namespace pasteflow::cli {

struct PipelineArgs {
  std::string config;
  std::string annotations;
  std::string images;
  std::vector<std::string> overrides;  ///< key=value, applied after the file
  RunOptions run;
  CLI::Option* threads_opt = nullptr;
  CLI::Option* seed_opt = nullptr;
};

/// Adds --config, --annotations, --images, --threads, --seed and the
/// positional key=value overrides.
void add_pipeline_options(CLI::App* cmd, PipelineArgs& args);

/// The config with the overrides, then --seed / --threads when given (they
/// win over the file and the overrides). A training config (root keys data,
/// pipeline, model, ...) gives its `pipeline` section; the overrides are
/// then relative to that section (augment.copies=3, not pipeline.augment...).
pipeline::PipelineConfig load_pipeline_args(const PipelineArgs& args);

/// The annotations with extras kept, images resolved against --images, and
/// loader.on_error as the record policy; image records above
/// decode.max_pixels refused unless the pipeline slices
/// (pipeline::load_max_pixels); logs what was skipped.
io::CocoDataset load_dataset_args(const PipelineArgs& args, const pipeline::PipelineConfig& config);

/// The pipeline commands' process-wide allocator policy (call once, first):
/// pipeline/allocator.hpp.
using pipeline::tune_allocator_for_pipeline;

}  // namespace pasteflow::cli
