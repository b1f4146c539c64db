// Options shared by the subcommands that run the pipeline (augment, preview,
// bench pipeline): a config file, the dataset, and key=value overrides.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "cli.hpp"
#include "pasteflow/io/coco.hpp"
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

/// Process-wide allocator policy, one for every command that runs the
/// pipeline or the model (augment, preview, predict, bench pipeline / soak /
/// slices; call once, first): blocks above 4 MiB are mmap'ed (and returned
/// to the kernel when freed), the heap is trimmed when more than 64 MiB is
/// free at its top. The big buffers are reused by the code itself (the
/// loader's pool of batch tensors, prepare's scratch image), so what the
/// allocator sees is: mid-sized blocks freed and allocated again all the
/// time (TIFF tiles of 0.25-1 MiB, decoded windows and images of 1-3 MiB),
/// which must stay in the heap (mmap'ed, each one's pages are faulted in
/// again: at 128 KiB the window reader ran 3x slower, the pipeline 2.4x),
/// and large transient ones (model activations, large masks) which must
/// go back to the kernel rather than fragment the heap (glibc's dynamic
/// threshold climbs to 32 MiB and let sliced prediction grow to 1 GB).
/// GLIBC_TUNABLES glibc.malloc.* or MALLOC_MMAP_THRESHOLD_ /
/// MALLOC_TRIM_THRESHOLD_ set by the user win.
inline constexpr int kAllocatorMmapThreshold = 4 << 20;
inline constexpr int kAllocatorTrimThreshold = 64 << 20;
void tune_allocator_for_pipeline();

}  // namespace pasteflow::cli
