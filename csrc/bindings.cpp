// The only translation unit that sees Python: it exposes the plain C++ code under csrc/core/
// as the extension module segzero_edge._native.
#include <pybind11/pybind11.h>

#ifndef SEGZERO_EDGE_VERSION
#define SEGZERO_EDGE_VERSION "unknown"
#endif

namespace py = pybind11;

PYBIND11_MODULE(_native, m) {
  m.doc() = "segzero-edge native extension (answer decoding and the answer constraint)";
  m.attr("__version__") = SEGZERO_EDGE_VERSION;
  m.def("abi_version", []() { return 1; }, "Version of the native interface; bumped when bindings change.");
}
