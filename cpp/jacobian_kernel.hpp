// The loops of jacobian_forces and its VJP (include/alip/jacobian.hpp), compiled once per
// kernel variant (included by acsf_variant.hpp, inside its ALIP_KERNEL_BEGIN/END) and
// vectorized by the compiler for the variant's ISA. Inputs are validated by jacobian.cpp.
//
// Both are bound by reading the Jacobian rows once; the optional strain rows (virials) are
// nine more rows per center, scattered onto the center's structure. The forward product contracts each
// row with K right-hand sides; written as K dot products it spends its time in horizontal
// sums, so it runs over the features with the right-hand sides in the vector lanes
// (blocks of kRhsBlock, zero-padded) and eight rows at a time (independent accumulators: four
// left the FMA units waiting on their latency). The VJP sums each center's rows weighted by K
// numbers: it runs over blocks of features one vector wide, with the K sums of a block in
// registers for all of the center's rows (an axpy per row and right-hand side reloaded and
// stored the sums for every row, and left the features past the last full vector to scalar code).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "include/alip/jacobian.hpp"
#include "kernel_variant.hpp"
#include "parallel.hpp"
#include "vector_chunks.hpp"

ALIP_KERNEL_BEGIN

constexpr int kRhsBlock = 8;  // right-hand sides per vector block of the forward product

/// Rows per step of the forward product: eight independent accumulators when a block of
/// right-hand sides fits one vector, else four (registers).
template <class T>
constexpr int kRowBlock = sizeof(T) * kRhsBlock <= kVectorBytes ? 8 : 4;

/// Rows of center c before its padding.
template <class T>
inline int64_t jacobian_rows(const PaddedJacobian<T>& J, int64_t c) {
    const int64_t* t = J.targets + c * J.max_rows;
    int64_t r = 0;
    while (r < J.max_rows && t[r] != J.n_all) ++r;
    return r;
}

/// acc[q][k] = Σ_f rows[q, f] · rhs[f, kb + k] for R rows of F features, kRowBlock rows at a time;
/// scatter(q, acc) takes each row's kRhsBlock sums.
template <class T, class Scatter>
inline void contract_rows(const T* rows, int64_t R, int64_t F, const T* rhs, int64_t W, int64_t kb, Scatter&& scatter) {
    constexpr int B = kRowBlock<T>;
    int64_t row = 0;
    for (; row + B <= R; row += B) {
        T acc[B][kRhsBlock] = {};
        const T* J0 = rows + row * F;
        for (int64_t f = 0; f < F; ++f) {
            const T* v = rhs + f * W + kb;
            for (int q = 0; q < B; ++q) {
                const T x = J0[q * F + f];
#pragma omp simd
                for (int k = 0; k < kRhsBlock; ++k) acc[q][k] += x * v[k];
            }
        }
        for (int q = 0; q < B; ++q) scatter(row + q, acc[q]);
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

/// out[k, f0 + l] −= Σ_r rows[r, f0 + l] · w[r, k] for k < KB, l < L: one block of L
/// features, the KB sums in registers over all R rows (w: R rows of stride Wk).
template <class T, int KB, int L>
inline void weighted_rows_block(const T* rows, int64_t R, int64_t F, const T* w, int64_t Wk, int64_t f0, T* out) {
    T acc[KB][L] = {};
    for (int64_t r = 0; r < R; ++r) {
        const T* x = rows + r * F + f0;
        const T* wr = w + r * Wk;
        for (int k = 0; k < KB; ++k) {
            const T c = wr[k];
#pragma omp simd
            for (int l = 0; l < L; ++l) acc[k][l] += c * x[l];
        }
    }
    for (int k = 0; k < KB; ++k)
        for (int l = 0; l < L; ++l) out[k * F + f0 + l] -= acc[k][l];
}

/// out (KB, F) −= Σ_r w[r, k] · rows[r, :] in blocks of features one vector wide (then narrower).
template <class T, int KB>
inline void weighted_rows(const T* rows, int64_t R, int64_t F, const T* w, int64_t Wk, T* out) {
    for_vector_chunks<T>(F, [&](auto L, int64_t f0) { weighted_rows_block<T, KB, L>(rows, R, F, w, Wk, f0, out); });
}

constexpr int kVjpRhsBlock = 8;  // right-hand sides whose sums the VJP keeps in registers at once

/// out (K, F) −= Σ_r w[r, k] · rows[r, :] for all K (w: R rows of stride Wk), in blocks of
/// kVjpRhsBlock right-hand sides (the block's size a template argument: sums in registers).
template <class T>
inline void weighted_rows_all(const T* rows, int64_t R, int64_t F, const T* w, int64_t Wk, int64_t K, T* out) {
    for (int64_t kb = 0; kb < K; kb += kVjpRhsBlock) {
        const T* wb = w + kb;
        T* ob = out + kb * F;
        switch (std::min<int64_t>(kVjpRhsBlock, K - kb)) {
            case 1: weighted_rows<T, 1>(rows, R, F, wb, Wk, ob); break;
            case 2: weighted_rows<T, 2>(rows, R, F, wb, Wk, ob); break;
            case 3: weighted_rows<T, 3>(rows, R, F, wb, Wk, ob); break;
            case 4: weighted_rows<T, 4>(rows, R, F, wb, Wk, ob); break;
            case 5: weighted_rows<T, 5>(rows, R, F, wb, Wk, ob); break;
            case 6: weighted_rows<T, 6>(rows, R, F, wb, Wk, ob); break;
            case 7: weighted_rows<T, 7>(rows, R, F, wb, Wk, ob); break;
            default: weighted_rows<T, 8>(rows, R, F, wb, Wk, ob); break;
        }
    }
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
            std::vector<T> w(size_t(std::max<int64_t>(3 * M, 9) * K));  // (rows, K): each row's K weights
#pragma omp for schedule(static)
            for (int64_t a = 0; a < n; ++a) {
                const int64_t c = atoms[a], rows = jacobian_rows(J, c);
                const int64_t* targets = J.targets + c * M;
                std::fill(acc.begin(), acc.end(), T(0));
                for (int64_t r = 0; r < rows; ++r) {
                    const int64_t local = a + targets[r] - c;
                    for (int x = 0; x < 3; ++x)
                        for (int64_t k = 0; k < K; ++k)
                            w[size_t((r * 3 + x) * K + k)] = grad_forces[(k * n + local) * 3 + x];
                }
                weighted_rows_all(J.rows + c * M * 3 * F, 3 * rows, F, w.data(), K, K, acc.data());
                if (S > 0) {
                    for (int q = 0; q < 9; ++q)
                        for (int64_t k = 0; k < K; ++k)
                            w[size_t(q * K + k)] = grad_virials[(k * S + strain.structure[a]) * 9 + q];
                    weighted_rows_all(strain.rows + c * 9 * F, 9, F, w.data(), K, K, acc.data());
                }
                for (int64_t k = 0; k < K; ++k)
                    std::copy(&acc[size_t(k * F)], &acc[size_t(k * F)] + F, grad_dE_dG + (k * n + a) * F);
            }
        });
    }
    errors.rethrow();
}

ALIP_KERNEL_END
