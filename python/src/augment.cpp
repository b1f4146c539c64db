// pasteflow.augment (one sample through the instance and copy-paste stages,
// the loader's own function objects) and pasteflow.stats (the paper's
// Table 2). python/pasteflow/augment.py converts images and annotations.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <opencv2/core.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "pasteflow/core/error.hpp"
#include "pasteflow/core/json_writer.hpp"
#include "pasteflow/io/coco.hpp"
#include "pasteflow/mask/rle.hpp"
#include "pasteflow/pipeline/config.hpp"
#include "pasteflow/stages/instances.hpp"
#include "pasteflow/stages/paste.hpp"
#include "pasteflow/stats/table2.hpp"

namespace py = pybind11;

namespace pasteflow::python {

namespace {

int cv_type(const py::dtype& dtype, int channels) {
  if (dtype.is(py::dtype::of<uint8_t>())) return CV_MAKETYPE(CV_8U, channels);
  if (dtype.is(py::dtype::of<uint16_t>())) return CV_MAKETYPE(CV_16U, channels);
  throw InputError("bad_image", "augment takes uint8 or uint16 pixels, not " + py::cast<std::string>(py::str(static_cast<const py::handle&>(dtype))));
}

std::string instances_json(const std::vector<stages::Instance>& instances, int64_t image_id) {
  JsonWriter w(0);
  w.begin_array();
  for (const stages::Instance& inst : instances) {
    w.begin_object();
    w.field("id", inst.id);
    w.field("image_id", image_id);
    w.field("category_id", inst.category_id);
    w.field("iscrowd", static_cast<int64_t>(inst.iscrowd));
    w.key("bbox").begin_array();
    for (double v : inst.bbox) w.value(v);
    w.end_array();
    w.field("area", inst.area);
    if (inst.has_mask) {
      w.key("segmentation").begin_object();
      w.key("size").begin_array().value(static_cast<int64_t>(inst.mask.h)).value(static_cast<int64_t>(inst.mask.w));
      w.end_array();
      w.field("counts", mask::to_string(inst.mask));
      w.end_object();
    }
    w.field("pasted", inst.pasted);
    if (inst.pasted) w.field("source_id", inst.source_id);
    w.end_object();
  }
  w.end_array();
  return w.str();
}

/// `image` (H x W or H x W x C, C-contiguous uint8/uint16) and the COCO
/// document of its one image: returns the augmented pixels (a new array),
/// the instances as a JSON array and the paste counters.
py::tuple augment_one(const py::array& image, const std::string& coco_json, const std::string& config_path,
                      const std::vector<std::string>& overrides, uint64_t epoch, uint64_t sample_id, int64_t id_base) {
  if (image.ndim() != 2 && image.ndim() != 3) {
    throw InputError("bad_image", "augment takes an H x W or H x W x C array, not " + std::to_string(image.ndim()) +
                                      " dimensions");
  }
  const int channels = image.ndim() == 3 ? static_cast<int>(image.shape(2)) : 1;
  if (channels != 1 && channels != 3) {
    throw InputError("bad_image", "augment takes 1 or 3 channels (RGB), not " + std::to_string(channels));
  }
  if (!(image.flags() & py::array::c_style)) throw InputError("bad_image", "the image array must be C-contiguous");
  const int type = cv_type(image.dtype(), channels);
  const int rows = static_cast<int>(image.shape(0));
  const int cols = static_cast<int>(image.shape(1));
  if (rows <= 0 || cols <= 0) throw InputError("bad_image", "the image is empty");

  pipeline::PipelineConfig config = load_pipeline_section(config_path, overrides);
  config.derive();
  const io::CocoDataset ds = io::parse_coco(coco_json, "<annotations>");
  if (ds.images.size() != 1) throw InputError("bad_annotations", "augment takes the annotations of one image");
  // Pasted copies get ids above id_base, as the loader numbers them above
  // its dataset's largest id (default: the largest id given here).
  int64_t max_id = 0;
  for (const auto& a : ds.annotations) max_id = std::max(max_id, a.id);
  config.augment.composite.id_base = std::max({config.augment.composite.id_base, max_id, id_base});

  stages::Sample sample;
  sample.epoch = epoch;
  sample.seq = sample_id;
  sample.image_index = 0;
  sample.augment = true;
  // The array's memory, copied once: the stages write into the sample's pixels.
  sample.image = cv::Mat(rows, cols, type, const_cast<void*>(image.data())).clone();
  {
    py::gil_scoped_release release;
    stages::InstanceBuilder(ds, config.size, config.instances)(sample);
    stages::Paster(config.augment)(sample);
  }
  std::vector<py::ssize_t> shape{rows, cols};
  if (image.ndim() == 3) shape.push_back(channels);
  py::array out(image.dtype(), shape);
  const size_t row_bytes = static_cast<size_t>(cols) * sample.image.elemSize();
  auto* dst = static_cast<uint8_t*>(out.mutable_data());
  for (int y = 0; y < rows; ++y) std::memcpy(dst + static_cast<size_t>(y) * row_bytes, sample.image.ptr(y), row_bytes);
  py::dict counters;
  counters["requested"] = sample.paste.requested;
  counters["placed"] = sample.paste.placed;
  counters["failed"] = sample.paste.failed;
  counters["tries"] = sample.paste.tries;
  counters["dropped_occluded"] = sample.paste.dropped_occluded;
  return py::make_tuple(out, instances_json(sample.instances, sample.image_id), counters);
}

/// Table 2 of a COCO file (path) or document (JSON text) as JSON text.
std::string table2(const std::string& path, const std::string& json, const std::string& on_error) {
  io::LoadOptions load;
  load.policy = parse_error_policy(on_error);
  stats::Table2Options options;
  options.policy = load.policy;
  std::string out;
  py::gil_scoped_release release;
  const io::CocoDataset ds = path.empty() ? io::parse_coco(json, "<annotations>", load) : io::load_coco(path, load);
  stats::Table2 t = stats::compute_table2(ds, options);
  t.skipped.merge(ds.skipped);
  return stats::table2_to_json(t, options, /*details=*/false, /*indent=*/0);
}

}  // namespace

void bind_augment(py::module_& m) {
  m.def("augment", &augment_one, py::arg("image"), py::arg("coco_json"), py::arg("config"), py::arg("overrides"),
        py::arg("epoch"), py::arg("sample_id"), py::arg("id_base"));
  m.def("table2", &table2, py::arg("path"), py::arg("json"), py::arg("on_error"));
}

}  // namespace pasteflow::python
