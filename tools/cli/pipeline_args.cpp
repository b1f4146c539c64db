#include "pipeline_args.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "pasteflow/train/config.hpp"

namespace pasteflow::cli {

void add_pipeline_options(CLI::App* cmd, PipelineArgs& args) {
  cmd->add_option("--config,-c", args.config, "pipeline config (YAML; see configs/ and docs/config.md)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--annotations,-a", args.annotations, "COCO instances JSON file")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--images,-i", args.images, "directory the images' file names are relative to")
      ->required()
      ->check(CLI::ExistingDirectory);
  args.threads_opt = cmd->add_option("--threads", args.run.threads,
                                     "worker threads (0 = all cores); overrides loader.threads")
                         ->check(CLI::Range(0, 1024));
  args.seed_opt = cmd->add_option("--seed", args.run.seed, "random seed; overrides the config's seed");
  cmd->add_option("overrides", args.overrides, "config overrides key=value (e.g. augment.copies=3)");
}

pipeline::PipelineConfig load_pipeline_args(const PipelineArgs& args) {
  std::vector<std::string> overrides = args.overrides;
  if (args.seed_opt != nullptr && args.seed_opt->count() > 0) overrides.push_back("seed=" + std::to_string(args.run.seed));
  if (args.threads_opt != nullptr && args.threads_opt->count() > 0) {
    overrides.push_back("loader.threads=" + std::to_string(args.run.threads));
  }
  try {
    return pipeline::load_pipeline_config(args.config, overrides);
  } catch (const ConfigError& e) {
    // A training config (configs/demo.yaml, configs/train/...): its
    // `pipeline` section, with the overrides taken relative to it.
    static const char* const kTrainingRoots[] = {"pipeline", "data", "model", "solver", "checkpoint", "eval",
                                                  "output_dir"};
    const std::string& key = e.where().key;
    const std::string root = key.substr(0, key.find('.'));
    if (e.reason() != "unknown_key" ||
        std::none_of(std::begin(kTrainingRoots), std::end(kTrainingRoots), [&](const char* r) { return root == r; })) {
      throw;
    }
    for (std::string& o : overrides) o = "pipeline." + o;
    train::TrainConfig train = train::load_train_config(args.config, overrides);
    return std::move(train.pipeline);
  }
}

io::CocoDataset load_dataset_args(const PipelineArgs& args, const pipeline::PipelineConfig& config) {
  io::LoadOptions load;
  load.policy = parse_error_policy(config.loader.on_error);
  load.keep_extra_fields = true;
  load.image_root = args.images;
  // The loader refuses image records decode would refuse; with slicing on,
  // huge images are read by windows, so their size is not limited here.
  load.max_pixels = pipeline::load_max_pixels(config);
  io::CocoDataset ds = io::load_coco(args.annotations, load);
  for (const auto& [reason, n] : ds.skipped.counts()) {
    spdlog::warn("skipped {} annotation record(s): {} (first: {})", n, reason, ds.skipped.first_messages().at(reason));
  }
  return ds;
}

}  // namespace pasteflow::cli
