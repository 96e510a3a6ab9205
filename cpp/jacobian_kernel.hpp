// The loops of jacobian_forces and its VJP (include/alip/jacobian.hpp), compiled once per
// kernel variant (included by acsf_variant.hpp, inside its ALIP_KERNEL_BEGIN/END) and
// vectorized by the compiler for the variant's ISA. Inputs are validated by jacobian.cpp.
//
// Both are bound by reading the Jacobian rows once. The forward product contracts each
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

template <class T>
void jacobian_forces_kernel(const PaddedJacobian<T>& J, const int64_t* atoms, int64_t n, const T* dE_dG, int64_t K,
                            T* forces, bool parallel) {
    const int64_t F = J.n_features, M = J.max_rows, W = (K + kRhsBlock - 1) / kRhsBlock * kRhsBlock;
    const int n_threads = (parallel && n >= kMinAtomsPerParallelRegion) ? get_num_threads() : 1;
    const size_t per_thread = size_t(n) * 3 * size_t(W);
    std::vector<T> buffers(size_t(n_threads) * per_thread, T(0));  // per thread (n, 3, W): rows scatter onto targets
    ExceptionCollector errors;
#pragma omp parallel num_threads(n_threads) if (n_threads > 1)
    {
        errors.run([&] {
            T* out = buffers.data() + size_t(thread_id()) * per_thread;
            std::vector<T> rhs(size_t(F * W));  // (F, W): this center's dE/dG, right-hand sides in the lanes
#pragma omp for schedule(static)
            for (int64_t a = 0; a < n; ++a) {
                const int64_t c = atoms[a], rows = jacobian_rows(J, c), R = 3 * rows;
                const int64_t* targets = J.targets + c * M;
                const T* Jc = J.rows + c * M * 3 * F;
                for (int64_t f = 0; f < F; ++f)
                    for (int64_t k = 0; k < W; ++k) rhs[size_t(f * W + k)] = k < K ? dE_dG[(k * n + a) * F + f] : T(0);
                auto scatter = [&](int64_t row, int64_t kb, const T* acc) {
                    const int64_t local = a + targets[row / 3] - c;
                    T* o = out + (local * 3 + row % 3) * W + kb;
                    for (int k = 0; k < kRhsBlock; ++k) o[k] -= acc[k];
                };
                for (int64_t kb = 0; kb < W; kb += kRhsBlock) {
                    int64_t row = 0;
                    for (; row + kRowBlock <= R; row += kRowBlock) {
                        T acc[kRowBlock][kRhsBlock] = {};
                        const T* J0 = Jc + row * F;
                        for (int64_t f = 0; f < F; ++f) {
                            const T* v = &rhs[size_t(f * W + kb)];
                            for (int q = 0; q < kRowBlock; ++q) {
                                const T x = J0[q * F + f];
#pragma omp simd
                                for (int k = 0; k < kRhsBlock; ++k) acc[q][k] += x * v[k];
                            }
                        }
                        for (int q = 0; q < kRowBlock; ++q) scatter(row + q, kb, acc[q]);
                    }
                    for (; row < R; ++row) {
                        T acc[kRhsBlock] = {};
                        const T* Jr = Jc + row * F;
                        for (int64_t f = 0; f < F; ++f) {
                            const T* v = &rhs[size_t(f * W + kb)];
#pragma omp simd
                            for (int k = 0; k < kRhsBlock; ++k) acc[k] += Jr[f] * v[k];
                        }
                        scatter(row, kb, acc);
                    }
                }
            }
        });
    }
    errors.rethrow();
    for (int64_t k = 0; k < K; ++k)
        for (int64_t i = 0; i < 3 * n; ++i) {
            T s = T(0);
            for (int th = 0; th < n_threads; ++th) s += buffers[size_t(th) * per_thread + size_t(i * W + k)];
            forces[k * 3 * n + i] = s;
        }
}

template <class T>
void jacobian_forces_vjp_kernel(const PaddedJacobian<T>& J, const int64_t* atoms, int64_t n, const T* grad_forces,
                                int64_t K, T* grad_dE_dG, bool parallel) {
    const int64_t F = J.n_features, M = J.max_rows;
    const int n_threads = (parallel && n >= kMinAtomsPerParallelRegion) ? get_num_threads() : 1;
    ExceptionCollector errors;
#pragma omp parallel num_threads(n_threads) if (n_threads > 1)
    {
        errors.run([&] {
            std::vector<T> acc(size_t(K * F));  // (K, F): each center's rows summed; no two threads share a center
#pragma omp for schedule(static)
            for (int64_t a = 0; a < n; ++a) {
                const int64_t c = atoms[a], rows = jacobian_rows(J, c);
                const int64_t* targets = J.targets + c * M;
                const T* Jc = J.rows + c * M * 3 * F;
                std::fill(acc.begin(), acc.end(), T(0));
                for (int64_t r = 0; r < rows; ++r) {
                    const int64_t local = a + targets[r] - c;
                    for (int x = 0; x < 3; ++x) {
                        const T* Jr = Jc + (r * 3 + x) * F;
                        for (int64_t k = 0; k < K; ++k) {
                            const T w = grad_forces[(k * n + local) * 3 + x];
                            T* s = &acc[size_t(k * F)];
#pragma omp simd
                            for (int64_t f = 0; f < F; ++f) s[f] -= w * Jr[f];
                        }
                    }
                }
                for (int64_t k = 0; k < K; ++k)
                    std::copy(&acc[size_t(k * F)], &acc[size_t(k * F)] + F, grad_dE_dG + (k * n + a) * F);
            }
        });
    }
    errors.rethrow();
}

ALIP_KERNEL_END
