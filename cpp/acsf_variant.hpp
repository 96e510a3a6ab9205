// The per-structure loops of the ACSF kernel (OpenMP over centers) and the variant's
// table of entry points (dispatch.hpp; with jacobian_kernel.hpp's contraction and
// mlp_kernel.hpp's networks). Included once, by the variant's TU
// (kernel_baseline.cpp, kernel_avx2.cpp, kernel_avx512.cpp), after kernel_variant.hpp's
// configuration.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "acsf_kernel.hpp"
#include "acsf_values.hpp"
#include "acsf_vjp.hpp"
#include "dispatch.hpp"
#include "jacobian_kernel.hpp"
#include "kernel_variant.hpp"
#include "mlp_kernel.hpp"
#include "parallel.hpp"

ALIP_KERNEL_BEGIN

void acsf_values(const AcsfTables& tb, const StructureView& s, const NeighborList& nl, double* out, bool parallel) {
    ExceptionCollector errors;
#pragma omp parallel if (parallel && s.n_atoms >= kMinAtomsPerParallelRegion)
    {
        errors.run([&] {
            LocalNeighbors local;
            BlockScratch block;
            ValuesScratch scratch;
            ValuesMode mode;
            mode.scratch = &scratch;
#pragma omp for schedule(dynamic, 8)
            for (int64_t i = 0; i < s.n_atoms; ++i) {
                mode.g = out + i * tb.n_features;
                center(tb, s, nl, i, mode, local, block);
            }
        });
    }
    errors.rethrow();
}

/// Writes the strain gradient and the sparse rows of center i from d (m, 3, F).
void write_gradient_rows(const NeighborList& nl, int64_t i, const LocalNeighbors& L, const std::vector<double>& d,
                         int64_t F, int64_t first_row, const GradientOutput& out) {
    const int64_t m = L.m, first = nl.offsets[i], F3 = 3 * F;
    const double* v[3] = {L.x.data(), L.y.data(), L.z.data()};
    double* strain = out.strain + i * 9 * F;
    std::fill(strain, strain + 9 * F, 0.0);
    for (int64_t n = 0; n < m; ++n) {
        const double* tn = &d[size_t(n * F3)];
        for (int a = 0; a < 3; ++a)
            for (int b = 0; b < 3; ++b) {
                double* s = strain + (a * 3 + b) * F;
                const double* src = tn + b * F;
                const double va = v[a][n];
#pragma omp simd
                for (int64_t f = 0; f < F; ++f) s[f] += va * src[f];
            }
    }
    int64_t row = first_row;
    auto begin_row = [&](int64_t j) {
        double* dst = out.grad + row * F3;
        std::fill(dst, dst + F3, 0.0);
        out.centers[row] = i + out.atom_offset;
        out.neighbors[row] = j + out.atom_offset;
        return dst;
    };
    auto write_self = [&]() {
        double* dst = begin_row(i);
        for (int64_t n = 0; n < m; ++n) {
            if (nl.neighbor[L.entry[n]] == i) continue;  // own images move with i
            const double* tn = &d[size_t(n * F3)];
#pragma omp simd
            for (int64_t k = 0; k < F3; ++k) dst[k] -= tn[k];
        }
        ++row;
    };
    bool self_done = false;
    for (int64_t p = 0; p < m;) {
        const int64_t j = nl.neighbor[first + p];
        int64_t p_end = p;
        while (p_end < m && nl.neighbor[first + p_end] == j) ++p_end;
        if (!self_done && j >= i) write_self(), self_done = true;
        if (j != i) {
            double* dst = begin_row(j);
            for (int64_t q = p; q < p_end; ++q) {
                const double* tn = &d[size_t(L.local[q] * F3)];
#pragma omp simd
                for (int64_t k = 0; k < F3; ++k) dst[k] += tn[k];
            }
            ++row;
        }
        p = p_end;
    }
    if (!self_done) write_self();
}

void acsf_gradients(const AcsfTables& tb, const StructureView& s, const NeighborList& nl,
                    const std::vector<int64_t>& rows, const GradientOutput& out, bool parallel) {
    ExceptionCollector errors;
#pragma omp parallel if (parallel && s.n_atoms >= kMinAtomsPerParallelRegion)
    {
        errors.run([&] {
            LocalNeighbors local;
            BlockScratch block;
            GradientMode mode;
#pragma omp for schedule(dynamic, 8)
            for (int64_t i = 0; i < s.n_atoms; ++i) {
                mode.g = out.values + i * tb.n_features;
                center(tb, s, nl, i, mode, local, block);
                write_gradient_rows(nl, i, local, mode.d, tb.n_features, rows[i], out);
            }
        });
    }
    errors.rethrow();
}

void acsf_forces_virial(const AcsfTables& tb, const StructureView& s, const NeighborList& nl, const double* dE_dG,
                        double* forces, double* virial, bool parallel, VjpRhs rhs) {
    const int64_t n = s.n_atoms, K = rhs.n;
    const int64_t per_rhs = 3 * n + 9;  // one thread buffer per rhs: forces then virial
    const int n_threads = (parallel && n >= kMinAtomsPerParallelRegion) ? get_num_threads() : 1;
    std::vector<double> buffers(size_t(n_threads) * size_t(K * per_rhs), 0.0);
    ExceptionCollector errors;
#pragma omp parallel num_threads(n_threads) if (n_threads > 1)
    {
        errors.run([&] {
            double* buf = &buffers[size_t(thread_id()) * size_t(K * per_rhs)];
            LocalNeighbors L;
            BlockScratch block;
            VjpMode mode;
            mode.n_rhs = K;
            mode.w_stride = rhs.dE_dG_stride;
#pragma omp for schedule(dynamic, 8)
            for (int64_t i = 0; i < n; ++i) {
                mode.w = dE_dG + i * tb.n_features;
                center(tb, s, nl, i, mode, L, block);
                for (int64_t r = 0; r < K; ++r) {
                    double* f = buf + r * per_rhs;
                    double* w = f + 3 * n;
                    const double* coef = mode.coef.data() + r * L.m;
                    const double* ex = mode.ex.data() + r * L.m;
                    const double* ey = mode.ey.data() + r * L.m;
                    const double* ez = mode.ez.data() + r * L.m;
                    for (int64_t k = 0; k < L.m; ++k) {
                        const double v[3] = {L.x[k], L.y[k], L.z[k]};
                        const double g[3] = {coef[k] * v[0] + ex[k], coef[k] * v[1] + ey[k], coef[k] * v[2] + ez[k]};
                        const int64_t j = nl.neighbor[L.entry[k]];
                        for (int c = 0; c < 3; ++c) {
                            f[3 * j + c] -= g[c];
                            f[3 * i + c] += g[c];
                        }
                        for (int a = 0; a < 3; ++a)
                            for (int b = 0; b < 3; ++b) w[3 * a + b] -= v[a] * g[b];
                    }
                }
            }
        });
    }
    errors.rethrow();
    for (int64_t r = 0; r < K; ++r) {
        double* fo = forces + r * rhs.forces_stride;
        double* wo = virial + r * rhs.virial_stride;
        std::fill(fo, fo + 3 * n, 0.0);
        std::fill(wo, wo + 9, 0.0);
        for (int th = 0; th < n_threads; ++th) {
            const double* f = &buffers[size_t(th) * size_t(K * per_rhs) + size_t(r * per_rhs)];
            for (int64_t k = 0; k < 3 * n; ++k) fo[k] += f[k];
            for (int k = 0; k < 9; ++k) wo[k] += f[3 * n + k];
        }
    }
}

extern const KernelTable table;
const KernelTable table = {ALIP_KERNEL_NAME,
                           simd::kName,
                           ALIP_KERNEL_ISA,
                           &acsf_values,
                           &acsf_gradients,
                           &acsf_forces_virial,
                           &jacobian_forces_kernel<float>,
                           &jacobian_forces_kernel<double>,
                           &jacobian_forces_vjp_kernel<float>,
                           &jacobian_forces_vjp_kernel<double>,
                           &mlp_value_and_input_gradient_kernel<float>,
                           &mlp_value_and_input_gradient_kernel<double>,
                           &mlp_value_and_input_gradient_vjp_kernel<float>,
                           &mlp_value_and_input_gradient_vjp_kernel<double>};

ALIP_KERNEL_END
