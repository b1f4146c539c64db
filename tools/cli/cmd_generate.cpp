// pasteflow generate ...: synthetic data sets.
#include <string>

#include "cli.hpp"
#include "pasteflow/io/bench.hpp"

namespace pasteflow::cli {

void add_generate_command(CLI::App& app) {
  CLI::App* gen = app.add_subcommand("generate", "Generate synthetic data sets");
  gen->require_subcommand(1);

  auto opts = std::make_shared<io::SyntheticCocoOptions>();
  auto out = std::make_shared<std::string>();
  CLI::App* coco = gen->add_subcommand(
      "coco", "A COCO-scale synthetic instances file (default: 118,287 images, 860,001 annotations, polygons of "
              "8-40 vertices, about 490 MB) with the real file's field layout, for the parse benchmark");
  coco->add_option("out", *out, "output JSON file")->required();
  coco->add_option("--images", opts->images, "number of images")->capture_default_str();
  coco->add_option("--annotations", opts->annotations, "number of annotations")->capture_default_str();
  coco->add_option("--min-vertices", opts->min_vertices, "fewest polygon vertices")->capture_default_str();
  coco->add_option("--max-vertices", opts->max_vertices, "most polygon vertices")->capture_default_str();
  coco->add_option("--seed", opts->seed, "random seed (same seed, same file)")->capture_default_str();
  coco->add_option("--threads", [](const std::vector<std::string>&) { return true; },
                   "accepted for uniformity; generation is a single sequential stream");
  coco->callback([opts, out] {
    io::generate_synthetic_coco(*out, *opts);
    spdlog::info("wrote {}", *out);
  });
}

}  // namespace pasteflow::cli
