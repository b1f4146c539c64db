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

/// Process-wide allocator policy for the commands that run the pipeline
/// (augment, preview, bench pipeline / soak / slices; call once, first):
/// blocks above 32 MiB are mmap'ed, the heap is trimmed when more than
/// 512 MiB is free at its top. glibc's dynamic mmap threshold and heap
/// trimming hand the loader's per-image buffers (decoded pixels, masks,
/// TIFF tiles and windows: 0.25-10 MB each) back to the kernel and fault
/// them in again for every image: measured with `bench pipeline` on
/// coco_mini at 1 thread, 1.7 M minor page faults and a third of the CPU
/// time in the kernel (33 -> 21 CPU ms per image with these thresholds); a
/// 4 MiB threshold still cost 14 -> 18.5 CPU ms per image, a 128 KiB one
/// made the TIFF window reader 3x slower. The largest buffers, the batch
/// tensors, are reused by the loader itself (its pool), so the resident
/// size no longer depends on this choice (455-464 MB peak on cog_world.tif
/// at 128 KiB, 4 MiB and 32 MiB). GLIBC_TUNABLES glibc.malloc.* or
/// MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ set by the user win.
inline constexpr int kAllocatorMmapThreshold = 32 << 20;
inline constexpr int kAllocatorTrimThreshold = 512 << 20;
void tune_allocator_for_pipeline();

}  // namespace pasteflow::cli
