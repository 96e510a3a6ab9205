// The loops of jacobian_forces and its VJP (include/alip/jacobian.hpp), compiled once per
// kernel variant (included by acsf_variant.hpp, inside its ALIP_KERNEL_BEGIN/END) and
// vectorized by the compiler for the variant's ISA. Inputs are validated by jacobian.cpp.
//
// Both are bound by reading the Jacobian rows once; the optional strain rows (virials) are
// nine more rows per center, scattered onto the center's structure. The forward product contracts each
// row with K right-hand sides; written as K dot products it spends its time in horizontal
// sums, so it runs over the features with the right-hand sides in the vector lanes
// (blocks of kRhsBlock, zero-padded) and four rows at a time. The VJP is an axpy over the
// features per row and right-hand side.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "include/alip/jacobian.hpp"
#include "kernel_variant.hpp"
#include "parallel.hpp"

ALIP_KERNEL_BEGIN

constexpr int kRhsBlock = 8;  // right-hand sides per vector block of the forward product
constexpr int kRowBlock = 4;  // rows per step of the forward product (independent accumulators)

/// Rows of center c before its padding.
template <class T>
inline int64_t jacobian_rows(const PaddedJacobian<T>& J, int64_t c) {
    const int64_t* t = J.targets + c * J.max_rows;
    int64_t r = 0;
    while (r < J.max_rows && t[r] != J.n_all) ++r;
    return r;
}

/// acc[q][k] = Σ_f rows[q, f] · rhs[f, kb + k] for R rows of F features, four rows at a time;
/// scatter(q, acc) takes each row's kRhsBlock sums.
template <class T, class Scatter>
inline void contract_rows(const T* rows, int64_t R, int64_t F, const T* rhs, int64_t W, int64_t kb, Scatter&& scatter) {
    int64_t row = 0;
    for (; row + kRowBlock <= R; row += kRowBlock) {
        T acc[kRowBlock][kRhsBlock] = {};
        const T* J0 = rows + row * F;
        for (int64_t f = 0; f < F; ++f) {
            const T* v = rhs + f * W + kb;
            for (int q = 0; q < kRowBlock; ++q) {
                const T x = J0[q * F + f];
#pragma omp simd
                for (int k = 0; k < kRhsBlock; ++k) acc[q][k] += x * v[k];
            }
        }
        for (int q = 0; q < kRowBlock; ++q) scatter(row + q, acc[q]);
    }
    for (; row < R; ++row) {
        T acc[kRhsBlock] = {};
        const T* Jr = rows + row * F;
        for (int64_t f = 0; f < F; ++f) {
            const T* v = rhs + f * W + kb;
#pragma omp simd
            for (int k = 0; k < kRhsBlock; ++k) acc[k] += Jr[f] * v[k];
        }
        scatter(row, acc);
    }
}

/// out (K, n_rows) = the per-thread (n_rows, W) blocks at base, base + per_thread, ... summed.
template <class T>
inline void reduce_buffers(const T* base, int n_threads, size_t per_thread, int64_t n_rows, int64_t W, int64_t K,
                           T* out) {
    for (int64_t k = 0; k < K; ++k)
        for (int64_t i = 0; i < n_rows; ++i) {
            T s = T(0);
            for (int th = 0; th < n_threads; ++th) s += base[size_t(th) * per_thread + size_t(i * W + k)];
            out[k * n_rows + i] = s;
        }
}

template <class T>
void jacobian_forces_kernel(const PaddedJacobian<T>& J, const int64_t* atoms, int64_t n, const T* dE_dG, int64_t K,
                            T* forces, bool parallel, const StrainJacobian<T>& strain, T* virials) {
    const int64_t F = J.n_features, M = J.max_rows, W = (K + kRhsBlock - 1) / kRhsBlock * kRhsBlock;
    const int64_t S = strain.rows != nullptr ? strain.n_structures : 0;
    const int n_threads = (parallel && n >= kMinAtomsPerParallelRegion) ? get_num_threads() : 1;
    // per thread (n, 3, W) forces then (S, 9, W) virials: rows scatter onto their targets
    const size_t per_thread = size_t(n + 3 * S) * 3 * size_t(W);
    std::vector<T> buffers(size_t(n_threads) * per_thread, T(0));
    ExceptionCollector errors;
#pragma omp parallel num_threads(n_threads) if (n_threads > 1)
    {
        errors.run([&] {
            T* out = buffers.data() + size_t(thread_id()) * per_thread;
            T* vout = out + size_t(n) * 3 * size_t(W);
            std::vector<T> rhs(size_t(F * W));  // (F, W): this center's dE/dG, right-hand sides in the lanes
#pragma omp for schedule(static)
            for (int64_t a = 0; a < n; ++a) {
                const int64_t c = atoms[a], rows = jacobian_rows(J, c);
                const int64_t* targets = J.targets + c * M;
                for (int64_t f = 0; f < F; ++f)
                    for (int64_t k = 0; k < W; ++k) rhs[size_t(f * W + k)] = k < K ? dE_dG[(k * n + a) * F + f] : T(0);
                for (int64_t kb = 0; kb < W; kb += kRhsBlock) {
                    contract_rows(J.rows + c * M * 3 * F, 3 * rows, F, rhs.data(), W, kb,
                                  [&](int64_t row, const T* acc) {
                                      T* o = out + ((a + targets[row / 3] - c) * 3 + row % 3) * W + kb;
                                      for (int k = 0; k < kRhsBlock; ++k) o[k] -= acc[k];
                                  });
                    if (S > 0)
                        contract_rows(strain.rows + c * 9 * F, 9, F, rhs.data(), W, kb, [&](int64_t q, const T* acc) {
                            T* o = vout + (strain.structure[a] * 9 + q) * W + kb;
                            for (int k = 0; k < kRhsBlock; ++k) o[k] -= acc[k];
                        });
                }
            }
        });
    }
    errors.rethrow();
    reduce_buffers(buffers.data(), n_threads, per_thread, 3 * n, W, K, forces);
    if (S > 0) reduce_buffers(buffers.data() + 3 * n * W, n_threads, per_thread, 9 * S, W, K, virials);
}

template <class T>
void jacobian_forces_vjp_kernel(const PaddedJacobian<T>& J, const int64_t* atoms, int64_t n, const T* grad_forces,
                                int64_t K, T* grad_dE_dG, bool parallel, const StrainJacobian<T>& strain,
                                const T* grad_virials) {
    const int64_t F = J.n_features, M = J.max_rows;
    const int64_t S = strain.rows != nullptr ? strain.n_structures : 0;
    const int n_threads = (parallel && n >= kMinAtomsPerParallelRegion) ? get_num_threads() : 1;
    ExceptionCollector errors;
#pragma omp parallel num_threads(n_threads) if (n_threads > 1)
    {
        errors.run([&] {
            std::vector<T> acc(size_t(K * F));  // (K, F): each center's rows summed; no two threads share a center
            auto axpy = [&](const T* row, int64_t k, T w) {
                T* s = &acc[size_t(k * F)];
#pragma omp simd
                for (int64_t f = 0; f < F; ++f) s[f] -= w * row[f];
            };
#pragma omp for schedule(static)
            for (int64_t a = 0; a < n; ++a) {
                const int64_t c = atoms[a], rows = jacobian_rows(J, c);
                const int64_t* targets = J.targets + c * M;
                const T* Jc = J.rows + c * M * 3 * F;
                std::fill(acc.begin(), acc.end(), T(0));
                for (int64_t r = 0; r < rows; ++r) {
                    const int64_t local = a + targets[r] - c;
                    for (int x = 0; x < 3; ++x)
                        for (int64_t k = 0; k < K; ++k)
                            axpy(Jc + (r * 3 + x) * F, k, grad_forces[(k * n + local) * 3 + x]);
                }
                if (S > 0)
                    for (int q = 0; q < 9; ++q)
                        for (int64_t k = 0; k < K; ++k)
                            axpy(strain.rows + (c * 9 + q) * F, k, grad_virials[(k * S + strain.structure[a]) * 9 + q]);
                for (int64_t k = 0; k < K; ++k)
                    std::copy(&acc[size_t(k * F)], &acc[size_t(k * F)] + F, grad_dE_dG + (k * n + a) * F);
            }
        });
    }
    errors.rethrow();
}

ALIP_KERNEL_END
