// glibc malloc thresholds for processes that run the loader. Process-wide:
// the program decides to call it (the CLI's pipeline commands, the Python
// module), never the library by itself.
#pragma once

namespace pasteflow::pipeline {

/// Process-wide allocator policy for the programs that run the pipeline
/// (the CLI's augment, preview, bench pipeline / soak / slices; the Python
/// module when it makes its first Loader; call once, first):
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

}  // namespace pasteflow::pipeline
