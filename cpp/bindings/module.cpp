#include <pybind11/pybind11.h>
namespace py = pybind11;
PYBIND11_MODULE(_core, m) {
    m.def("build_info", []() { py::dict d; d["version"] = ALIP_VERSION; return d; });
}
