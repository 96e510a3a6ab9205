// The loops of mlp.hpp (K stacked MLPs: outputs, input gradients and their VJP in the
// weights), compiled once per kernel variant (included by acsf_variant.hpp, inside its
// ALIP_KERNEL_BEGIN/END). Inputs are validated by mlp.cpp.
//
// Each thread takes blocks of kMlpAtoms atoms of one member and keeps everything of a
// block (pre-activations, slopes, δ, ...: kMlpAtoms × width each) in its own small buffers,
// so a layer is one pass over its weights with the block's atoms as independent
// accumulators (the weights' row reused for all of them, the products vectorized over the
// layer's width). The backward recomputes the block's forward instead of storing it.
// Weight gradients go to per-thread buffers, summed at the end.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "include/alip/mlp.hpp"
#include "kernel_variant.hpp"
#include "parallel.hpp"
#include "vector_chunks.hpp"

ALIP_KERNEL_BEGIN

constexpr int64_t kMlpAtoms = 8;  // atoms of one member per block (a last, partial block is padded with zeros)

/// a = σ(z), s = σ'(z) and, where c is given, c = σ''(z), for w values.
template <class T>
inline void mlp_activation(MlpActivation act, const T* z, T* a, T* s, T* c, int64_t w) {
    switch (act) {
        case MlpActivation::tanh:
#pragma omp simd
            for (int64_t j = 0; j < w; ++j) {
                const T t = std::tanh(z[j]);
                a[j] = t, s[j] = T(1) - t * t;
            }
            if (c != nullptr)
                for (int64_t j = 0; j < w; ++j) c[j] = T(-2) * a[j] * s[j];
            break;
        case MlpActivation::silu:  // one exp per value for all three
            if (c == nullptr) {
#pragma omp simd
                for (int64_t j = 0; j < w; ++j) {
                    const T g = T(1) / (T(1) + std::exp(-z[j]));
                    a[j] = z[j] * g, s[j] = g + z[j] * g * (T(1) - g);
                }
            } else {
#pragma omp simd
                for (int64_t j = 0; j < w; ++j) {
                    const T g = T(1) / (T(1) + std::exp(-z[j]));
                    a[j] = z[j] * g, s[j] = g + z[j] * g * (T(1) - g);
                    c[j] = g * (T(1) - g) * (T(2) + z[j] * (T(1) - T(2) * g));
                }
            }
            break;
        case MlpActivation::softplus:  // PyTorch's: z itself above 20
            for (int64_t j = 0; j < w; ++j) {
                if (z[j] > T(20)) {
                    a[j] = z[j], s[j] = T(1);
                    if (c != nullptr) c[j] = T(0);
                } else {
                    const T g = T(1) / (T(1) + std::exp(-z[j]));
                    a[j] = std::log1p(std::exp(z[j])), s[j] = g;
                    if (c != nullptr) c[j] = g * (T(1) - g);
                }
            }
            break;
        case MlpActivation::celu:  // α = 1
            for (int64_t j = 0; j < w; ++j) {
                if (z[j] > T(0)) {
                    a[j] = z[j], s[j] = T(1);
                    if (c != nullptr) c[j] = T(0);
                } else {
                    a[j] = std::expm1(z[j]), s[j] = a[j] + T(1);
                    if (c != nullptr) c[j] = a[j] + T(1);
                }
            }
            break;
    }
}

/// out[b, j0 : j0 + L] += Σ_i in[b, i] · M[i, j0 : j0 + L] for the block's kMlpAtoms atoms:
/// their kMlpAtoms × L sums in registers, one row of M loaded per i for all of them.
template <class T, int L>
inline void mlp_rows_times_chunk(const T* in, int64_t in_stride, const T* M, int64_t w_in, int64_t w_out, int64_t j0,
                                 T* out, int64_t out_stride) {
    T acc[kMlpAtoms][L];
    for (int64_t b = 0; b < kMlpAtoms; ++b)
        for (int l = 0; l < L; ++l) acc[b][l] = out[b * out_stride + j0 + l];
    for (int64_t i = 0; i < w_in; ++i) {
        const T* m = M + i * w_out + j0;
        for (int64_t b = 0; b < kMlpAtoms; ++b) {
            const T v = in[b * in_stride + i];
#pragma omp simd
            for (int l = 0; l < L; ++l) acc[b][l] += v * m[l];
        }
    }
    for (int64_t b = 0; b < kMlpAtoms; ++b)
        for (int l = 0; l < L; ++l) out[b * out_stride + j0 + l] = acc[b][l];
}

/// out[b, :w_out] += Σ_i in[b, i] · M[i, :w_out] for the block's atoms (rows of in: stride
/// in_stride, of out: out_stride), in chunks of outputs one vector wide (then narrower).
template <class T>
inline void mlp_rows_times(const T* in, int64_t in_stride, const T* M, int64_t w_in, int64_t w_out, T* out,
                           int64_t out_stride) {
    for_vector_chunks<T>(w_out, [&](auto L, int64_t j0) {
        mlp_rows_times_chunk<T, L>(in, in_stride, M, w_in, w_out, j0, out, out_stride);
    });
}

/// G[i0 + q, j0 : j0 + L] += Σ_b u[b, i0 + q] · v[b, j0 : j0 + L] for q < R: R × L sums in
/// registers over the block's atoms.
template <class T, int R, int L>
inline void mlp_outer_chunk(const T* u, int64_t u_stride, const T* v, int64_t v_stride, int64_t w_out, int64_t i0,
                            int64_t j0, T* G) {
    T acc[R][L];
    for (int q = 0; q < R; ++q)
        for (int l = 0; l < L; ++l) acc[q][l] = G[(i0 + q) * w_out + j0 + l];
    for (int64_t b = 0; b < kMlpAtoms; ++b) {
        const T* vb = v + b * v_stride + j0;
        for (int q = 0; q < R; ++q) {
            const T c = u[b * u_stride + i0 + q];
#pragma omp simd
            for (int l = 0; l < L; ++l) acc[q][l] += c * vb[l];
        }
    }
    for (int q = 0; q < R; ++q)
        for (int l = 0; l < L; ++l) G[(i0 + q) * w_out + j0 + l] = acc[q][l];
}

template <class T, int L>
inline void mlp_outer_columns(const T* u, int64_t u_stride, const T* v, int64_t v_stride, int64_t w_in, int64_t w_out,
                              int64_t j0, T* G) {
    constexpr int R = 8;  // rows of G at once: independent accumulators
    int64_t i0 = 0;
    for (; i0 + R <= w_in; i0 += R) mlp_outer_chunk<T, R, L>(u, u_stride, v, v_stride, w_out, i0, j0, G);
    for (; i0 < w_in; ++i0) mlp_outer_chunk<T, 1, L>(u, u_stride, v, v_stride, w_out, i0, j0, G);
}

/// G[i, :w_out] += Σ_b u[b, i] · v[b, :w_out] (an outer product summed over the block's atoms),
/// in chunks of columns one vector wide (then narrower).
template <class T>
inline void mlp_outer_add(const T* u, int64_t u_stride, const T* v, int64_t v_stride, int64_t w_in, int64_t w_out,
                          T* G) {
    for_vector_chunks<T>(
        w_out, [&](auto L, int64_t j0) { mlp_outer_columns<T, L>(u, u_stride, v, v_stride, w_in, w_out, j0, G); });
}

/// The block's state: per hidden layer l (width w = sizes[l + 1]) kMlpAtoms × w each of
/// pre-activation z, activation a, slope s, curvature c, δ, p (δ = p ⊙ s) and z̄.
template <class T>
struct MlpBlock {
    int64_t H = 0;
    std::vector<int64_t> offset, width;  // per hidden layer
    std::vector<T> z, a, s, c, d, p, zbar, dbar, pbar, abar, next;
    int64_t max_width = 0;

    explicit MlpBlock(const StackedMlp<T>& net) : H(net.n_layers - 1) {
        int64_t total = 0;
        for (int64_t l = 0; l < H; ++l) {
            offset.push_back(total), width.push_back(net.sizes[l + 1]);
            total += kMlpAtoms * net.sizes[l + 1];
            max_width = std::max(max_width, net.sizes[l + 1]);
        }
        for (auto* v : {&z, &a, &s, &c, &d, &p, &zbar}) v->assign(size_t(total), T(0));
        for (auto* v : {&dbar, &pbar, &abar, &next}) v->assign(size_t(kMlpAtoms * max_width), T(0));
    }
    T* at(std::vector<T>& v, int64_t l) { return v.data() + offset[size_t(l)]; }
};

/// Transposed weights: WT[l] (K, sizes[l + 1], sizes[l]) for the hidden layers' matrices.
template <class T>
std::vector<std::vector<T>> mlp_transposed(const StackedMlp<T>& net) {
    std::vector<std::vector<T>> out(size_t(net.n_layers - 1));
    for (int64_t l = 0; l + 1 < net.n_layers; ++l) {
        const int64_t r = net.sizes[l], c = net.sizes[l + 1];
        auto& t = out[size_t(l)];
        t.resize(size_t(net.n_members * r * c));
        for (int64_t k = 0; k < net.n_members; ++k)
            for (int64_t i = 0; i < r; ++i)
                for (int64_t j = 0; j < c; ++j) t[size_t((k * c + j) * r + i)] = net.weights[l][(k * r + i) * c + j];
    }
    return out;
}

/// The forward of member k on the block's kMlpAtoms atoms x (rows of F; a partial block padded
/// with zeros): z, a, s (and c when `curvature`), d and p of every hidden layer, out[b] and,
/// when grad is given, grad[b, :F] (kMlpAtoms rows of F).
template <class T>
void mlp_block_forward(const StackedMlp<T>& net, const std::vector<std::vector<T>>& WT, int64_t k, const T* x,
                       MlpBlock<T>& blk, bool curvature, T* out, T* grad) {
    constexpr int64_t B = kMlpAtoms;
    const int64_t H = blk.H, F = net.sizes[0];
    for (int64_t l = 0; l < H; ++l) {
        const int64_t w_in = net.sizes[l], w = net.sizes[l + 1];
        T* z = blk.at(blk.z, l);
        const T* bias = net.biases[l] + k * w;
        for (int64_t b = 0; b < B; ++b) std::copy(bias, bias + w, z + b * w);
        const T* in = l == 0 ? x : blk.at(blk.a, l - 1);
        mlp_rows_times(in, l == 0 ? F : w_in, net.weights[l] + k * w_in * w, w_in, w, z, w);
        mlp_activation(net.activation, z, blk.at(blk.a, l), blk.at(blk.s, l), curvature ? blk.at(blk.c, l) : nullptr,
                       B * w);
    }
    const int64_t wl = net.sizes[H];
    const T* wH = net.weights[H] + k * wl;  // (wl, 1)
    const T* aH = blk.at(blk.a, H - 1);
    const T* sH = blk.at(blk.s, H - 1);
    T* dH = blk.at(blk.d, H - 1);
    for (int64_t b = 0; b < B; ++b) {
        T e = net.biases[H][k];
        for (int64_t j = 0; j < wl; ++j) e += aH[b * wl + j] * wH[j];
        out[b] = e;
#pragma omp simd
        for (int64_t j = 0; j < wl; ++j) dH[b * wl + j] = wH[j] * sH[b * wl + j];
    }
    for (int64_t l = H - 2; l >= 0; --l) {  // p_l = δ_{l+1} W_{l+1}ᵀ, δ_l = p_l ⊙ s_l
        const int64_t w = net.sizes[l + 1], w_next = net.sizes[l + 2];
        T* p = blk.at(blk.p, l);
        std::fill(p, p + B * w, T(0));
        mlp_rows_times(blk.at(blk.d, l + 1), w_next, WT[size_t(l + 1)].data() + k * w_next * w, w_next, w, p, w);
        const T* s = blk.at(blk.s, l);
        T* d = blk.at(blk.d, l);
#pragma omp simd
        for (int64_t e = 0; e < B * w; ++e) d[e] = p[e] * s[e];
    }
    if (grad != nullptr) {  // dE/dx = δ_0 W_0ᵀ
        const int64_t w1 = net.sizes[1];
        std::fill(grad, grad + B * F, T(0));
        mlp_rows_times(blk.at(blk.d, 0), w1, WT[0].data() + k * w1 * F, w1, F, grad, F);
    }
}

/// The block's rows of a (K, n, width) or shared (n, width) array, padded with zero rows.
template <class T>
inline void mlp_gather_block(const T* src, int64_t a0, int64_t nb, int64_t width, T* dst) {
    std::copy(src + a0 * width, src + (a0 + nb) * width, dst);
    std::fill(dst + nb * width, dst + kMlpAtoms * width, T(0));
}

template <class T>
void mlp_value_and_input_gradient_kernel(const StackedMlp<T>& net, const T* x, int64_t n, bool x_per_member, T* out,
                                         T* grad, bool parallel) {
    const int64_t K = net.n_members, F = net.sizes[0];
    const auto WT = mlp_transposed(net);
    const int64_t blocks = (n + kMlpAtoms - 1) / kMlpAtoms;
    const int n_threads = (parallel && n >= kMinAtomsPerParallelRegion) ? get_num_threads() : 1;
    ExceptionCollector errors;
#pragma omp parallel num_threads(n_threads) if (n_threads > 1)
    {
        errors.run([&] {
            MlpBlock<T> blk(net);
            std::vector<T> xb(static_cast<size_t>(kMlpAtoms * F)), gb(xb.size()), ob(static_cast<size_t>(kMlpAtoms));
#pragma omp for schedule(static)
            for (int64_t kb = 0; kb < K * blocks; ++kb) {
                const int64_t k = kb / blocks, a0 = (kb % blocks) * kMlpAtoms, nb = std::min(kMlpAtoms, n - a0);
                mlp_gather_block(x + (x_per_member ? k * n * F : 0), a0, nb, F, xb.data());
                mlp_block_forward(net, WT, k, xb.data(), blk, false, ob.data(), gb.data());
                std::copy(ob.begin(), ob.begin() + nb, out + k * n + a0);
                std::copy(gb.begin(), gb.begin() + nb * F, grad + (k * n + a0) * F);
            }
        });
    }
    errors.rethrow();
}

template <class T>
void mlp_value_and_input_gradient_vjp_kernel(const StackedMlp<T>& net, const T* x, int64_t n, bool x_per_member,
                                             const T* g_out, const T* g_grad, T* const* grad_weights,
                                             T* const* grad_biases, bool parallel) {
    constexpr int64_t B = kMlpAtoms;
    const int64_t K = net.n_members, F = net.sizes[0], L = net.n_layers, H = L - 1;
    const auto WT = mlp_transposed(net);
    std::vector<int64_t> w_off(size_t(L) + 1, 0), b_off(size_t(L) + 1, 0);  // offsets in a thread's buffer
    for (int64_t l = 0; l < L; ++l) {
        w_off[size_t(l) + 1] = w_off[size_t(l)] + K * net.sizes[l] * net.sizes[l + 1];
        b_off[size_t(l) + 1] = b_off[size_t(l)] + K * net.sizes[l + 1];
    }
    const size_t per_thread = size_t(w_off[size_t(L)] + b_off[size_t(L)]);
    const int64_t blocks = (n + B - 1) / B;
    const int n_threads = (parallel && n >= kMinAtomsPerParallelRegion) ? get_num_threads() : 1;
    std::vector<T> buffers(size_t(n_threads) * per_thread, T(0));
    ExceptionCollector errors;
#pragma omp parallel num_threads(n_threads) if (n_threads > 1)
    {
        errors.run([&] {
            MlpBlock<T> blk(net);
            T* gw = buffers.data() + size_t(thread_id()) * per_thread;
            T* gb = gw + w_off[size_t(L)];
            std::vector<T> xb(static_cast<size_t>(B * F)), ggb(xb.size()), gob(static_cast<size_t>(B)), ob(gob.size());
#pragma omp for schedule(static)
            for (int64_t kb = 0; kb < K * blocks; ++kb) {
                const int64_t k = kb / blocks, a0 = (kb % blocks) * B, nb = std::min(B, n - a0);
                mlp_gather_block(x + (x_per_member ? k * n * F : 0), a0, nb, F, xb.data());
                mlp_block_forward<T>(net, WT, k, xb.data(), blk, true, ob.data(), nullptr);
                auto GW = [&](int64_t l) { return gw + w_off[size_t(l)] + k * net.sizes[l] * net.sizes[l + 1]; };
                auto GB = [&](int64_t l) { return gb + b_off[size_t(l)] + k * net.sizes[l + 1]; };
                for (int64_t l = 0; l < H; ++l) {
                    T* zb = blk.at(blk.zbar, l);
                    std::fill(zb, zb + B * net.sizes[l + 1], T(0));
                }
                const int64_t wl = net.sizes[H];
                const T* wH = net.weights[H] + k * wl;
                if (g_grad != nullptr) {  // through dE/dx = δ_0 W_0ᵀ and the δ recursion; padding rows are 0
                    mlp_gather_block(g_grad + k * n * F, a0, nb, F, ggb.data());
                    const T* gg = ggb.data();
                    const int64_t w1 = net.sizes[1];
                    mlp_outer_add(gg, F, blk.at(blk.d, 0), w1, F, w1, GW(0));  // ∂/∂W_0 of δ_0 W_0ᵀ
                    T* dbar = blk.dbar.data();                                 // d loss / d δ_l, (B, w_{l+1})
                    std::fill(dbar, dbar + B * w1, T(0));
                    mlp_rows_times(gg, F, net.weights[0] + k * F * w1, F, w1, dbar, w1);
                    for (int64_t l = 0; l + 1 < H; ++l) {  // δ_l = p_l ⊙ s_l, p_l = δ_{l+1} W_{l+1}ᵀ
                        const int64_t w = net.sizes[l + 1], w_next = net.sizes[l + 2];
                        const T *p = blk.at(blk.p, l), *c = blk.at(blk.c, l), *s = blk.at(blk.s, l);
                        T* zb = blk.at(blk.zbar, l);
                        T* pbar = blk.pbar.data();
#pragma omp simd
                        for (int64_t e = 0; e < B * w; ++e) zb[e] += dbar[e] * p[e] * c[e], pbar[e] = dbar[e] * s[e];
                        mlp_outer_add(pbar, w, blk.at(blk.d, l + 1), w_next, w, w_next, GW(l + 1));
                        T* next = blk.next.data();
                        std::fill(next, next + B * w_next, T(0));
                        mlp_rows_times(pbar, w, net.weights[l + 1] + k * w * w_next, w, w_next, next, w_next);
                        std::copy(next, next + B * w_next, dbar);
                    }
                    // δ_{H-1} = w_H ⊙ s_{H-1}
                    const T *s = blk.at(blk.s, H - 1), *c = blk.at(blk.c, H - 1);
                    T* zb = blk.at(blk.zbar, H - 1);
                    T* gwH = GW(H);
                    for (int64_t b = 0; b < B; ++b)
#pragma omp simd
                        for (int64_t j = 0; j < wl; ++j) {
                            gwH[j] += dbar[b * wl + j] * s[b * wl + j];
                            zb[b * wl + j] += dbar[b * wl + j] * wH[j] * c[b * wl + j];
                        }
                }
                bool have_abar = false;
                T* abar = blk.abar.data();  // d loss / d a_l of the layer below, (B, width)
                if (g_out != nullptr) {     // through the outputs
                    mlp_gather_block(g_out + k * n, a0, nb, 1, gob.data());
                    const T* go = gob.data();
                    const T* aH = blk.at(blk.a, H - 1);
                    T* gwH = GW(H);
                    T gsum = T(0);
                    for (int64_t b = 0; b < B; ++b) {
                        gsum += go[b];
#pragma omp simd
                        for (int64_t j = 0; j < wl; ++j)
                            gwH[j] += aH[b * wl + j] * go[b], abar[b * wl + j] = go[b] * wH[j];
                    }
                    GB(H)[0] += gsum;
                    have_abar = true;
                }
                for (int64_t l = H - 1; l >= 0; --l) {
                    const int64_t w = net.sizes[l + 1], w_in = net.sizes[l];
                    T* zb = blk.at(blk.zbar, l);
                    if (have_abar) {
                        const T* s = blk.at(blk.s, l);
#pragma omp simd
                        for (int64_t e = 0; e < B * w; ++e) zb[e] += abar[e] * s[e];
                    }
                    if (l > 0) {  // d loss / d a_{l-1} = z̄_l W_lᵀ
                        std::fill(abar, abar + B * w_in, T(0));
                        mlp_rows_times(zb, w, WT[size_t(l)].data() + k * w * w_in, w, w_in, abar, w_in);
                        have_abar = true;
                    }
                    const T* in = l == 0 ? xb.data() : blk.at(blk.a, l - 1);
                    mlp_outer_add(in, l == 0 ? F : w_in, zb, w, w_in, w, GW(l));
                    T* gbl = GB(l);
                    for (int64_t b = 0; b < B; ++b)
#pragma omp simd
                        for (int64_t j = 0; j < w; ++j) gbl[j] += zb[b * w + j];
                }
            }
        });
    }
    errors.rethrow();
    for (int64_t l = 0; l < L; ++l) {
        const int64_t nw = K * net.sizes[l] * net.sizes[l + 1], nbias = K * net.sizes[l + 1];
        for (int64_t e = 0; e < nw; ++e) {
            T s = T(0);
            for (int th = 0; th < n_threads; ++th) s += buffers[size_t(th) * per_thread + size_t(w_off[size_t(l)] + e)];
            grad_weights[l][e] = s;
        }
        for (int64_t e = 0; e < nbias; ++e) {
            T s = T(0);
            for (int th = 0; th < n_threads; ++th)
                s += buffers[size_t(th) * per_thread + size_t(w_off[size_t(L)] + b_off[size_t(l)] + e)];
            grad_biases[l][e] = s;
        }
    }
}

ALIP_KERNEL_END
