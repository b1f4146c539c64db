// YAML config loader (config::parse_config_string). Input: YAML text; bytes
// after the first \x01 are `a.b=value` overrides separated by \x01. The root
// is the pipeline's config without its LibTorch sections (batch, loader),
// i.e. the real stage configs with their enums, ranges and lists, the huge
// image sections (raster.*, slice.*) included. A config
// that loads must dump to YAML that loads back equal.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "pasteflow/config/config.hpp"
#include "pasteflow/core/error.hpp"
#include "pasteflow/raster/tiff.hpp"
#include "pasteflow/slice/slice.hpp"
#include "pasteflow/stages/decode.hpp"
#include "pasteflow/stages/instances.hpp"
#include "pasteflow/stages/paste.hpp"
#include "pasteflow/stages/sampler.hpp"
#include "pasteflow/stages/size_class.hpp"

using namespace pasteflow;

namespace {

// pipeline::PipelineConfig minus batch and loader (same keys and docs).
struct FuzzRoot {
  uint64_t seed = 0;
  stages::SamplerConfig sampler;
  stages::DecodeConfig decode;
  raster::RasterConfig raster;
  slice::SliceConfig slice;
  stages::SizeClassConfig size;
  stages::InstancesConfig instances;
  stages::PasteConfig augment;

  template <class Describer>
  static void describe(Describer& d) {
    d.field("seed", &FuzzRoot::seed, "the one random seed");
    d.field("sampler", &FuzzRoot::sampler, "which images an epoch visits");
    d.field("decode", &FuzzRoot::decode, "image decoding");
    d.field("raster", &FuzzRoot::raster, "TIFF read by windows: the shared tile cache, samples to 8 bit, alpha");
    d.field("slice", &FuzzRoot::slice, "huge images cut into views (SAHI grid); above 0 = off");
    d.field("size", &FuzzRoot::size, "COCO size classes");
    d.field("instances", &FuzzRoot::instances, "annotations -> instances");
    d.field("augment", &FuzzRoot::augment, "copy-paste augmentation");
  }
};

// `_base_` entries resolve against this name's directory, which does not
// exist: the fuzzer cannot make the loader read files beside it.
const std::string kName = "/nonexistent-pasteflow-fuzz/fuzz.yaml";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t split = input.find('\x01');
  const std::string_view yaml = input.substr(0, split);
  std::vector<std::string> overrides;
  if (split != std::string_view::npos) {
    std::string_view rest = input.substr(split + 1);
    while (true) {
      const size_t next = rest.find('\x01');
      overrides.emplace_back(rest.substr(0, next));
      if (next == std::string_view::npos) break;
      rest = rest.substr(next + 1);
    }
  }
  FuzzRoot cfg;
  try {
    cfg = config::parse_config_string<FuzzRoot>(yaml, kName, overrides);
  } catch (const ConfigError&) {
    return 0;
  }
  const std::string dumped = config::dump_config(cfg);
  const FuzzRoot back = config::parse_config_string<FuzzRoot>(dumped, kName);
  if (!config::config_diff(cfg, back).empty()) std::abort();
  return 0;
}
