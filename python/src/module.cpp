#include <pybind11/pybind11.h>

#include "bindings.hpp"
#include "pasteflow/core/error.hpp"

namespace py = pybind11;

namespace pasteflow::python {

void bind_errors(py::module_& m) {
  // pasteflow::Error and its kinds become Python exceptions whose message
  // is what() (reason, detail and location: file, JSON path, key).
  // Leaked on purpose: static py::objects would be destroyed by the exit
  // handlers, after the interpreter has finalised (a fatal error in 3.11).
  static auto& error = *new py::exception<Error>(m, "Error", PyExc_RuntimeError);
  static auto& config_error = *new py::exception<ConfigError>(m, "ConfigError", error.ptr());
  static auto& input_error = *new py::exception<InputError>(m, "InputError", error.ptr());
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const ConfigError& e) {
      config_error(e.what());
    } catch (const InputError& e) {
      input_error(e.what());
    } catch (const Error& e) {
      error(e.what());
    }
  });
}

}  // namespace pasteflow::python

PYBIND11_MODULE(_pasteflow, m) {
  m.doc() = "pasteflow's C++ core: loader, augmentation, COCO evaluation, RLE masks";
  m.attr("__version__") = PASTEFLOW_VERSION;
  pasteflow::python::bind_errors(m);
  pasteflow::python::bind_mask(m);
  pasteflow::python::bind_eval(m);
  pasteflow::python::bind_loader(m);
  pasteflow::python::bind_augment(m);
}
