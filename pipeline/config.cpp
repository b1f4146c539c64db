// load_pipeline_config: the config layer's loader plus the stages' own checks.
#include "pasteflow/pipeline/config.hpp"

#include "pasteflow/config/config.hpp"
#include "pasteflow/stages/decode.hpp"

namespace pasteflow::pipeline {

void PipelineConfig::propagate_seed() {
  sampler.seed = seed;
  augment.seed = seed;
}

void PipelineConfig::derive() {
  propagate_seed();
  augment.composite.size_class = size;
}

namespace {

/// Runs `check`; a ConfigError without a key gets `key`.
template <typename F>
void with_key(const std::string& key, F check) {
  try {
    check();
  } catch (const ConfigError& e) {
    if (!e.where().key.empty()) throw;
    Location where = e.where();
    where.key = key;
    throw ConfigError(e.reason(), e.detail(), where);
  }
}

}  // namespace

void validate_pipeline_config(const PipelineConfig& config, const std::string& file) {
  try {
    PipelineConfig c = config;
    c.derive();
    c.loader.validate();
    with_key("size.small_max_area", [&] { c.size.validate(); });
    const stages::Sampler sampler(c.sampler, {});  // validates sampler.*
    (void)sampler;
    const stages::Decoder decoder(c.decode);        // validates decode.*
    (void)decoder;
    c.augment.validate();
    stages::validate(c.batch);
    raster::validate(c.raster);  // ConfigError key "raster.<field>"
    slice::validate(c.slice);    // ConfigError key "slice.<field>"
  } catch (const ConfigError& e) {
    if (file.empty() || !e.where().file.empty()) throw;
    Location where = e.where();
    where.file = file;
    throw ConfigError(e.reason(), e.detail(), where);
  }
}

int64_t load_max_pixels(const PipelineConfig& config) noexcept {
  return config.slice.above > 0 ? 0 : config.decode.max_pixels;
}

PipelineConfig load_pipeline_config(const std::string& path, const std::vector<std::string>& overrides) {
  PipelineConfig config = config::load_config<PipelineConfig>(path, overrides);
  validate_pipeline_config(config, path);
  return config;
}

}  // namespace pasteflow::pipeline
