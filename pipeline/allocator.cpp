#include "pasteflow/pipeline/allocator.hpp"

#include <malloc.h>

#include <cstdlib>
#include <cstring>

namespace pasteflow::pipeline {

void tune_allocator_for_pipeline() {
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (tunables != nullptr && std::strstr(tunables, "glibc.malloc.") != nullptr) return;
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") != nullptr || std::getenv("MALLOC_TRIM_THRESHOLD_") != nullptr) return;
  mallopt(M_MMAP_THRESHOLD, kAllocatorMmapThreshold);
  mallopt(M_TRIM_THRESHOLD, kAllocatorTrimThreshold);
}

}  // namespace pasteflow::pipeline
