// CPU emulation of the CUDA path, for testing without a GPU (tests/core/test_cuda_emulator.py).
//
// Runs the functions the kernels run (acsf_math.cuh, nl_logic.cuh, acsf_tables.hpp),
// serially: every step of neighbors.cu (plans, wrapping, bins sorted stably by key,
// count, fill, grouping by species) and of acsf.cu (pair data; values and JVP with one
// accumulator column per lane, summed in lane order; VJP rows with the n1 terms summed
// over lanes). What it does not exercise: the CUDA runtime, launch configurations, warp
// shuffles, shared-memory addressing, atomics, cub; those need a GPU.
//
// Plain C++17 (no CUDA): g++ -std=c++17 -O2 -Icuda -Icpp cuda/host_emulation.cpp
//   host_emulation IN OUT      (binary formats: see read_input / main)
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "acsf_math.cuh"
#include "acsf_tables.hpp"
#include "nl_logic.cuh"

using namespace alip;
using namespace alip::cuda;
using namespace alip::cuda::acsf_math;
using namespace alip::cuda::nl_logic;

namespace {

struct Input {
    int64_t N = 0, S = 0, ns = 1, ng2 = 0, ng4 = 0, ng5 = 0, polynomial = 0, float32 = 0, has_w = 0, has_u = 0,
            has_strain = 0;
    double cutoff = 0;
    std::vector<double> positions, cells, g2, g4, g5, w, u, strain;
    std::vector<int32_t> species;
    std::vector<int64_t> offsets;
    std::vector<uint8_t> pbc;
};

template <class T>
void read_into(std::ifstream& f, std::vector<T>& v, size_t n) {
    v.resize(n);
    f.read(reinterpret_cast<char*>(v.data()), std::streamsize(n * sizeof(T)));
    if (!f) throw std::runtime_error("input file too short");
}

/// int64 header (11 values), float64 cutoff, then positions (N,3) f64, species (N,) i32,
/// offsets (S+1,) i64, cells (S,3,3) f64, pbc (S,3) u8, g2 (ng2,2), g4 (ng4,5), g5 (ng5,5)
/// f64 (eta, zeta, lambda, rs, rs2), then dE_dG (N,F), displacement (N,3), strain (S,3,3) f64 when flagged.
Input read_input(const char* path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error("cannot open input");
    Input in;
    int64_t h[11];
    f.read(reinterpret_cast<char*>(h), sizeof(h));
    in.N = h[0], in.S = h[1], in.ns = h[2], in.ng2 = h[3], in.ng4 = h[4], in.ng5 = h[5], in.polynomial = h[6];
    in.float32 = h[7], in.has_w = h[8], in.has_u = h[9], in.has_strain = h[10];
    f.read(reinterpret_cast<char*>(&in.cutoff), sizeof(double));
    read_into(f, in.positions, size_t(3 * in.N));
    read_into(f, in.species, size_t(in.N));
    read_into(f, in.offsets, size_t(in.S + 1));
    read_into(f, in.cells, size_t(9 * in.S));
    read_into(f, in.pbc, size_t(3 * in.S));
    read_into(f, in.g2, size_t(2 * in.ng2));
    read_into(f, in.g4, size_t(5 * in.ng4));  // eta zeta lambda rs rs2
    read_into(f, in.g5, size_t(5 * in.ng5));
    const int64_t n_pairs_sp = in.ns * (in.ns + 1) / 2;
    const int64_t F = in.ns * in.ng2 + n_pairs_sp * (in.ng4 + in.ng5);
    if (in.has_w) read_into(f, in.w, size_t(in.N * F));
    if (in.has_u) read_into(f, in.u, size_t(3 * in.N));
    if (in.has_strain) read_into(f, in.strain, size_t(9 * in.S));
    return in;
}

struct List {
    std::vector<int64_t> center_offset;
    std::vector<int32_t> seg, neighbor, shift, structure;
    std::vector<double> vector, distance;
    int64_t n_pairs = 0;
};

/// neighbors.cu, serially.
List build_list(const Input& in) {
    const int64_t N = in.N, S = in.S;
    List L;
    L.structure.resize(static_cast<size_t>(N));
    for (int64_t k = 0; k < S; ++k)
        for (int64_t i = in.offsets[k]; i < in.offsets[k + 1]; ++i) L.structure[size_t(i)] = int32_t(k);
    std::vector<StructurePlan> plans(static_cast<size_t>(S));
    for (int64_t k = 0; k < S; ++k) {
        const bool pb[3] = {in.pbc[3 * k] != 0, in.pbc[3 * k + 1] != 0, in.pbc[3 * k + 2] != 0};
        plan_cell(plans[size_t(k)], &in.cells[size_t(9 * k)], pb, in.offsets[k]);
    }
    std::vector<double> frac(size_t(3 * N)), wrapped(size_t(3 * N));
    std::vector<int32_t> wrap(size_t(3 * N));
    std::vector<double> ext_min(size_t(3 * S), 1e300), ext_max(size_t(3 * S), -1e300);
    for (int64_t i = 0; i < N; ++i) {
        const StructurePlan& P = plans[size_t(L.structure[size_t(i)])];
        prepare_atom(P, &in.positions[size_t(3 * i)], &frac[size_t(3 * i)], &wrap[size_t(3 * i)],
                     &wrapped[size_t(3 * i)]);
        const int64_t k = L.structure[size_t(i)];
        for (int a = 0; a < 3; ++a) {
            ext_min[size_t(3 * k + a)] = std::min(ext_min[size_t(3 * k + a)], frac[size_t(3 * i + a)]);
            ext_max[size_t(3 * k + a)] = std::max(ext_max[size_t(3 * k + a)], frac[size_t(3 * i + a)]);
        }
    }
    int64_t total_bins = 0;
    for (int64_t k = 0; k < S; ++k) {
        StructurePlan& P = plans[size_t(k)];
        P.bin_offset = total_bins;
        const int64_t nb = plan_bins(P, in.offsets[k + 1] - in.offsets[k], &ext_min[size_t(3 * k)],
                                     &ext_max[size_t(3 * k)], in.cutoff);
        if (nb < 0) throw std::runtime_error("too many images");
        total_bins += nb;
    }
    std::vector<int32_t> bin3(size_t(3 * N)), bin_atoms(static_cast<size_t>(N));
    std::vector<int64_t> key(static_cast<size_t>(N)), bin_count(size_t(total_bins + 1), 0),
        bin_start(size_t(total_bins + 1), 0);
    for (int64_t i = 0; i < N; ++i) {
        key[size_t(i)] = bin_of(plans[size_t(L.structure[size_t(i)])], &frac[size_t(3 * i)], &bin3[size_t(3 * i)]);
        ++bin_count[size_t(key[size_t(i)])];
    }
    std::iota(bin_atoms.begin(), bin_atoms.end(), 0);  // stable radix sort by key
    std::stable_sort(bin_atoms.begin(), bin_atoms.end(),
                     [&](int32_t x, int32_t y) { return key[size_t(x)] < key[size_t(y)]; });
    for (int64_t b = 0; b < total_bins; ++b) bin_start[size_t(b + 1)] = bin_start[size_t(b)] + bin_count[size_t(b)];

    const double cutoff2 = in.cutoff * in.cutoff;
    L.center_offset.assign(size_t(N + 1), 0);
    for (int64_t i = 0; i < N; ++i) {
        int64_t c = 0;
        search(i, plans[size_t(L.structure[size_t(i)])], bin3.data(), wrapped.data(), bin_start.data(),
               bin_atoms.data(), cutoff2, [&](int64_t, int64_t, int64_t, int64_t, double) { ++c; });
        L.center_offset[size_t(i + 1)] = L.center_offset[size_t(i)] + c;
    }
    L.n_pairs = L.center_offset[size_t(N)];
    std::vector<int32_t> tmp_j(static_cast<size_t>(L.n_pairs)), tmp_shift(size_t(3 * L.n_pairs));
    for (int64_t i = 0; i < N; ++i) {
        int64_t p = L.center_offset[size_t(i)];
        search(i, plans[size_t(L.structure[size_t(i)])], bin3.data(), wrapped.data(), bin_start.data(),
               bin_atoms.data(), cutoff2, [&](int64_t j, int64_t sx, int64_t sy, int64_t sz, double) {
                   if (p < L.center_offset[size_t(i + 1)]) {  // fill_kernel's bound
                       tmp_j[size_t(p)] = int32_t(j);
                       pair_shift(wrap.data(), i, j, sx, sy, sz, &tmp_shift[size_t(3 * p)]);
                   }
                   ++p;
               });
        if (p != L.center_offset[size_t(i + 1)]) throw std::runtime_error("fill and count passes disagree");
    }
    const int32_t ns = int32_t(in.ns);
    L.seg.resize(size_t(N * (ns + 1)));
    L.neighbor.resize(static_cast<size_t>(L.n_pairs));
    L.shift.resize(size_t(3 * L.n_pairs));
    L.vector.resize(size_t(3 * L.n_pairs));
    L.distance.resize(static_cast<size_t>(L.n_pairs));
    for (int64_t i = 0; i < N; ++i)
        group_center(i, ns, in.species.data(), in.positions.data(), plans[size_t(L.structure[size_t(i)])].cell,
                     L.center_offset[size_t(i)], L.center_offset[size_t(i + 1)], tmp_j.data(), tmp_shift.data(),
                     L.seg.data(), L.neighbor.data(), L.shift.data(), L.vector.data(), L.distance.data());
    return L;
}

AcsfSpec make_spec(const Input& in) {
    AcsfSpec spec;
    spec.n_species = int32_t(in.ns);
    spec.cutoff = in.cutoff;
    spec.cutoff_function = in.polynomial ? CutoffFunction::Polynomial : CutoffFunction::Cosine;
    for (int64_t k = 0; k < in.ng2; ++k) spec.g2.push_back({in.g2[size_t(2 * k)], in.g2[size_t(2 * k + 1)]});
    auto row = [](const std::vector<double>& g, int64_t k) {
        const double* r = &g[size_t(5 * k)];
        return AngularParam{r[0], r[1], r[2], r[3], r[4]};
    };
    for (int64_t k = 0; k < in.ng4; ++k) spec.g4.push_back(row(in.g4, k));
    for (int64_t k = 0; k < in.ng5; ++k) spec.g5.push_back(row(in.g5, k));
    return spec;
}

struct Outputs {
    std::vector<double> values, forces, virials, jvp;
};

template <class T>
std::vector<T> cast(const std::vector<double>& v) {
    return std::vector<T>(v.begin(), v.end());
}

/// forward_kernel, one warp emulated: each lane fills its own column, then the columns
/// are summed in lane order (as flush() does).
template <class T, bool kJvp>
std::vector<double> forward(const Tables& tab, const ListView& lv, const PairData<T>& pd, int64_t N) {
    const int stride = kWarp + 1;
    const int n_acc = std::max({tab.ng2, tab.n_ang, 1});
    std::vector<T> acc(size_t(n_acc * stride));
    std::vector<double> out(size_t(N * tab.F));
    auto flush = [&](int n, double* g) {
        for (int k = 0; k < n; ++k) {
            T s = T(0);
            for (int l = 0; l < kWarp; ++l) s += acc[size_t(k * stride + l)];
            g[k] = double(s);
        }
        std::fill(acc.begin(), acc.end(), T(0));
    };
    for (int64_t i = 0; i < N; ++i) {
        double* g = &out[size_t(i * tab.F)];
        for (int32_t s = 0; s < tab.ns && tab.ng2 > 0; ++s) {
            for (int lane = 0; lane < kWarp; ++lane)
                g2_lane<T, kJvp>(tab, lv, pd, i, s, lane, &acc[size_t(lane)], stride);
            flush(tab.ng2, g + int64_t(s) * tab.ng2);
        }
        if (tab.n_ang == 0) continue;
        for (int32_t s1 = 0; s1 < tab.ns; ++s1)
            for (int32_t s2 = s1; s2 < tab.ns; ++s2) {
                for (int lane = 0; lane < kWarp; ++lane)
                    angular_lane<T, kJvp>(tab, lv, pd, i, s1, s2, lane, &acc[size_t(lane)], stride);
                flush(tab.n_ang, g + tab.n_radial + int64_t(tab.pair_index[s1 * tab.ns + s2]) * tab.n_ang);
            }
    }
    return out;
}

/// vjp_kernel and reduce_virial_kernel, one warp emulated.
template <class T>
void vjp(const Tables& tab, const ListView& lv, const PairData<T>& pd, const std::vector<T>& w, int64_t N,
         const std::vector<int64_t>& offsets, std::vector<double>& forces_out, std::vector<double>& virials_out,
         int64_t n_pairs) {
    std::vector<T> acc4(size_t(4 * n_pairs), T(0)), forces(size_t(3 * N), T(0)), virial_atom(size_t(9 * N));
    for (int64_t i = 0; i < N; ++i) {
        const T* wi = &w[size_t(i * tab.F)];
        const int32_t* seg = lv.seg + i * (tab.ns + 1);
        for (int32_t s = 0; s < tab.ns && tab.ng2 > 0; ++s)
            for (int lane = 0; lane < kWarp; ++lane) g2_vjp_lane(tab, lv, pd, wi, i, s, lane, acc4.data());
        for (int32_t s1 = 0; s1 < tab.ns && tab.n_ang > 0; ++s1)
            for (int32_t s2 = s1; s2 < tab.ns; ++s2) {
                const int64_t first = lv.center_offset[i] + seg[s1], K1 = seg[s1 + 1] - seg[s1];
                for (int64_t a = 0; a < K1; ++a) {
                    T sum[4] = {T(0), T(0), T(0), T(0)};
                    for (int lane = 0; lane < kWarp; ++lane) {
                        T part[4];
                        vjp_row_lane(tab, lv, pd, wi, i, s1, s2, a, lane, acc4.data(), part);
                        for (int q = 0; q < 4; ++q) sum[q] += part[q];
                    }
                    for (int q = 0; q < 4; ++q) acc4[size_t(4 * (first + a) + q)] += sum[q];
                }
            }
        T fi_sum[3] = {T(0), T(0), T(0)}, vir_sum[9] = {};
        for (int lane = 0; lane < kWarp; ++lane) {
            T fi[3], vir[9];
            assemble_lane(
                lv, acc4.data(), i, lane, [&](int64_t j, int c, T x) { forces[size_t(3 * j + c)] += x; }, fi, vir);
            for (int c = 0; c < 3; ++c) fi_sum[c] += fi[c];
            for (int q = 0; q < 9; ++q) vir_sum[q] += vir[q];
        }
        for (int c = 0; c < 3; ++c) forces[size_t(3 * i + c)] += fi_sum[c];
        for (int q = 0; q < 9; ++q) virial_atom[size_t(9 * i + q)] = vir_sum[q];
    }
    const int64_t S = int64_t(offsets.size()) - 1;
    forces_out.assign(forces.begin(), forces.end());
    virials_out.assign(size_t(9 * S), 0.0);
    for (int64_t k = 0; k < S; ++k)
        for (int64_t i = offsets[size_t(k)]; i < offsets[size_t(k + 1)]; ++i)
            for (int q = 0; q < 9; ++q) virials_out[size_t(9 * k + q)] += double(virial_atom[size_t(9 * i + q)]);
}

template <class T>
Outputs run(const Input& in, const List& L) {
    const AcsfSpec spec = make_spec(in);
    const HostTables host = build_tables(spec);
    const Tables tab = host.view(spec, host.g2.data(), host.groups.data(), host.items.data(), host.pair_index.data());
    const ListView lv{L.center_offset.data(), L.seg.data(),       L.neighbor.data(),
                      L.vector.data(),        L.structure.data(), in.N};
    const size_t np = size_t(L.n_pairs);
    std::vector<T> r(np), fc(np), dfc(np), dx(np), dy(np), dz(np);
    PairData<T> pd{r.data(), fc.data(), dfc.data(), dx.data(), dy.data(), dz.data()};
    Outputs out;
    for (int64_t i = 0; i < in.N; ++i)
        for (int lane = 0; lane < kWarp; ++lane) pair_lane<T>(tab, lv, pd, i, lane, nullptr, nullptr, false);
    out.values = forward<T, false>(tab, lv, pd, in.N);
    if (in.has_w) {
        const std::vector<T> w = cast<T>(in.w);
        vjp<T>(tab, lv, pd, w, in.N, in.offsets, out.forces, out.virials, L.n_pairs);
    }
    if (in.has_u || in.has_strain) {
        const std::vector<T> u = cast<T>(in.u), strain = cast<T>(in.strain);
        for (int64_t i = 0; i < in.N; ++i)
            for (int lane = 0; lane < kWarp; ++lane)
                pair_lane<T>(tab, lv, pd, i, lane, in.has_u ? u.data() : nullptr,
                             in.has_strain ? strain.data() : nullptr, true);
        out.jvp = forward<T, true>(tab, lv, pd, in.N);
    }
    return out;
}

template <class T>
void write(std::ofstream& f, const std::vector<T>& v) {
    f.write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * sizeof(T)));
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s INPUT OUTPUT\n", argv[0]);
        return 2;
    }
    try {
        const Input in = read_input(argv[1]);
        const List L = build_list(in);
        const Outputs out = in.float32 ? run<float>(in, L) : run<double>(in, L);
        // output: n_pairs (int64); i, j (int64); shift (int64, 3 per pair); vector (f64, 3);
        // distance (f64); values (N, F); forces (N, 3) and virials (S, 9) when dE_dG was
        // given; jvp (N, F) when a displacement or strain was given.
        std::ofstream f(argv[2], std::ios::binary);
        const int64_t n = L.n_pairs;
        f.write(reinterpret_cast<const char*>(&n), sizeof(n));
        std::vector<int64_t> ii(static_cast<size_t>(n)), jj(static_cast<size_t>(n)), ss(size_t(3 * n));
        for (int64_t i = 0; i < in.N; ++i)
            for (int64_t p = L.center_offset[size_t(i)]; p < L.center_offset[size_t(i + 1)]; ++p) ii[size_t(p)] = i;
        for (int64_t p = 0; p < n; ++p) jj[size_t(p)] = L.neighbor[size_t(p)];
        for (int64_t p = 0; p < 3 * n; ++p) ss[size_t(p)] = L.shift[size_t(p)];
        write(f, ii);
        write(f, jj);
        write(f, ss);
        write(f, L.vector);
        write(f, L.distance);
        write(f, out.values);
        if (in.has_w) write(f, out.forces), write(f, out.virials);
        if (in.has_u || in.has_strain) write(f, out.jvp);
        if (!f) throw std::runtime_error("cannot write output");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
