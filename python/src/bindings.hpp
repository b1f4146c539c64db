// The parts of the _pasteflow extension, one function per source file;
// module.cpp calls them in order.
#pragma once

#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "pasteflow/pipeline/config.hpp"

namespace pasteflow::python {

void bind_errors(pybind11::module_& m);   // module.cpp: pasteflow's exceptions as Python ones
void bind_mask(pybind11::module_& m);     // mask.cpp: the RLE codec (pycocotools.mask's API)
void bind_eval(pybind11::module_& m);     // eval.cpp: COCO evaluation
void bind_loader(pybind11::module_& m);   // loader.cpp: the prefetching loader
void bind_augment(pybind11::module_& m);  // augment.cpp: one sample through the stages; Table 2 statistics

/// The pipeline config of `path` with `overrides`: a pipeline config, or a
/// training config's `pipeline` section (overrides relative to it unless
/// they start with one of its root keys); "" = the defaults. Validated.
/// loader.cpp; the Loader and augment() read configs through it.
pipeline::PipelineConfig load_pipeline_section(const std::string& path, const std::vector<std::string>& overrides);

}  // namespace pasteflow::python
