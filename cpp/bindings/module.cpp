// The pybind11 module alip._core (with cpp/bindings/cuda_module.cpp, which adds alip._core.cuda):
// converts NumPy arrays to views of the core, checks shapes, releases the GIL around the computation.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <sstream>
#include <string>

#include "acsf.hpp"
#include "batch.hpp"
#include "dispatch.hpp"
#include "include/alip/jacobian.hpp"
#include "include/alip/mlp.hpp"
#include "neighbors.hpp"
#include "parallel.hpp"

namespace py = pybind11;
using namespace alip;

void register_cuda(py::module_& m);  // cpp/bindings/cuda_module.cpp: alip._core.cuda

namespace {

template <class T>
using Array = py::array_t<T, py::array::c_style | py::array::forcecast>;

void check_shape(const py::array& a, std::initializer_list<py::ssize_t> shape, const char* name) {
    std::ostringstream expected;
    bool ok = a.ndim() == py::ssize_t(shape.size());
    size_t k = 0;
    expected << "(";
    for (py::ssize_t d : shape) {
        if (ok && d >= 0 && a.shape(k) != d) ok = false;
        expected << (d >= 0 ? std::to_string(d) : std::string("n")) << (k + 1 < shape.size() ? ", " : "");
        ++k;
    }
    expected << ")";
    if (!ok) {
        std::ostringstream msg;
        msg << name << " must have shape " << expected.str() << ", got (";
        for (py::ssize_t d = 0; d < a.ndim(); ++d) msg << a.shape(d) << (d + 1 < a.ndim() ? ", " : "");
        msg << ")";
        throw InvalidInput(msg.str());
    }
}

/// Owns the converted arrays of a batch for as long as the view is used.
struct BatchArrays {
    Array<double> positions, cells;
    Array<int32_t> species;
    Array<int64_t> offsets;
    Array<uint8_t> pbc;
    Batch view;

    BatchArrays(Array<double> positions_, Array<int32_t> species_, Array<int64_t> offsets_, Array<double> cells_,
                Array<uint8_t> pbc_)
        : positions(std::move(positions_)),
          cells(std::move(cells_)),
          species(std::move(species_)),
          offsets(std::move(offsets_)),
          pbc(std::move(pbc_)) {
        check_shape(offsets, {-1}, "offsets");
        const py::ssize_t n_structures = offsets.shape(0) - 1;
        if (n_structures < 1) throw InvalidInput("offsets must hold at least two entries");
        const int64_t n_atoms = offsets.data()[n_structures];
        check_shape(positions, {n_atoms, 3}, "positions");
        check_shape(species, {n_atoms}, "species");
        check_shape(cells, {n_structures, 3, 3}, "cells");
        check_shape(pbc, {n_structures, 3}, "pbc");
        view.positions = positions.data();
        view.species = species.data();
        view.offsets = offsets.data();
        view.cells = cells.data();
        view.pbc = pbc.data();
        view.n_structures = n_structures;
    }
};

CutoffFunction parse_cutoff_function(const std::string& name) {
    if (name == "cosine") return CutoffFunction::Cosine;
    if (name == "polynomial") return CutoffFunction::Polynomial;
    throw InvalidInput("unknown cutoff_function '" + name + "' (expected 'cosine' or 'polynomial')");
}

Acsf make_acsf(int32_t n_species, double cutoff, const std::string& cutoff_function, Array<double> g2, Array<double> g4,
               Array<double> g5) {
    check_shape(g2, {-1, 2}, "g2");
    check_shape(g4, {-1, 5}, "g4");  // eta, zeta, lambda, rs, rs2 (< 0: rs)
    check_shape(g5, {-1, 5}, "g5");
    AcsfSpec spec;
    spec.n_species = n_species;
    spec.cutoff = cutoff;
    spec.cutoff_function = parse_cutoff_function(cutoff_function);
    for (py::ssize_t k = 0; k < g2.shape(0); ++k) spec.g2.push_back({g2.at(k, 0), g2.at(k, 1)});
    for (py::ssize_t k = 0; k < g4.shape(0); ++k)
        spec.g4.push_back({g4.at(k, 0), g4.at(k, 1), g4.at(k, 2), g4.at(k, 3), g4.at(k, 4)});
    for (py::ssize_t k = 0; k < g5.shape(0); ++k)
        spec.g5.push_back({g5.at(k, 0), g5.at(k, 1), g5.at(k, 2), g5.at(k, 3), g5.at(k, 4)});
    return Acsf(std::move(spec));
}

py::tuple neighbor_list(Array<double> positions, Array<double> cell, Array<uint8_t> pbc, double cutoff) {
    check_shape(positions, {-1, 3}, "positions");
    check_shape(cell, {3, 3}, "cell");
    check_shape(pbc, {3}, "pbc");
    StructureView s;
    s.positions = positions.data();
    s.n_atoms = positions.shape(0);
    s.cell = cell.data();
    s.pbc = {pbc.data()[0] != 0, pbc.data()[1] != 0, pbc.data()[2] != 0};
    validate_cutoff(cutoff);
    validate_structure(s, 0);
    NeighborList nl;
    {
        py::gil_scoped_release release;
        nl = build_neighbor_list(s, cutoff, true);
    }
    const py::ssize_t n = nl.n_pairs();
    Array<int64_t> i(n), j(n), S({n, py::ssize_t(3)});
    Array<double> D({n, py::ssize_t(3)}), d(n);
    auto pi = i.mutable_data();
    for (int64_t a = 0; a < nl.n_atoms; ++a)
        for (int64_t p = nl.offsets[a]; p < nl.offsets[a + 1]; ++p) pi[p] = a;
    std::copy(nl.neighbor.begin(), nl.neighbor.end(), j.mutable_data());
    std::copy(nl.shift.begin(), nl.shift.end(), S.mutable_data());
    std::copy(nl.vector.begin(), nl.vector.end(), D.mutable_data());
    std::copy(nl.distance.begin(), nl.distance.end(), d.mutable_data());
    return py::make_tuple(i, j, S, D, d);
}

/// A borrowed array of exactly dtype T in C order: the stored Jacobian is never copied (it
/// can be GBs), so a wrong dtype or layout is an error, not a silent conversion.
template <class T>
const T* borrowed(const py::array& a, const char* name) {
    if (!a.dtype().is(py::dtype::of<T>()))
        throw InvalidInput(std::string(name) + " must be " + std::string(py::str(py::dtype::of<T>())) + ", got " +
                           std::string(py::str(a.dtype())));
    if (!(a.flags() & py::array::c_style)) throw InvalidInput(std::string(name) + " must be C-contiguous");
    return static_cast<const T*>(a.data());
}

/// jacobian_forces (vjp false: rhs = dE_dG (K, n, F) -> (K, n, 3), with strain also the
/// virials (K, S, 3, 3)) or its VJP (rhs = grad_forces (K, n, 3) [and grad_virials (K, S, 3, 3)]
/// -> (K, n, F)), in the dtype of rows. strain (n_all, 3, 3, F) is borrowed like rows.
template <class T>
py::object jacobian_contraction(const py::array& rows, const py::array& targets, Array<int64_t> atoms, Array<T> rhs,
                                bool vjp, const py::object& strain_rows, const py::object& structure,
                                int64_t n_structures, const py::object& grad_virials) {
    if (rows.ndim() != 4 || rows.shape(2) != 3)
        throw InvalidInput("rows must have shape (n_all, max_rows, 3, n_features)");
    const py::ssize_t n_all = rows.shape(0), M = rows.shape(1), F = rows.shape(3);
    check_shape(targets, {n_all, M}, "targets");
    check_shape(atoms, {-1}, "atoms");
    const py::ssize_t n = atoms.shape(0), K = rhs.ndim() == 3 ? rhs.shape(0) : 0;
    check_shape(rhs, {K, n, vjp ? py::ssize_t(3) : F}, vjp ? "grad_forces" : "dE_dG");
    PaddedJacobian<T> J;
    J.rows = borrowed<T>(rows, "rows");
    J.targets = borrowed<int64_t>(targets, "targets");
    J.n_all = n_all, J.max_rows = M, J.n_features = F;
    StrainJacobian<T> strain;
    py::array sr;  // held until the kernel has run: strain.rows points into it
    Array<int64_t> structure_index;
    Array<T> grad_w;
    if (!strain_rows.is_none()) {
        // borrowed like rows: an array of exactly dtype T, never a converted temporary
        if (!py::isinstance<py::array>(strain_rows)) throw InvalidInput("strain must be a numpy array");
        sr = py::reinterpret_borrow<py::array>(strain_rows);
        check_shape(sr, {n_all, 3, 3, F}, "strain");
        if (structure.is_none()) throw InvalidInput("strain needs structure (n,): each atom's structure");
        structure_index = Array<int64_t>::ensure(structure);
        if (!structure_index) throw InvalidInput("structure must be an integer array (n,)");
        check_shape(structure_index, {n}, "structure");
        strain.rows = borrowed<T>(sr, "strain");
        strain.structure = structure_index.data();
        if (vjp) {
            if (grad_virials.is_none()) throw InvalidInput("strain needs grad_virials (K, n_structures, 3, 3)");
            grad_w = Array<T>::ensure(grad_virials);
            if (!grad_w || grad_w.ndim() != 4)
                throw InvalidInput("grad_virials must have shape (K, n_structures, 3, 3)");
            n_structures = grad_w.shape(1);
            check_shape(grad_w, {K, n_structures, 3, 3}, "grad_virials");
        }
        if (n_structures < 0) throw InvalidInput("n_structures must be >= 0");
        strain.n_structures = n_structures;
    }
    Array<T> out({K, n, vjp ? F : py::ssize_t(3)});
    Array<T> virials({strain.rows != nullptr && !vjp ? K : py::ssize_t(0), py::ssize_t(strain.n_structures),
                      py::ssize_t(3), py::ssize_t(3)});
    const int64_t* pa = atoms.data();
    const T* pr = rhs.data();
    T* po = out.mutable_data();
    T* pv = virials.mutable_data();
    const T* pg = strain.rows != nullptr && vjp ? grad_w.data() : nullptr;
    {
        py::gil_scoped_release release;
        if (vjp)
            jacobian_forces_vjp(J, pa, n, pr, K, po, true, strain, pg);
        else
            jacobian_forces(J, pa, n, pr, K, po, true, strain, pv);
    }
    if (strain.rows != nullptr && !vjp) return py::make_tuple(out, virials);
    return std::move(out);
}

/// The stacked networks of one species as mlp.hpp's view: weights[l] (K, sizes[l], sizes[l + 1]),
/// biases[l] (K, 1, sizes[l + 1]) or (K, sizes[l + 1]), all of dtype T; the arrays are held.
template <class T>
struct MlpArrays {
    std::vector<Array<T>> w, b;
    std::vector<const T*> pw, pb;
    std::vector<int64_t> sizes;
    StackedMlp<T> view;

    MlpArrays(const py::list& weights, const py::list& biases, const std::string& activation) {
        const size_t L = weights.size();
        if (L < 2 || biases.size() != L)
            throw InvalidInput("mlp: weights and biases must be lists of the same length >= 2 (a hidden layer)");
        for (size_t l = 0; l < L; ++l) {
            w.push_back(Array<T>::ensure(weights[l]));
            b.push_back(Array<T>::ensure(biases[l]));
            if (!w.back() || w.back().ndim() != 3) throw InvalidInput("mlp: weights[l] must have shape (K, a, b)");
            if (l == 0) sizes.push_back(w.back().shape(1));
            if (w.back().shape(1) != sizes.back() || w.back().shape(0) != w[0].shape(0))
                throw InvalidInput("mlp: weights[" + std::to_string(l) + "] does not follow the layer before");
            sizes.push_back(w.back().shape(2));
            if (!b.back() || b.back().size() != w.back().shape(0) * w.back().shape(2))
                throw InvalidInput("mlp: biases[" + std::to_string(l) + "] must hold K x " +
                                   std::to_string(w.back().shape(2)) + " values");
            pw.push_back(w.back().data()), pb.push_back(b.back().data());
        }
        view.n_members = w[0].shape(0), view.n_layers = int64_t(L);
        view.sizes = sizes.data(), view.weights = pw.data(), view.biases = pb.data();
        view.activation = parse_mlp_activation(activation);
    }
};

/// x (n, F) or (K, n, F) of dtype T; returns n and whether x is per member.
template <class T>
std::pair<int64_t, bool> mlp_input(const Array<T>& x, const StackedMlp<T>& net) {
    const int64_t K = net.n_members, F = net.sizes[0];
    if (x.ndim() == 2 && x.shape(1) == F) return {x.shape(0), false};
    if (x.ndim() == 3 && x.shape(0) == K && x.shape(2) == F) return {x.shape(1), true};
    throw InvalidInput("mlp: x must have shape (n, " + std::to_string(F) + ") or (" + std::to_string(K) + ", n, " +
                       std::to_string(F) + ")");
}

template <class T>
py::tuple mlp_forward(const py::array& x_in, const py::list& weights, const py::list& biases,
                      const std::string& activation) {
    MlpArrays<T> net(weights, biases, activation);
    const Array<T> x = Array<T>::ensure(x_in);
    const auto [n, per_member] = mlp_input(x, net.view);
    const py::ssize_t K = net.view.n_members, F = net.view.sizes[0];
    Array<T> out({K, py::ssize_t(n)}), grad({K, py::ssize_t(n), F});
    {
        py::gil_scoped_release release;
        mlp_value_and_input_gradient(net.view, x.data(), n, per_member, out.mutable_data(), grad.mutable_data());
    }
    return py::make_tuple(out, grad);
}

template <class T>
py::tuple mlp_backward(const py::array& x_in, const py::list& weights, const py::list& biases,
                       const std::string& activation, const py::object& g_out, const py::object& g_grad) {
    MlpArrays<T> net(weights, biases, activation);
    const Array<T> x = Array<T>::ensure(x_in);
    const auto [n, per_member] = mlp_input(x, net.view);
    const py::ssize_t K = net.view.n_members, F = net.view.sizes[0];
    Array<T> go, gg;
    if (!g_out.is_none()) go = Array<T>::ensure(g_out), check_shape(go, {K, py::ssize_t(n)}, "g_out");
    if (!g_grad.is_none()) gg = Array<T>::ensure(g_grad), check_shape(gg, {K, py::ssize_t(n), F}, "g_grad");
    py::list gw, gb;
    std::vector<T*> pgw, pgb;
    for (int64_t l = 0; l < net.view.n_layers; ++l) {
        Array<T> a({K, py::ssize_t(net.sizes[size_t(l)]), py::ssize_t(net.sizes[size_t(l) + 1])});
        Array<T> b({K, py::ssize_t(1), py::ssize_t(net.sizes[size_t(l) + 1])});
        pgw.push_back(a.mutable_data()), pgb.push_back(b.mutable_data());
        gw.append(a), gb.append(b);
    }
    const T* pgo = g_out.is_none() ? nullptr : go.data();
    const T* pgg = g_grad.is_none() ? nullptr : gg.data();
    {
        py::gil_scoped_release release;
        mlp_value_and_input_gradient_vjp(net.view, x.data(), n, per_member, pgo, pgg, pgw.data(), pgb.data());
    }
    return py::make_tuple(gw, gb);
}

py::object jacobian_contraction_any(const py::array& rows, const py::array& targets, Array<int64_t> atoms,
                                    const py::array& rhs, bool vjp, const py::object& strain,
                                    const py::object& structure, int64_t n_structures, const py::object& grad_virials) {
    if (rows.dtype().is(py::dtype::of<float>()))
        return jacobian_contraction<float>(rows, targets, atoms, Array<float>::ensure(rhs), vjp, strain, structure,
                                           n_structures, grad_virials);
    if (rows.dtype().is(py::dtype::of<double>()))
        return jacobian_contraction<double>(rows, targets, atoms, Array<double>::ensure(rhs), vjp, strain, structure,
                                            n_structures, grad_virials);
    throw InvalidInput("rows must be float32 or float64, got " + std::string(py::str(rows.dtype())));
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "alip's compiled core: neighbor lists and ACSF descriptors with exact derivatives";
    py::register_exception<InvalidInput>(m, "InvalidInput", PyExc_ValueError);
    // the kernel variant is chosen here, once: a bad ALIP_KERNEL fails the import with the reason
    kernels();

    m.def("build_info", []() {
        py::dict d;
        d["version"] = ALIP_VERSION;
        d["compiler"] = ALIP_CXX_COMPILER;
        d["build_type"] = ALIP_BUILD_TYPE;
        d["kernel_flags"] = ALIP_KERNEL_FLAGS;
        d["kernel_variants"] = kernel_variants();
        d["kernel_variant"] = std::string(kernels().name);
        d["kernel_simd"] = std::string(kernels().simd);
        d["cpu_isa"] = std::string(cpu_isa() == kIsaAvx512 ? "avx512" : cpu_isa() == kIsaAvx2 ? "avx2" : "baseline");
        d["openmp"] = have_openmp();
        d["cuda"] = bool(ALIP_HAVE_CUDA);
        d["max_threads"] = get_num_threads();
        return d;
    });
    m.def(
        "_select_kernel_variant",
        [](const std::string& requested, const std::string& cpu) {
            const int isa = cpu == "avx512" ? kIsaAvx512 : cpu == "avx2" ? kIsaAvx2 : kIsaBaseline;
            return select_kernel_variant(requested, isa);
        },
        py::arg("requested"), py::arg("cpu"),
        "The kernel variant ALIP_KERNEL=requested selects on a CPU of `cpu` (baseline, avx2, avx512; for tests).");
    m.def("get_num_threads", &get_num_threads);
    m.def("set_num_threads", &set_num_threads, py::arg("n"));
    m.def("neighbor_list", &neighbor_list, py::arg("positions"), py::arg("cell"), py::arg("pbc"), py::arg("cutoff"),
          "Full neighbor list of one structure: (i, j, S, D, d), sorted by i then j.");

    py::class_<Acsf>(m, "Acsf")
        .def(py::init(&make_acsf), py::arg("n_species"), py::arg("cutoff"), py::arg("cutoff_function"), py::arg("g2"),
             py::arg("g4"), py::arg("g5"))
        .def_property_readonly("n_features", &Acsf::n_features)
        .def(
            "values",
            [](const Acsf& self, Array<double> positions, Array<int32_t> species, Array<int64_t> offsets,
               Array<double> cells, Array<uint8_t> pbc) {
                BatchArrays b(positions, species, offsets, cells, pbc);
                validate_batch(b.view, self.spec().n_species, self.spec().cutoff);
                Array<double> out({py::ssize_t(b.view.n_atoms()), py::ssize_t(self.n_features())});
                double* data = out.mutable_data();
                {
                    py::gil_scoped_release release;
                    batch_values(self, b.view, data);
                }
                return out;
            },
            py::arg("positions"), py::arg("species"), py::arg("offsets"), py::arg("cells"), py::arg("pbc"))
        .def(
            "gradients",
            [](const Acsf& self, Array<double> positions, Array<int32_t> species, Array<int64_t> offsets,
               Array<double> cells, Array<uint8_t> pbc) {
                BatchArrays b(positions, species, offsets, cells, pbc);
                validate_batch(b.view, self.spec().n_species, self.spec().cutoff);
                const py::ssize_t N = b.view.n_atoms(), F = self.n_features();
                GradientPlan plan;
                {
                    py::gil_scoped_release release;
                    plan = plan_gradients(self, b.view);
                }
                const py::ssize_t R = plan.n_rows();
                Array<double> values({N, F}), grad({R, py::ssize_t(3), F}),
                    strain({N, py::ssize_t(3), py::ssize_t(3), F});
                Array<int64_t> centers(R), neighbors(R);
                double *pv = values.mutable_data(), *pg = grad.mutable_data(), *ps = strain.mutable_data();
                int64_t *pc = centers.mutable_data(), *pn = neighbors.mutable_data();
                {
                    py::gil_scoped_release release;
                    batch_gradients(self, b.view, plan, pv, pg, pc, pn, ps);
                }
                return py::make_tuple(values, grad, centers, neighbors, strain);
            },
            py::arg("positions"), py::arg("species"), py::arg("offsets"), py::arg("cells"), py::arg("pbc"),
            "(values, grad_values, grad_centers, grad_neighbors, strain_grad) of a batch")
        .def(
            "forces_virial",
            [](const Acsf& self, Array<double> positions, Array<int32_t> species, Array<int64_t> offsets,
               Array<double> cells, Array<uint8_t> pbc, Array<double> dE_dG) {
                BatchArrays b(positions, species, offsets, cells, pbc);
                validate_batch(b.view, self.spec().n_species, self.spec().cutoff);
                const py::ssize_t N = b.view.n_atoms(), F = self.n_features();
                const py::ssize_t S = b.view.n_structures;
                // (N, F) or (K, N, F): K right-hand sides share the neighbor list and geometry
                const bool stacked = dE_dG.ndim() == 3;
                const py::ssize_t K = stacked ? dE_dG.shape(0) : 1;
                if (stacked)
                    check_shape(dE_dG, {K, N, F}, "dE_dG");
                else
                    check_shape(dE_dG, {N, F}, "dE_dG");
                const double* w = dE_dG.data();
                for (py::ssize_t k = 0; k < K * N * F; ++k)
                    if (!std::isfinite(w[k])) throw InvalidInput("dE_dG contains NaN or inf");
                Array<double> forces =
                    stacked ? Array<double>({K, N, py::ssize_t(3)}) : Array<double>({N, py::ssize_t(3)});
                Array<double> virials = stacked ? Array<double>({K, S, py::ssize_t(3), py::ssize_t(3)})
                                                : Array<double>({S, py::ssize_t(3), py::ssize_t(3)});
                double *pf = forces.mutable_data(), *pw = virials.mutable_data();
                {
                    py::gil_scoped_release release;
                    batch_forces_virial(self, b.view, w, pf, pw, K);
                }
                return py::make_tuple(forces, virials);
            },
            py::arg("positions"), py::arg("species"), py::arg("offsets"), py::arg("cells"), py::arg("pbc"),
            py::arg("dE_dG"),
            "(forces, virials) from dE/dG without storing the Jacobian: dE/dG (N, F) gives (N, 3) and "
            "(n_structures, 3, 3); (K, N, F) gives (K, N, 3) and (K, n_structures, 3, 3)");
    m.def(
        "jacobian_forces",
        [](const py::array& rows, const py::array& targets, Array<int64_t> atoms, const py::array& dE_dG,
           const py::object& strain, const py::object& structure, int64_t n_structures) {
            return jacobian_contraction_any(rows, targets, atoms, dE_dG, false, strain, structure, n_structures,
                                            py::none());
        },
        py::arg("rows"), py::arg("targets"), py::arg("atoms"), py::arg("dE_dG"), py::arg("strain") = py::none(),
        py::arg("structure") = py::none(), py::arg("n_structures") = 0,
        "forces (K, n, 3) = -J^T dE_dG from Jacobians padded per center (rows (n_all, M, 3, F) float32 or float64, "
        "targets (n_all, M) int64, n_all for padding; both borrowed, never copied) for the batch atoms (n,) "
        "(whole structures, consecutive) and dE_dG (K, n, F); with strain (n_all, 3, 3, F) (borrowed) and "
        "structure (n,) (each atom's structure in [0, n_structures)) the tuple (forces, virials (K, n_structures, "
        "3, 3))");
    m.def(
        "jacobian_forces_vjp",
        [](const py::array& rows, const py::array& targets, Array<int64_t> atoms, const py::array& grad_forces,
           const py::object& strain, const py::object& structure, const py::object& grad_virials) {
            return jacobian_contraction_any(rows, targets, atoms, grad_forces, true, strain, structure, 0,
                                            grad_virials);
        },
        py::arg("rows"), py::arg("targets"), py::arg("atoms"), py::arg("grad_forces"), py::arg("strain") = py::none(),
        py::arg("structure") = py::none(), py::arg("grad_virials") = py::none(),
        "the vector-Jacobian product of jacobian_forces: (K, n, F) from grad_forces (K, n, 3) [and, with strain "
        "and structure, grad_virials (K, n_structures, 3, 3)]");
    m.def(
        "mlp_forward",
        [](const py::array& x, const py::list& weights, const py::list& biases, const std::string& activation) {
            if (x.dtype().is(py::dtype::of<float>())) return mlp_forward<float>(x, weights, biases, activation);
            if (x.dtype().is(py::dtype::of<double>())) return mlp_forward<double>(x, weights, biases, activation);
            throw InvalidInput("mlp: x must be float32 or float64, got " + std::string(py::str(x.dtype())));
        },
        py::arg("x"), py::arg("weights"), py::arg("biases"), py::arg("activation"),
        "(out (K, n), d out / d x (K, n, F)) of K stacked MLPs (weights[l] (K, a, b), biases[l] (K, 1, b), the "
        "activation after every layer but the last) on x (n, F) or (K, n, F), in x's dtype");
    m.def(
        "mlp_backward",
        [](const py::array& x, const py::list& weights, const py::list& biases, const std::string& activation,
           const py::object& g_out, const py::object& g_grad) {
            if (x.dtype().is(py::dtype::of<float>()))
                return mlp_backward<float>(x, weights, biases, activation, g_out, g_grad);
            if (x.dtype().is(py::dtype::of<double>()))
                return mlp_backward<double>(x, weights, biases, activation, g_out, g_grad);
            throw InvalidInput("mlp: x must be float32 or float64, got " + std::string(py::str(x.dtype())));
        },
        py::arg("x"), py::arg("weights"), py::arg("biases"), py::arg("activation"), py::arg("g_out") = py::none(),
        py::arg("g_grad") = py::none(),
        "the VJP of mlp_forward in the weights and biases: (grad_weights, grad_biases), lists shaped as weights "
        "and (K, 1, b), from g_out (K, n) and g_grad (K, n, F) (either may be None)");
    register_cuda(m);
}
