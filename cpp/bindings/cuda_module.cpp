// Binding of the GPU path (alip._core.cuda). Compiled in every build: with ALIP_CUDA=ON
// the functions reach cuda/*.cu, otherwise cuda/stub.cpp, which raises RuntimeError
// ("alip was built without CUDA ...").
//
// No torch headers: arrays arrive as raw device pointers (torch.Tensor.data_ptr()) and
// the stream as an integer (torch.cuda.current_stream().cuda_stream). alip.device checks
// dtype, shape, contiguity and device before calling; the C++ side checks again that
// every pointer is GPU memory on one device, so a host pointer never reaches a kernel.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <string>

#include "acsf.hpp"
#include "acsf_cuda.hpp"

namespace py = pybind11;
using namespace alip;

namespace {

template <class T>
T* as_ptr(uintptr_t p) {
    return reinterpret_cast<T*>(p);
}

void* as_stream(uintptr_t s) { return reinterpret_cast<void*>(s); }

cuda::Dtype parse_dtype(const std::string& name) {
    if (name == "float64") return cuda::Dtype::Float64;
    if (name == "float32") return cuda::Dtype::Float32;
    throw InvalidInput("dtype must be 'float32' or 'float64', got '" + name + "'");
}

}  // namespace

void register_cuda(py::module_& m) {
    py::module_ c = m.def_submodule(
        "cuda", "GPU kernels: neighbor list, ACSF values, fused VJP (forces, virial) and JVP. Device pointers as int.");
    c.def("compiled", &cuda::compiled, "True when alip was built with ALIP_CUDA=ON");
    c.def("device_count", &cuda::device_count, "CUDA devices visible to alip's runtime (0 without CUDA or GPU)");
    c.def("describe", &cuda::describe, "CUDA runtime/driver versions and compiled architectures");

    using NL = cuda::NeighborList;
    py::class_<NL, std::shared_ptr<NL>>(c, "NeighborList")
        .def_property_readonly("device", &NL::device)
        .def_property_readonly("n_atoms", &NL::n_atoms)
        .def_property_readonly("n_structures", &NL::n_structures)
        .def_property_readonly("n_pairs", &NL::n_pairs)
        .def_property_readonly("n_species", &NL::n_species)
        .def_property_readonly("cutoff", &NL::cutoff)
        .def(
            "copy_pairs",
            [](const NL& self, uintptr_t i, uintptr_t j, uintptr_t shift, uintptr_t vector, uintptr_t distance,
               uintptr_t stream) {
                py::gil_scoped_release release;
                self.copy_pairs(as_ptr<int64_t>(i), as_ptr<int64_t>(j), as_ptr<int64_t>(shift), as_ptr<double>(vector),
                                as_ptr<double>(distance), as_stream(stream));
            },
            py::arg("i"), py::arg("j"), py::arg("shift"), py::arg("vector"), py::arg("distance"), py::arg("stream"),
            "Writes i, j (int64), shift (int64, (n_pairs, 3)), vector (float64, (n_pairs, 3)), distance (float64); "
            "0 skips an array");

    c.def(
        "build_neighbor_list",
        [](uintptr_t positions, uintptr_t species, uintptr_t offsets, uintptr_t cells, uintptr_t pbc,
           int64_t n_structures, int64_t n_atoms, double cutoff, int32_t n_species, uintptr_t stream) {
            cuda::DeviceBatch b;
            b.positions = as_ptr<const double>(positions);
            b.species = as_ptr<const int32_t>(species);
            b.offsets = as_ptr<const int64_t>(offsets);
            b.cells = as_ptr<const double>(cells);
            b.pbc = as_ptr<const uint8_t>(pbc);
            b.n_structures = n_structures;
            b.n_atoms = n_atoms;
            std::unique_ptr<NL> nl;
            {
                py::gil_scoped_release release;
                nl = cuda::build_neighbor_list(b, cutoff, n_species, as_stream(stream));
            }
            return std::shared_ptr<NL>(std::move(nl));
        },
        py::arg("positions"), py::arg("species"), py::arg("offsets"), py::arg("cells"), py::arg("pbc"),
        py::arg("n_structures"), py::arg("n_atoms"), py::arg("cutoff"), py::arg("n_species"), py::arg("stream"),
        "Neighbor list of a batch on the GPU: positions float64 (N, 3), species int32 (N,), offsets int64 (S + 1,), "
        "cells float64 (S, 3, 3), pbc uint8 (S, 3)");

    using AK = cuda::AcsfKernels;
    py::class_<AK, std::shared_ptr<AK>>(c, "AcsfKernels")
        .def(py::init([](const Acsf& acsf, int device) {
                 const AcsfSpec spec = acsf.spec();
                 py::gil_scoped_release release;  // uploads the tables and synchronizes
                 return std::make_shared<AK>(spec, device);
             }),
             py::arg("acsf"), py::arg("device") = -1)
        .def_property_readonly("device", &AK::device)
        .def_property_readonly("n_features", &AK::n_features)
        .def(
            "values",
            [](const AK& self, const NL& nl, const std::string& dtype, uintptr_t out, uintptr_t stream) {
                const cuda::Dtype dt = parse_dtype(dtype);
                py::gil_scoped_release release;
                self.values(nl, dt, as_ptr<void>(out), as_stream(stream));
            },
            py::arg("neighbors"), py::arg("dtype"), py::arg("out"), py::arg("stream"), "values (N, F) into out")
        .def(
            "forces_virial",
            [](const AK& self, const NL& nl, const std::string& dtype, uintptr_t dE_dG, uintptr_t forces,
               uintptr_t virials, uintptr_t stream) {
                const cuda::Dtype dt = parse_dtype(dtype);
                py::gil_scoped_release release;
                self.forces_virial(nl, dt, as_ptr<const void>(dE_dG), as_ptr<void>(forces), as_ptr<void>(virials),
                                   as_stream(stream));
            },
            py::arg("neighbors"), py::arg("dtype"), py::arg("dE_dG"), py::arg("forces"), py::arg("virials"),
            py::arg("stream"), "forces (N, 3) and virials (S, 3, 3) from dE/dG (N, F), no Jacobian stored")
        .def(
            "jvp",
            [](const AK& self, const NL& nl, const std::string& dtype, uintptr_t displacement, uintptr_t strain,
               uintptr_t out, uintptr_t stream) {
                const cuda::Dtype dt = parse_dtype(dtype);
                py::gil_scoped_release release;
                self.jvp(nl, dt, as_ptr<const void>(displacement), as_ptr<const void>(strain), as_ptr<void>(out),
                         as_stream(stream));
            },
            py::arg("neighbors"), py::arg("dtype"), py::arg("displacement"), py::arg("strain"), py::arg("out"),
            py::arg("stream"),
            "out (N, F) = J_r displacement + J_eps strain (0 for an absent input); the adjoint of forces_virial");
}
