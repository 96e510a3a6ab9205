// Tests of the C++ core through its public headers: neighbor list vs brute force,
// ACSF values vs a plain scalar reference written here, gradients vs central finite
// differences, the fused VJP vs the sparse gradients, every compiled kernel variant vs
// the selected one, forces from a stored Jacobian vs their definition, and input
// validation. Build: cmake -DALIP_BUILD_TESTS=ON, then ctest.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "acsf.hpp"
#include "check.hpp"
#include "dispatch.hpp"
#include "jacobian.hpp"
#include "mlp.hpp"
#include "neighbors.hpp"
#include "parallel.hpp"
#include "structure.hpp"

using namespace alip;

namespace {

constexpr double kPi = 3.14159265358979323846;

/// An owning structure (positions, cell, species) with a view onto it.
struct Crystal {
    std::vector<double> positions;
    std::array<double, 9> cell{};
    std::vector<int32_t> species;
    std::array<bool, 3> pbc{true, true, true};

    StructureView view() const {
        StructureView s;
        s.positions = positions.data();
        s.n_atoms = int64_t(species.size());
        s.cell = cell.data();
        s.pbc = pbc;
        s.species = species.data();
        return s;
    }
};

/// Diamond Si (a = 5.431 Å), `rep`^3 conventional cells, rattled; species alternate
/// between 0 and n_species - 1; `shear` tilts the cell (triclinic).
Crystal diamond(int rep, int32_t n_species, double rattle, unsigned seed, bool shear = false) {
    const double a = 5.431;
    const double basis[8][3] = {{0, 0, 0},       {0, .5, .5},     {.5, 0, .5},     {.5, .5, 0},
                                {.25, .25, .25}, {.25, .75, .75}, {.75, .25, .75}, {.75, .75, .25}};
    Crystal c;
    const double L = a * rep;
    c.cell = {L, 0, 0, 0, L, 0, 0, 0, L};
    if (shear) c.cell = {L, 0, 0, 0.25 * L, L, 0, -0.2 * L, 0.3 * L, L};
    std::mt19937 gen(seed);
    std::uniform_real_distribution<double> u(-rattle, rattle);
    for (int x = 0; x < rep; ++x)
        for (int y = 0; y < rep; ++y)
            for (int z = 0; z < rep; ++z)
                for (const auto& b : basis) {
                    const double f[3] = {(x + b[0]) / rep, (y + b[1]) / rep, (z + b[2]) / rep};
                    for (int k = 0; k < 3; ++k)
                        c.positions.push_back(f[0] * c.cell[k] + f[1] * c.cell[3 + k] + f[2] * c.cell[6 + k] + u(gen));
                    c.species.push_back(int32_t(c.species.size() % 2) * (n_species - 1));
                }
    return c;
}

AcsfSpec make_spec(int32_t n_species, double cutoff, CutoffFunction fc = CutoffFunction::Cosine) {
    AcsfSpec spec;
    spec.n_species = n_species;
    spec.cutoff = cutoff;
    spec.cutoff_function = fc;
    spec.g2 = {{0.5, 0.0}, {1.0, 2.0}, {2.0, 3.5}};
    spec.g4 = {{0.005, 1.0, 1.0}, {0.05, 2.0, -1.0},  {0.05, 4.0, 1.0},
               {0.02, 3.0, -1.0}, {0.005, 16.0, 1.0}, {0.5, 2.0, 1.0, 2.3}};  // the last: shifted
    // then shifted (one window) and two-window G5
    spec.g5 = {{0.01, 1.0, -1.0},     {0.03, 2.0, 1.0},          {0.01, 2.5, 1.0},
               {0.7, 1.0, -1.0, 2.4}, {2.0, 1.0, 1.0, 2.3, 3.8}, {2.0, 4.0, -1.0, 3.3, 2.3}};
    return spec;
}

double cutoff_fn(const AcsfSpec& spec, double r) {
    if (r >= spec.cutoff) return 0.0;
    const double x = r / spec.cutoff;
    if (spec.cutoff_function == CutoffFunction::Cosine) return 0.5 * (std::cos(kPi * x) + 1.0);
    return 1.0 - 10.0 * x * x * x + 15.0 * x * x * x * x - 6.0 * x * x * x * x * x;
}

/// The definitions, term by term (DScribe's convention): G2 per neighbor species, G4 / G5
/// per unordered pair of neighbors (each pair once), per unordered species pair.
std::vector<double> reference_values(const AcsfSpec& spec, const StructureView& s, const NeighborList& nl) {
    const int32_t ns = spec.n_species;
    const int64_t n_g2 = int64_t(spec.g2.size()), n_ang = int64_t(spec.g4.size() + spec.g5.size());
    const int64_t n_pairs_sp = int64_t(ns) * (ns + 1) / 2;
    const int64_t F = ns * n_g2 + n_pairs_sp * n_ang;
    auto pair_index = [&](int32_t a, int32_t b) {
        if (a > b) std::swap(a, b);
        int64_t q = 0;
        for (int32_t x = 0; x < ns; ++x)
            for (int32_t y = x; y < ns; ++y, ++q)
                if (x == a && y == b) return q;
        return q;
    };
    std::vector<double> out(size_t(s.n_atoms * F), 0.0);
    for (int64_t i = 0; i < s.n_atoms; ++i) {
        double* g = &out[size_t(i * F)];
        for (int64_t p = nl.offsets[i]; p < nl.offsets[i + 1]; ++p) {
            const double r = nl.distance[p];
            const int32_t sj = s.species[nl.neighbor[p]];
            for (int64_t k = 0; k < n_g2; ++k)
                g[sj * n_g2 + k] +=
                    std::exp(-spec.g2[k].eta * (r - spec.g2[k].rs) * (r - spec.g2[k].rs)) * cutoff_fn(spec, r);
        }
        for (int64_t p = nl.offsets[i]; p < nl.offsets[i + 1]; ++p)
            for (int64_t q = p + 1; q < nl.offsets[i + 1]; ++q) {
                const double* u = &nl.vector[3 * p];
                const double* v = &nl.vector[3 * q];
                const double r1 = nl.distance[p], r2 = nl.distance[q];
                const double d[3] = {v[0] - u[0], v[1] - u[1], v[2] - u[2]};
                const double r12 = std::sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
                const double cos = (u[0] * v[0] + u[1] * v[1] + u[2] * v[2]) / (r1 * r2);
                const int64_t base =
                    ns * n_g2 + pair_index(s.species[nl.neighbor[p]], s.species[nl.neighbor[q]]) * n_ang;
                auto window = [](const AngularParam& a, double r, double c) {
                    return std::exp(-a.eta * (r - c) * (r - c));
                };
                for (size_t k = 0; k < spec.g4.size(); ++k) {
                    const AngularParam& a = spec.g4[k];
                    const double b = std::max(0.0, 1.0 + a.lambda * cos);
                    g[base + int64_t(k)] += std::pow(2.0, 1.0 - a.zeta) * std::pow(b, a.zeta) * window(a, r1, a.rs) *
                                            window(a, r2, a.rs) * window(a, r12, a.rs) * cutoff_fn(spec, r1) *
                                            cutoff_fn(spec, r2) * cutoff_fn(spec, r12);
                }
                for (size_t k = 0; k < spec.g5.size(); ++k) {
                    const AngularParam& a = spec.g5[k];
                    const double b = std::max(0.0, 1.0 + a.lambda * cos);
                    const double rs2 = a.rs2 < 0 ? a.rs : a.rs2;  // 1/2 [g(r1; rs) g(r2; rs2) + g(r1; rs2) g(r2; rs)]
                    const double radial =
                        0.5 * (window(a, r1, a.rs) * window(a, r2, rs2) + window(a, r1, rs2) * window(a, r2, a.rs));
                    g[base + int64_t(spec.g4.size() + k)] += std::pow(2.0, 1.0 - a.zeta) * std::pow(b, a.zeta) *
                                                             radial * cutoff_fn(spec, r1) * cutoff_fn(spec, r2);
                }
            }
    }
    return out;
}

std::vector<double> compute_values(const Acsf& acsf, const Crystal& c) {
    const StructureView s = c.view();
    const NeighborList nl = build_neighbor_list(s, acsf.spec().cutoff, false, false);
    std::vector<double> out(size_t(s.n_atoms * acsf.n_features()));
    acsf.values(s, nl, out.data(), false);
    return out;
}

/// Sparse gradients, expanded to a dense (n_atoms centers, n_atoms atoms, 3, F) array.
struct Gradients {
    std::vector<double> values, dense, strain;
};

Gradients compute_gradients(const Acsf& acsf, const Crystal& c, const KernelTable* table = nullptr) {
    const StructureView s = c.view();
    const int64_t n = s.n_atoms, F = acsf.n_features();
    const NeighborList nl = build_neighbor_list(s, acsf.spec().cutoff, false, true);
    const std::vector<int64_t> rows = acsf.gradient_rows(nl);
    const int64_t n_rows = rows.back();
    std::vector<double> grad(size_t(n_rows * 3 * F));
    std::vector<int64_t> centers(static_cast<size_t>(n_rows)), neighbors(static_cast<size_t>(n_rows));
    Gradients g;
    g.values.resize(size_t(n * F));
    g.strain.resize(size_t(n * 9 * F));
    GradientOutput out{g.values.data(), grad.data(), centers.data(), neighbors.data(), g.strain.data(), 0};
    if (table != nullptr)
        table->acsf_gradients(acsf.tables(), s, nl, rows, out, false);
    else
        acsf.gradients(s, nl, rows, out, false);
    g.dense.assign(size_t(n * n * 3 * F), 0.0);
    for (int64_t r = 0; r < n_rows; ++r)
        for (int64_t k = 0; k < 3 * F; ++k)
            g.dense[size_t((centers[r] * n + neighbors[r]) * 3 * F + k)] += grad[size_t(r * 3 * F + k)];
    return g;
}

double max_abs(const std::vector<double>& v) {
    double m = 0.0;
    for (double x : v) m = std::max(m, std::abs(x));
    return m;
}

/// max |a - b| / max |b|.
double relative_difference(const std::vector<double>& a, const std::vector<double>& b) {
    double d = 0.0;
    for (size_t k = 0; k < a.size(); ++k) d = std::max(d, std::abs(a[k] - b[k]));
    return d / std::max(max_abs(b), 1e-300);
}

}  // namespace

// ---------------------------------------------------------------- neighbor list
TEST_CASE(neighbor_list_matches_brute_force) {
    for (bool shear : {false, true})
        for (double cutoff : {3.0, 6.5}) {  // 6.5 Å > half the cell: several images of each neighbor
            const Crystal c = diamond(1, 1, 0.1, 3, shear);
            const StructureView s = c.view();
            const NeighborList nl = build_neighbor_list(s, cutoff, false, true);
            using Pair = std::tuple<int64_t, int64_t, int, int, int>;
            std::vector<Pair> got, want;
            for (int64_t i = 0; i < s.n_atoms; ++i)
                for (int64_t p = nl.offsets[i]; p < nl.offsets[i + 1]; ++p) {
                    got.emplace_back(i, nl.neighbor[p], nl.shift[3 * p], nl.shift[3 * p + 1], nl.shift[3 * p + 2]);
                    double v[3];
                    for (int k = 0; k < 3; ++k)
                        v[k] = c.positions[3 * nl.neighbor[p] + k] - c.positions[3 * i + k] +
                               nl.shift[3 * p] * c.cell[k] + nl.shift[3 * p + 1] * c.cell[3 + k] +
                               nl.shift[3 * p + 2] * c.cell[6 + k];
                    for (int k = 0; k < 3; ++k) CHECK_CLOSE(nl.vector[3 * p + k], v[k], 1e-12);
                    CHECK_CLOSE(nl.distance[p], std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]), 1e-12);
                }
            const int N = 4;  // enough images for 6.5 Å in these cells
            for (int64_t i = 0; i < s.n_atoms; ++i)
                for (int64_t j = 0; j < s.n_atoms; ++j)
                    for (int a = -N; a <= N; ++a)
                        for (int b = -N; b <= N; ++b)
                            for (int d = -N; d <= N; ++d) {
                                double v[3], r2 = 0.0;
                                for (int k = 0; k < 3; ++k) {
                                    v[k] = c.positions[3 * j + k] - c.positions[3 * i + k] + a * c.cell[k] +
                                           b * c.cell[3 + k] + d * c.cell[6 + k];
                                    r2 += v[k] * v[k];
                                }
                                if (r2 > 0.0 && r2 < cutoff * cutoff) want.emplace_back(i, j, a, b, d);
                            }
            std::sort(got.begin(), got.end());
            std::sort(want.begin(), want.end());
            CHECK(got == want);
        }
}

TEST_CASE(neighbor_list_open_boundaries) {
    Crystal c = diamond(1, 1, 0.1, 5);
    c.pbc = {false, false, false};
    const NeighborList nl = build_neighbor_list(c.view(), 3.0, false, true);
    int64_t want = 0;
    for (int64_t i = 0; i < 8; ++i)
        for (int64_t j = 0; j < 8; ++j) {
            double r2 = 0.0;
            for (int k = 0; k < 3; ++k) r2 += std::pow(c.positions[3 * j + k] - c.positions[3 * i + k], 2);
            want += (i != j && r2 < 9.0) ? 1 : 0;
        }
    CHECK(nl.n_pairs() == want);
}

// ---------------------------------------------------------------- values
TEST_CASE(values_match_scalar_reference) {
    for (CutoffFunction fc : {CutoffFunction::Cosine, CutoffFunction::Polynomial})
        for (int32_t ns : {1, 2})
            for (bool shear : {false, true}) {
                const Crystal c = diamond(1, ns, 0.15, 11, shear);
                const Acsf acsf(make_spec(ns, 5.5, fc));
                const NeighborList nl = build_neighbor_list(c.view(), 5.5, false, false);
                const std::vector<double> want = reference_values(acsf.spec(), c.view(), nl);
                const std::vector<double> got = compute_values(acsf, c);
                CHECK(got.size() == want.size());
                CHECK(relative_difference(got, want) < 1e-13);
                CHECK(max_abs(want) > 0.1);  // the reference is not trivially zero
            }
}

// ---------------------------------------------------------------- gradients
TEST_CASE(gradients_match_finite_differences) {
    for (CutoffFunction fc : {CutoffFunction::Cosine, CutoffFunction::Polynomial}) {
        const Crystal c = diamond(1, 2, 0.15, 17, true);
        const Acsf acsf(make_spec(2, 4.5, fc));
        const Gradients g = compute_gradients(acsf, c);
        CHECK(relative_difference(g.values, compute_values(acsf, c)) < 1e-13);
        const int64_t n = int64_t(c.species.size()), F = acsf.n_features();
        const double h = 1e-5;
        double worst = 0.0;
        for (int64_t j = 0; j < n; ++j)
            for (int k = 0; k < 3; ++k) {
                Crystal plus = c, minus = c;
                plus.positions[size_t(3 * j + k)] += h;
                minus.positions[size_t(3 * j + k)] -= h;
                const std::vector<double> gp = compute_values(acsf, plus), gm = compute_values(acsf, minus);
                for (int64_t i = 0; i < n; ++i)
                    for (int64_t f = 0; f < F; ++f) {
                        const double fd = (gp[size_t(i * F + f)] - gm[size_t(i * F + f)]) / (2 * h);
                        const double an = g.dense[size_t(((i * n + j) * 3 + k) * F + f)];
                        worst = std::max(worst, std::abs(fd - an));
                    }
            }
        CHECK(worst < 1e-7 * std::max(1.0, max_abs(g.dense)));
        CHECK(max_abs(g.dense) > 1e-2);
    }
}

TEST_CASE(strain_gradient_matches_finite_differences) {
    const Crystal c = diamond(1, 1, 0.15, 23, true);
    const Acsf acsf(make_spec(1, 4.5));
    const Gradients g = compute_gradients(acsf, c);
    const int64_t n = int64_t(c.species.size()), F = acsf.n_features();
    const double h = 1e-6;
    double worst = 0.0;
    for (int a = 0; a < 3; ++a)
        for (int b = 0; b < 3; ++b) {
            // positions and cell rows x -> x (1 + eps), eps = +-h e_a e_b^T
            auto strained = [&](double e) {
                Crystal s = c;
                for (int64_t i = 0; i < n + 3; ++i) {
                    double* x = i < n ? &s.positions[size_t(3 * i)] : &s.cell[size_t(3 * (i - n))];
                    x[b] += e * x[a];
                }
                return compute_values(acsf, s);
            };
            const std::vector<double> gp = strained(h), gm = strained(-h);
            for (int64_t i = 0; i < n; ++i)
                for (int64_t f = 0; f < F; ++f) {
                    const double fd = (gp[size_t(i * F + f)] - gm[size_t(i * F + f)]) / (2 * h);
                    worst = std::max(worst, std::abs(fd - g.strain[size_t(((i * 3 + a) * 3 + b) * F + f)]));
                }
        }
    CHECK(worst < 1e-6 * std::max(1.0, max_abs(g.strain)));
}

// ---------------------------------------------------------------- fused VJP
TEST_CASE(fused_forces_virial_match_sparse_gradients) {
    // zetas 0: one non-integer (the chunked loops); 1: integers (the fused SIMD pass with
    // products of rungs); 2: powers of two (the fused pass contracting over rungs)
    for (int zetas = 0; zetas < 3; ++zetas)
        for (CutoffFunction fc : {CutoffFunction::Cosine, CutoffFunction::Polynomial}) {
            const Crystal c = diamond(2, 2, 0.1, 29, true);  // 64 atoms: several chunks of pairs
            AcsfSpec spec = make_spec(2, 5.0, fc);
            if (zetas >= 1) spec.g5[2].zeta = 3.0;
            if (zetas == 2) spec.g4[3].zeta = 8.0, spec.g5[2].zeta = 4.0;
            const Acsf acsf(spec);
            const StructureView s = c.view();
            const int64_t n = s.n_atoms, F = acsf.n_features(), K = 3;
            std::mt19937 gen(1);
            std::normal_distribution<double> normal;
            std::vector<double> w(size_t(K * n * F));
            for (double& x : w) x = normal(gen);
            for (int64_t f = 0; f < F; f += 3) w[size_t(n * F + f)] = 0.0;  // rhs 1: some weights exactly zero
            const NeighborList nl = build_neighbor_list(s, 5.0, false, true);
            std::vector<double> forces(size_t(K * 3 * n)), virial(size_t(K * 9));
            acsf.forces_virial(s, nl, w.data(), forces.data(), virial.data(), false, VjpRhs{K, n * F, 3 * n, 9});
            const Gradients g = compute_gradients(acsf, c);
            for (int64_t r = 0; r < K; ++r) {
                std::vector<double> want_f(size_t(3 * n), 0.0), want_v(9, 0.0);
                const double* wr = &w[size_t(r * n * F)];
                for (int64_t i = 0; i < n; ++i)
                    for (int64_t j = 0; j < n; ++j)
                        for (int k = 0; k < 3; ++k)
                            for (int64_t f = 0; f < F; ++f)
                                want_f[size_t(3 * j + k)] -=
                                    wr[i * F + f] * g.dense[size_t(((i * n + j) * 3 + k) * F + f)];
                for (int64_t i = 0; i < n; ++i)
                    for (int ab = 0; ab < 9; ++ab)
                        for (int64_t f = 0; f < F; ++f)
                            want_v[size_t(ab)] -= wr[i * F + f] * g.strain[size_t((i * 9 + ab) * F + f)];
                const std::vector<double> got_f(forces.begin() + 3 * n * r, forces.begin() + 3 * n * (r + 1));
                const std::vector<double> got_v(virial.begin() + 9 * r, virial.begin() + 9 * (r + 1));
                CHECK(relative_difference(got_f, want_f) < 1e-12);
                CHECK(relative_difference(got_v, want_v) < 1e-12);
            }
        }
}

// ---------------------------------------------------------------- kernel variants
TEST_CASE(every_variant_agrees_with_the_selected_one) {
    const Crystal c = diamond(2, 2, 0.1, 31, true);
    for (CutoffFunction fc : {CutoffFunction::Cosine, CutoffFunction::Polynomial}) {
        const Acsf acsf(make_spec(2, 5.5, fc));
        const StructureView s = c.view();
        const int64_t n = s.n_atoms, F = acsf.n_features();
        std::vector<double> w(size_t(n * F));
        std::mt19937 gen(2);
        std::normal_distribution<double> normal;
        for (double& x : w) x = normal(gen);
        const NeighborList nl = build_neighbor_list(s, 5.5, false, true);
        auto run = [&](const KernelTable& k) {
            std::vector<double> values(size_t(n * F)), forces(size_t(3 * n)), virial(9);
            k.acsf_values(acsf.tables(), s, nl, values.data(), false);
            k.acsf_forces_virial(acsf.tables(), s, nl, w.data(), forces.data(), virial.data(), false, VjpRhs{});
            const Gradients g = compute_gradients(acsf, c, &k);
            return std::vector<std::vector<double>>{values, forces, virial, g.dense, g.strain};
        };
        const auto want = run(kernels());
        int compared = 0;
        for (const std::string& name : kernel_variants()) {
            const KernelTable* k = find_kernel(name);
            CHECK(k != nullptr);
            if (k == nullptr || k->isa > cpu_isa()) continue;
            const auto got = run(*k);
            for (size_t a = 0; a < want.size(); ++a) {
                const double d = relative_difference(got[a], want[a]);
                if (!(d <= 1e-14))
                    check::fail(__FILE__, __LINE__,
                                name + " vs " + kernels().name + ": array " + std::to_string(a) + " differs by " +
                                    std::to_string(d / 1e-14) + "e-14 of its largest magnitude");
            }
            ++compared;
        }
        CHECK(compared >= 1);
    }
    CHECK(find_kernel("no-such-variant") == nullptr);
    CHECK(std::string(kernels().simd).size() > 0);
}

// ---------------------------------------------------------------- forces from a stored Jacobian
/// A padded Jacobian of `sizes` structures (atoms consecutive), random rows and a random
/// number of rows per center, targets inside each center's structure.
template <class T>
struct RandomJacobian {
    std::vector<T> rows;
    std::vector<int64_t> targets, structure_of;
    PaddedJacobian<T> view;

    RandomJacobian(const std::vector<int64_t>& sizes, int64_t max_rows, int64_t F, unsigned seed) {
        std::mt19937 gen(seed);
        std::normal_distribution<double> normal;
        int64_t n_all = 0;
        std::vector<int64_t> first;
        for (int64_t k = 0; k < int64_t(sizes.size()); ++k) {
            first.push_back(n_all);
            for (int64_t a = 0; a < sizes[size_t(k)]; ++a) structure_of.push_back(k);
            n_all += sizes[size_t(k)];
        }
        rows.assign(size_t(n_all * max_rows * 3 * F), T(0));
        targets.assign(size_t(n_all * max_rows), n_all);
        for (int64_t c = 0; c < n_all; ++c) {
            const int64_t k = structure_of[size_t(c)], m = int64_t(gen() % uint64_t(max_rows + 1));
            for (int64_t r = 0; r < m; ++r) {
                targets[size_t(c * max_rows + r)] = first[size_t(k)] + int64_t(gen() % uint64_t(sizes[size_t(k)]));
                for (int64_t e = 0; e < 3 * F; ++e) rows[size_t((c * max_rows + r) * 3 * F + e)] = T(normal(gen));
            }
        }
        view.rows = rows.data(), view.targets = targets.data();
        view.n_all = n_all, view.max_rows = max_rows, view.n_features = F;
    }
};

/// forces (K, n, 3) by the definition, in double.
template <class T>
std::vector<double> plain_jacobian_forces(const PaddedJacobian<T>& J, const std::vector<int64_t>& atoms,
                                          const std::vector<T>& g, int64_t K) {
    const int64_t n = int64_t(atoms.size()), F = J.n_features, M = J.max_rows;
    std::vector<double> out(size_t(K * n * 3), 0.0);
    for (int64_t a = 0; a < n; ++a)
        for (int64_t r = 0; r < M; ++r) {
            const int64_t j = J.targets[atoms[size_t(a)] * M + r];
            if (j == J.n_all) break;
            const int64_t local = a + j - atoms[size_t(a)];
            for (int64_t k = 0; k < K; ++k)
                for (int x = 0; x < 3; ++x) {
                    double s = 0.0;
                    for (int64_t f = 0; f < F; ++f)
                        s += double(J.rows[((atoms[size_t(a)] * M + r) * 3 + x) * F + f]) *
                             double(g[size_t((k * n + a) * F + f)]);
                    out[size_t((k * n + local) * 3 + x)] -= s;
                }
        }
    return out;
}

/// virials (K, S, 9) = −Σ_{a in s} strain[atoms[a]] · g[k, a] by the definition, in double.
template <class T>
std::vector<double> plain_strain_virials(const std::vector<T>& strain, const std::vector<int64_t>& atoms,
                                         const std::vector<int64_t>& structure, int64_t S, const std::vector<T>& g,
                                         int64_t K, int64_t F) {
    const int64_t n = int64_t(atoms.size());
    std::vector<double> out(size_t(K * S * 9), 0.0);
    for (int64_t a = 0; a < n; ++a)
        for (int64_t k = 0; k < K; ++k)
            for (int q = 0; q < 9; ++q) {
                double s = 0.0;
                for (int64_t f = 0; f < F; ++f)
                    s += double(strain[size_t((atoms[size_t(a)] * 9 + q) * F + f)]) *
                         double(g[size_t((k * n + a) * F + f)]);
                out[size_t((k * S + structure[size_t(a)]) * 9 + q)] -= s;
            }
    return out;
}

template <class T>
void check_jacobian_forces(double tol, int64_t n_features) {
    // 300 atoms: several threads; K = 5 (one block of right-hand sides) and 11 (two); 13 or 31
    // features leave every width of the VJP's feature blocks a remainder, 72 (the defaults') 8
    const RandomJacobian<T> J({40, 7, 130, 123}, 9, n_features, 5);
    const std::vector<int64_t> atoms = [] {  // structures 2, 0, 3 in that order
        std::vector<int64_t> v;
        for (int64_t c = 47; c < 177; ++c) v.push_back(c);
        for (int64_t c = 0; c < 40; ++c) v.push_back(c);
        for (int64_t c = 177; c < 300; ++c) v.push_back(c);
        return v;
    }();
    const int64_t n = int64_t(atoms.size()), F = J.view.n_features;
    std::mt19937 gen(7);
    std::normal_distribution<double> normal;
    int compared = 0;
    const int threads = get_num_threads();
    // strain rows (virials): the batch's structures 2, 0, 3 are its structures 0, 1, 2
    std::vector<T> strain(size_t(J.view.n_all * 9 * F));
    for (T& x : strain) x = T(normal(gen));
    std::vector<int64_t> structure(static_cast<size_t>(n), 0);
    for (int64_t a = 0; a < n; ++a) structure[size_t(a)] = a < 130 ? 0 : (a < 170 ? 1 : 2);
    const int64_t S = 3;
    for (int64_t K : {int64_t(1), int64_t(5), int64_t(11)}) {
        std::vector<T> g(size_t(K * n * F)), w(size_t(K * n * 3)), wv(size_t(K * S * 9));
        for (T& x : g) x = T(normal(gen));
        for (T& x : w) x = T(normal(gen));
        for (T& x : wv) x = T(normal(gen));
        const std::vector<double> want = plain_jacobian_forces(J.view, atoms, g, K);
        const std::vector<double> want_virials = plain_strain_virials(strain, atoms, structure, S, g, K, F);
        for (const std::string& name : kernel_variants()) {
            const KernelTable* k = find_kernel(name);
            if (k == nullptr || k->isa > cpu_isa()) continue;
            for (bool parallel : {false, true})
                for (bool with_strain : {false, true}) {
                    set_num_threads(parallel ? 3 : 1);  // per-thread buffers summed, whatever OMP_NUM_THREADS says
                    StrainJacobian<T> st;
                    if (with_strain) st.rows = strain.data(), st.structure = structure.data(), st.n_structures = S;
                    std::vector<T> forces(size_t(K * n * 3)), vjp(size_t(K * n * F)), virials(size_t(K * S * 9));
                    if constexpr (std::is_same_v<T, float>) {
                        k->jacobian_forces_f32(J.view, atoms.data(), n, g.data(), K, forces.data(), parallel, st,
                                               virials.data());
                        k->jacobian_vjp_f32(J.view, atoms.data(), n, w.data(), K, vjp.data(), parallel, st, wv.data());
                    } else {
                        k->jacobian_forces_f64(J.view, atoms.data(), n, g.data(), K, forces.data(), parallel, st,
                                               virials.data());
                        k->jacobian_vjp_f64(J.view, atoms.data(), n, w.data(), K, vjp.data(), parallel, st, wv.data());
                    }
                    const std::string what = name + " K=" + std::to_string(K) + (with_strain ? " with strain" : "");
                    const std::vector<double> got(forces.begin(), forces.end());
                    const double d = relative_difference(got, want);
                    if (!(d <= tol)) check::fail(__FILE__, __LINE__, what + ": forces differ by " + std::to_string(d));
                    if (with_strain) {
                        const double dv =
                            relative_difference(std::vector<double>(virials.begin(), virials.end()), want_virials);
                        if (!(dv <= tol))
                            check::fail(__FILE__, __LINE__, what + ": virials differ by " + std::to_string(dv));
                    }
                    // the VJP is the adjoint: <forces(g), w> (+ <virials(g), wv>) = <g, vjp(w, wv)>
                    double lhs = 0.0, rhs = 0.0, scale = 0.0;
                    for (size_t e = 0; e < w.size(); ++e)
                        lhs += want[e] * double(w[e]), scale += std::abs(want[e] * double(w[e]));
                    if (with_strain)
                        for (size_t e = 0; e < wv.size(); ++e)
                            lhs += want_virials[e] * double(wv[e]), scale += std::abs(want_virials[e] * double(wv[e]));
                    for (size_t e = 0; e < g.size(); ++e) rhs += double(g[e]) * double(vjp[e]);
                    if (!(std::abs(lhs - rhs) <= tol * scale))
                        check::fail(__FILE__, __LINE__, what + ": VJP is not the adjoint");
                    ++compared;
                }
        }
    }
    set_num_threads(threads);
    CHECK(compared >= 12);
    // through the public entry point, which validates first
    std::vector<T> g(size_t(5 * n * F), T(0.5)), forces(size_t(5 * n * 3));
    jacobian_forces(J.view, atoms.data(), n, g.data(), 5, forces.data());
    CHECK(relative_difference(std::vector<double>(forces.begin(), forces.end()),
                              plain_jacobian_forces(J.view, atoms, g, 5)) <= tol);
    const std::vector<int64_t> part(atoms.begin(), atoms.begin() + 100);  // 100 of structure 2's 130 atoms
    CHECK_THROWS(InvalidInput, jacobian_forces(J.view, part.data(), 100, g.data(), 5, forces.data()),
                 "outside the batch");
    std::vector<int64_t> far = atoms;
    far[3] = 300;
    CHECK_THROWS(InvalidInput, jacobian_forces(J.view, far.data(), n, g.data(), 5, forces.data()), "outside [0, 300)");
    CHECK_THROWS(InvalidInput, jacobian_forces_vjp(J.view, atoms.data(), n, g.data(), 0, forces.data()), "K >= 1");
    std::vector<T> virials(size_t(5 * S * 9));
    StrainJacobian<T> st{strain.data(), structure.data(), S};
    jacobian_forces(J.view, atoms.data(), n, g.data(), 5, forces.data(), true, st, virials.data());
    CHECK(relative_difference(std::vector<double>(virials.begin(), virials.end()),
                              plain_strain_virials(strain, atoms, structure, S, g, 5, F)) <= tol);
    CHECK_THROWS(InvalidInput, jacobian_forces(J.view, atoms.data(), n, g.data(), 5, forces.data(), true, st, nullptr),
                 "need the atoms' structures and virials");
    CHECK_THROWS(InvalidInput, jacobian_forces(J.view, atoms.data(), 0, g.data(), 5, forces.data(), true, st, nullptr),
                 "need the atoms' structures and virials");  // no atoms, yet virials of S structures to write
    std::vector<int64_t> wrong = structure;
    wrong[7] = 3;
    st.structure = wrong.data();
    CHECK_THROWS(InvalidInput,
                 jacobian_forces(J.view, atoms.data(), n, g.data(), 5, forces.data(), true, st, virials.data()),
                 "in structure 3, outside [0, 3)");
}

TEST_CASE(jacobian_forces_match_the_definition_in_every_variant) {
    for (int64_t F : {13, 31, 72}) {
        check_jacobian_forces<double>(1e-13, F);
        check_jacobian_forces<float>(2e-5, F);
    }
}

// ---------------------------------------------------------------- the committee's networks
/// A random stacked MLP (K members, layer widths `sizes`) that owns its arrays.
template <class T>
struct RandomMlp {
    std::vector<int64_t> sizes;
    std::vector<std::vector<T>> w, b;
    std::vector<const T*> pw, pb;
    StackedMlp<T> view;

    RandomMlp(int64_t K, std::vector<int64_t> sizes_, MlpActivation act, unsigned seed) : sizes(std::move(sizes_)) {
        std::mt19937 gen(seed);
        std::normal_distribution<double> normal;
        for (size_t l = 0; l + 1 < sizes.size(); ++l) {
            w.emplace_back(size_t(K * sizes[l] * sizes[l + 1]));
            b.emplace_back(size_t(K * sizes[l + 1]));
            for (T& x : w.back()) x = T(normal(gen) / std::sqrt(double(sizes[l])));
            for (T& x : b.back()) x = T(0.5 * normal(gen));
        }
        for (size_t l = 0; l < w.size(); ++l) pw.push_back(w[l].data()), pb.push_back(b[l].data());
        view.n_members = K, view.n_layers = int64_t(w.size()), view.sizes = sizes.data();
        view.weights = pw.data(), view.biases = pb.data(), view.activation = act;
    }
};

double plain_activation(MlpActivation act, double z) {
    switch (act) {
        case MlpActivation::tanh: return std::tanh(z);
        case MlpActivation::silu: return z / (1.0 + std::exp(-z));
        case MlpActivation::softplus: return z > 20.0 ? z : std::log1p(std::exp(z));
        case MlpActivation::celu: return z > 0.0 ? z : std::expm1(z);
    }
    return 0.0;
}

/// Member k's output on one atom's x by the definition, in double.
template <class T>
double plain_mlp(const RandomMlp<T>& net, int64_t k, const std::vector<double>& x) {
    std::vector<double> a = x;
    const size_t L = net.w.size();
    for (size_t l = 0; l < L; ++l) {
        const int64_t r = net.sizes[l], c = net.sizes[l + 1];
        std::vector<double> z(static_cast<size_t>(c), 0.0);
        for (int64_t j = 0; j < c; ++j) {
            double s = double(net.b[l][size_t(k * c + j)]);
            for (int64_t i = 0; i < r; ++i) s += a[size_t(i)] * double(net.w[l][size_t((k * r + i) * c + j)]);
            z[size_t(j)] = l + 1 < L ? plain_activation(net.view.activation, s) : s;
        }
        a = z;
    }
    return a[0];
}

constexpr size_t kMlpFdStride = 3;  // the VJP's finite differences: every third weight and bias

std::vector<double> sampled(const std::vector<double>& v) {
    std::vector<double> out;
    for (size_t e = 0; e < v.size(); e += kMlpFdStride) out.push_back(v[e]);
    return out;
}

TEST_CASE(mlp_matches_the_definition_and_finite_differences_in_every_variant) {
    // the outputs against the definition; the input gradient and the VJP in every weight and bias
    // against central differences of the definition (double; the VJP's loss holds the input
    // gradient by central differences too, hence 1e-5), float against double; 11 atoms: a full
    // block and a padded one. Then 300 atoms on three threads against one thread.
    const int64_t K = 3, n = 11;
    const int threads = get_num_threads();
    int compared = 0;
    for (MlpActivation act : {MlpActivation::tanh, MlpActivation::silu, MlpActivation::softplus, MlpActivation::celu})
        for (const std::vector<int64_t>& sizes : {std::vector<int64_t>{13, 12, 10, 1}, std::vector<int64_t>{7, 9, 1}}) {
            RandomMlp<double> net(K, sizes, act, 11);
            const int64_t F = sizes[0];
            std::mt19937 gen(3);
            std::normal_distribution<double> normal;
            std::vector<double> x(size_t(n * F)), g_out(size_t(K * n)), g_grad(size_t(K * n * F));
            for (double& v : x) v = 1.5 * normal(gen);
            for (double& v : g_out) v = normal(gen);
            for (double& v : g_grad) v = normal(gen);
            auto atom = [&](int64_t a) { return std::vector<double>(x.begin() + a * F, x.begin() + (a + 1) * F); };
            const double h = 1e-5;
            // loss(θ) = Σ g_out · out + Σ g_grad · d out / dx, the input gradient by central differences
            auto loss = [&](const RandomMlp<double>& m) {
                double s = 0.0;
                for (int64_t k = 0; k < K; ++k)
                    for (int64_t a = 0; a < n; ++a) {
                        std::vector<double> xa = atom(a);
                        s += g_out[size_t(k * n + a)] * plain_mlp(m, k, xa);
                        for (int64_t f = 0; f < F; ++f) {
                            std::vector<double> xp = xa, xm = xa;
                            xp[size_t(f)] += h, xm[size_t(f)] -= h;
                            s += g_grad[size_t((k * n + a) * F + f)] * (plain_mlp(m, k, xp) - plain_mlp(m, k, xm)) /
                                 (2 * h);
                        }
                    }
                return s;
            };
            std::vector<double> want_out(size_t(K * n)), want_grad(size_t(K * n * F));
            for (int64_t k = 0; k < K; ++k)
                for (int64_t a = 0; a < n; ++a) {
                    std::vector<double> xa = atom(a);
                    want_out[size_t(k * n + a)] = plain_mlp(net, k, xa);
                    for (int64_t f = 0; f < F; ++f) {
                        std::vector<double> xp = xa, xm = xa;
                        xp[size_t(f)] += h, xm[size_t(f)] -= h;
                        want_grad[size_t((k * n + a) * F + f)] =
                            (plain_mlp(net, k, xp) - plain_mlp(net, k, xm)) / (2 * h);
                    }
                }
            std::vector<std::vector<double>> want_gw, want_gb;  // d loss / dθ by central differences
            const double h2 = 1e-4;
            for (size_t l = 0; l < net.w.size(); ++l) {
                want_gw.emplace_back(net.w[l].size()), want_gb.emplace_back(net.b[l].size());
                for (auto [p, out] : {std::pair{&net.w[l], &want_gw.back()}, std::pair{&net.b[l], &want_gb.back()}})
                    for (size_t e = 0; e < p->size(); e += kMlpFdStride) {
                        const double keep = (*p)[e];
                        (*p)[e] = keep + h2;
                        const double up = loss(net);
                        (*p)[e] = keep - h2;
                        const double down = loss(net);
                        (*p)[e] = keep;
                        (*out)[e] = (up - down) / (2 * h2);
                    }
            }
            RandomMlp<float> netf(K, sizes, act, 11);
            std::vector<float> xf(x.begin(), x.end()), gof(g_out.begin(), g_out.end()),
                ggf(g_grad.begin(), g_grad.end());
            for (const std::string& name : kernel_variants()) {
                const KernelTable* kt = find_kernel(name);
                if (kt == nullptr || kt->isa > cpu_isa()) continue;
                {
                    const bool parallel = false;
                    const std::string what = name + " activation " + std::to_string(int(act)) + " layers " +
                                             std::to_string(sizes.size() - 1);
                    std::vector<double> out(size_t(K * n)), grad(size_t(K * n * F));
                    kt->mlp_f64(net.view, x.data(), n, false, out.data(), grad.data(), parallel);
                    if (!(relative_difference(out, want_out) <= 1e-13))
                        check::fail(__FILE__, __LINE__, what + ": outputs differ from the definition");
                    if (!(relative_difference(grad, want_grad) <= 1e-8))
                        check::fail(__FILE__, __LINE__, what + ": input gradient differs from finite differences");
                    std::vector<std::vector<double>> gw, gb;
                    std::vector<double*> pgw, pgb;
                    for (size_t l = 0; l < net.w.size(); ++l)
                        gw.emplace_back(net.w[l].size()), gb.emplace_back(net.b[l].size());
                    for (size_t l = 0; l < net.w.size(); ++l) pgw.push_back(gw[l].data()), pgb.push_back(gb[l].data());
                    kt->mlp_vjp_f64(net.view, x.data(), n, false, g_out.data(), g_grad.data(), pgw.data(), pgb.data(),
                                    parallel);
                    for (size_t l = 0; l < net.w.size(); ++l)
                        if (!(relative_difference(sampled(gw[l]), sampled(want_gw[l])) <= 1e-5 &&
                              relative_difference(sampled(gb[l]), sampled(want_gb[l])) <= 1e-5))
                            check::fail(__FILE__, __LINE__,
                                        what + ": VJP of layer " + std::to_string(l) +
                                            " differs from finite differences by " +
                                            std::to_string(relative_difference(sampled(gw[l]), sampled(want_gw[l]))));
                    // float: the same numbers to float precision
                    std::vector<float> outf(out.size()), gradf(grad.size());
                    kt->mlp_f32(netf.view, xf.data(), n, false, outf.data(), gradf.data(), parallel);
                    if (!(relative_difference(std::vector<double>(outf.begin(), outf.end()), out) <= 1e-5 &&
                          relative_difference(std::vector<double>(gradf.begin(), gradf.end()), grad) <= 1e-5))
                        check::fail(__FILE__, __LINE__, what + ": float forward differs from double");
                    std::vector<std::vector<float>> gwf, gbf;
                    std::vector<float*> pgwf, pgbf;
                    for (size_t l = 0; l < net.w.size(); ++l)
                        gwf.emplace_back(gw[l].size()), gbf.emplace_back(gb[l].size());
                    for (size_t l = 0; l < net.w.size(); ++l)
                        pgwf.push_back(gwf[l].data()), pgbf.push_back(gbf[l].data());
                    kt->mlp_vjp_f32(netf.view, xf.data(), n, false, gof.data(), ggf.data(), pgwf.data(), pgbf.data(),
                                    parallel);
                    for (size_t l = 0; l < net.w.size(); ++l)
                        if (!(relative_difference(std::vector<double>(gwf[l].begin(), gwf[l].end()), gw[l]) <= 1e-4 &&
                              relative_difference(std::vector<double>(gbf[l].begin(), gbf[l].end()), gb[l]) <= 1e-4))
                            check::fail(__FILE__, __LINE__, what + ": float VJP differs from double");
                    ++compared;
                }
            }
        }
    CHECK(compared >= 8);
    // threads: per-thread weight gradients summed, the same numbers as one thread
    for (const std::string& name : kernel_variants()) {
        const KernelTable* kt = find_kernel(name);
        if (kt == nullptr || kt->isa > cpu_isa()) continue;
        RandomMlp<double> net(4, {13, 12, 10, 1}, MlpActivation::silu, 5);
        const int64_t big = 300, F = 13;
        std::mt19937 gen(9);
        std::normal_distribution<double> normal;
        std::vector<double> x(size_t(big * F)), go(size_t(4 * big)), gg(size_t(4 * big * F));
        for (auto* v : {&x, &go, &gg})
            for (double& e : *v) e = normal(gen);
        std::vector<std::vector<double>> results;
        for (int nt : {1, 3}) {
            set_num_threads(nt);
            std::vector<double> out(size_t(4 * big)), grad(size_t(4 * big * F));
            kt->mlp_f64(net.view, x.data(), big, false, out.data(), grad.data(), true);
            std::vector<std::vector<double>> gw, gb;
            std::vector<double*> pgw, pgb;
            for (size_t l = 0; l < net.w.size(); ++l)
                gw.emplace_back(net.w[l].size()), gb.emplace_back(net.b[l].size());
            for (size_t l = 0; l < net.w.size(); ++l) pgw.push_back(gw[l].data()), pgb.push_back(gb[l].data());
            kt->mlp_vjp_f64(net.view, x.data(), big, false, go.data(), gg.data(), pgw.data(), pgb.data(), true);
            std::vector<double> all = out;
            all.insert(all.end(), grad.begin(), grad.end());
            for (size_t l = 0; l < gw.size(); ++l) all.insert(all.end(), gw[l].begin(), gw[l].end());
            for (size_t l = 0; l < gb.size(); ++l) all.insert(all.end(), gb[l].begin(), gb[l].end());
            results.push_back(all);
        }
        if (!(relative_difference(results[1], results[0]) <= 1e-13))
            check::fail(__FILE__, __LINE__, name + ": three threads differ from one");
    }
    set_num_threads(threads);
    // through the public entry point, which validates first
    RandomMlp<double> net(2, {4, 3, 1}, MlpActivation::silu, 1);
    std::vector<double> x(8, 0.5), out(4), grad(16);
    mlp_value_and_input_gradient(net.view, x.data(), 2, false, out.data(), grad.data());
    CHECK(std::abs(out[0] - plain_mlp(net, 0, {0.5, 0.5, 0.5, 0.5})) < 1e-14);
    net.sizes[2] = 2;
    CHECK_THROWS(InvalidInput, mlp_value_and_input_gradient(net.view, x.data(), 2, false, out.data(), grad.data()),
                 "one output, not 2");
    net.sizes[2] = 1, net.view.n_layers = 1;
    CHECK_THROWS(InvalidInput, mlp_value_and_input_gradient(net.view, x.data(), 2, false, out.data(), grad.data()),
                 "at least one hidden layer");
}

// ---------------------------------------------------------------- input validation
TEST_CASE(bad_input_is_refused_with_a_reason) {
    AcsfSpec spec = make_spec(1, 5.0);
    spec.cutoff = -1.0;
    CHECK_THROWS(InvalidInput, Acsf(spec), "cutoff");
    spec = make_spec(1, 5.0);
    spec.g4[0].zeta = 0.5;
    CHECK_THROWS(InvalidInput, Acsf(spec), "zeta must be >= 1");
    spec = make_spec(1, 5.0);
    spec.g4[0].rs2 = 3.0;  // two windows are G5's only
    CHECK_THROWS(InvalidInput, Acsf(spec), "two windows");
    spec = make_spec(1, 5.0);
    spec.g5[0].lambda = 2.0;
    CHECK_THROWS(InvalidInput, Acsf(spec), "lambda");
    spec = make_spec(1, 5.0);
    spec.g2[0].eta = std::nan("");
    CHECK_THROWS(InvalidInput, Acsf(spec), "g2");
    spec = make_spec(1, 5.0);
    spec.g2.clear(), spec.g4.clear(), spec.g5.clear();
    CHECK_THROWS(InvalidInput, Acsf(spec), "no symmetry functions");

    const Acsf acsf(make_spec(2, 4.0));
    Crystal c = diamond(1, 2, 0.05, 41);
    NeighborList nl = build_neighbor_list(c.view(), 4.0, false, true);
    std::vector<double> out(size_t(8 * acsf.n_features())), w(out.size(), 0.1), forces(24), virial(9);

    Crystal bad = c;
    bad.positions[4] = std::nan("");
    CHECK_THROWS(InvalidInput, build_neighbor_list(bad.view(), 4.0, false, true), "not finite");
    CHECK_THROWS(InvalidInput, acsf.values(bad.view(), nl, out.data(), false), "not finite");
    bad = c;
    bad.species[3] = 2;
    CHECK_THROWS(InvalidInput, acsf.values(bad.view(), nl, out.data(), false), "species index 2");
    bad = c;
    bad.positions[3] = bad.positions[0], bad.positions[4] = bad.positions[1], bad.positions[5] = bad.positions[2];
    CHECK_THROWS(InvalidInput, build_neighbor_list(bad.view(), 4.0, false, true), "overlap");
    bad = c;
    bad.cell = {5.0, 0, 0, 5.0, 0, 0, 0, 0, 5.0};
    CHECK_THROWS(InvalidInput, build_neighbor_list(bad.view(), 4.0, false, true), "volume");

    const Crystal bigger = diamond(2, 2, 0.05, 41);  // a list built for another structure
    CHECK_THROWS(InvalidInput, acsf.values(bigger.view(), nl, out.data(), false), "neighbor list was built for 8");
    CHECK_THROWS(InvalidInput, acsf.values(c.view(), nl, nullptr, false), "null pointer");

    w[5] = std::numeric_limits<double>::infinity();
    CHECK_THROWS(InvalidInput, acsf.forces_virial(c.view(), nl, w.data(), forces.data(), virial.data(), false),
                 "dE/dG contains NaN or inf");
    w[5] = 0.1;
    CHECK_THROWS(InvalidInput,
                 acsf.forces_virial(c.view(), nl, w.data(), forces.data(), virial.data(), false, VjpRhs{0, 0, 0, 0}),
                 "at least one right-hand side");
    const std::vector<int64_t> rows(9, 0);
    std::vector<double> g(1), strain(1);
    std::vector<int64_t> idx(1);
    GradientOutput go{out.data(), g.data(), idx.data(), idx.data(), strain.data(), 0};
    CHECK_THROWS(InvalidInput, acsf.gradients(c.view(), nl, rows, go, false), "gradient rows");
    if (find_kernel("avx512") != nullptr)
        CHECK_THROWS(InvalidInput, select_kernel_variant("avx512", kIsaBaseline), "does not support");
    CHECK_THROWS(InvalidInput, select_kernel_variant("sse9", kIsaAvx512), "not a kernel variant");
}

int main(int argc, char** argv) {
    std::string variants;
    for (const std::string& v : kernel_variants()) variants += " " + v;
    std::fprintf(stderr, "kernel variant %s (SIMD backend %s); compiled:%s\n", kernels().name, kernels().simd,
                 variants.c_str());
    return check::run_all(argc, argv);
}
