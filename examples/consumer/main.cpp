// Uses an installed pasteflow: loads a COCO file (pasteflow::io), runs a few
// batches of the prefetching loader (pasteflow::pipeline) with copy-paste
// augmentation and prints what it got:
//
//   pasteflow_consumer <annotations.json> <image_root> [batches]
// e.g. on the repository's tests/data/paste (2 images):
//   dataset images=2 annotations=51
//   batches=2 images=4 instances=134 first_batch=[2, 3, 384, 256]
#include <cstdint>
#include <exception>
#include <iostream>
#include <optional>
#include <string>

#include "pasteflow/io/coco.hpp"
#include "pasteflow/pipeline/config.hpp"
#include "pasteflow/pipeline/loader.hpp"

int main(int argc, char** argv) {
  if (argc < 3 || argc > 4) {
    std::cerr << "usage: " << argv[0] << " <annotations.json> <image_root> [batches (default 3)]\n";
    return 2;
  }
  try {
    namespace pf = pasteflow;
    const int max_batches = argc > 3 ? std::stoi(argv[3]) : 3;

    pf::io::LoadOptions options;
    options.image_root = argv[2];
    const pf::io::CocoDataset dataset = pf::io::load_coco(argv[1], options);
    std::cout << "dataset images=" << dataset.images.size() << " annotations=" << dataset.annotations.size() << "\n";

    pf::pipeline::PipelineConfig config;
    config.seed = 1;
    config.sampler.aug_mode = "original_aug";  // each image once as is, once augmented
    config.augment.strategy = "all";           // paste every small object ...
    config.augment.copies = 2;                 // ... twice
    config.batch.min_size = 256;
    config.batch.max_size = 400;
    config.loader.threads = 2;
    config.loader.batch_size = 2;
    config.loader.prefetch = 2;

    pf::pipeline::Loader loader(dataset, config);
    int batches = 0;
    int64_t images = 0, instances = 0;
    std::string first_shape;
    while (batches < max_batches) {
      std::optional<pf::stages::Batch> batch = loader.next_batch();
      if (!batch) break;  // end of the epoch
      if (batches == 0) {
        first_shape = "[";
        for (int64_t d = 0; d < batch->images.dim(); ++d) {
          first_shape += (d ? ", " : "") + std::to_string(batch->images.size(d));
        }
        first_shape += "]";
      }
      ++batches;
      images += static_cast<int64_t>(batch->targets.size());
      for (const pf::stages::Target& t : batch->targets) instances += t.labels.size(0);
    }
    std::cout << "batches=" << batches << " images=" << images << " instances=" << instances
              << " first_batch=" << first_shape << "\n";
    return batches > 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
