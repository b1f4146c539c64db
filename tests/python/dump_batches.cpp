// The C++ side of tests/python/test_loader.py's bit-for-bit check: runs
// pipeline::Loader (the C++ consumer) and writes the first N batches' tensors
// as raw bytes plus a manifest, which the test compares with what
// pasteflow.Loader hands to Python for the same config.
//
//   dump_batches CONFIG ANNOTATIONS IMAGES OUT_DIR N [key=value ...]
#include <ATen/ATen.h>

#include <cstdio>
#include <exception>
#include <fstream>
#include <string>
#include <vector>

#include "pasteflow/core/json_writer.hpp"
#include "pasteflow/io/coco.hpp"
#include "pasteflow/pipeline/config.hpp"
#include "pasteflow/pipeline/loader.hpp"

namespace {

void write_tensor(const std::string& dir, const std::string& name, const at::Tensor& t, pasteflow::JsonWriter& w) {
  const at::Tensor c = t.contiguous().cpu();
  std::ofstream out(dir + "/" + name + ".bin", std::ios::binary);
  out.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.nbytes()));
  if (!out) throw std::runtime_error("cannot write " + dir + "/" + name + ".bin");
  w.key(name).begin_object();
  w.key("shape").begin_array();
  for (int64_t d : c.sizes()) w.value(d);
  w.end_array();
  w.field("dtype", std::string(c.dtype().name()));
  w.end_object();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: dump_batches CONFIG ANNOTATIONS IMAGES OUT_DIR N [key=value ...]\n");
    return 2;
  }
  try {
    std::vector<std::string> overrides(argv + 6, argv + argc);
    const pasteflow::pipeline::PipelineConfig config = pasteflow::pipeline::load_pipeline_config(argv[1], overrides);
    pasteflow::io::LoadOptions load;
    load.image_root = argv[3];
    const pasteflow::io::CocoDataset ds = pasteflow::io::load_coco(argv[2], load);
    pasteflow::pipeline::Loader loader(ds, config);
    const std::string dir = argv[4];
    const int n = std::stoi(argv[5]);
    pasteflow::JsonWriter w(0);
    w.begin_object();
    for (int b = 0; b < n; ++b) {
      std::optional<pasteflow::stages::Batch> batch = loader.next_batch();
      if (!batch) break;
      const std::string p = "b" + std::to_string(b);
      if (batch->images.defined()) write_tensor(dir, p + "_images", batch->images, w);
      for (size_t i = 0; i < batch->image_list.size(); ++i) {
        write_tensor(dir, p + "_image" + std::to_string(i), batch->image_list[i], w);
      }
      for (size_t i = 0; i < batch->targets.size(); ++i) {
        const pasteflow::stages::Target& t = batch->targets[i];
        const std::string q = p + "_t" + std::to_string(i) + "_";
        write_tensor(dir, q + "boxes", t.boxes, w);
        write_tensor(dir, q + "labels", t.labels, w);
        if (t.masks.defined()) write_tensor(dir, q + "masks", t.masks, w);
        write_tensor(dir, q + "area", t.area, w);
        write_tensor(dir, q + "annotation_ids", t.annotation_ids, w);
        w.field(q + "image_id", t.image_id);
      }
    }
    w.end_object();
    std::ofstream(dir + "/manifest.json") << w.str();
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dump_batches: %s\n", e.what());
    return 1;
  }
}
