// The values-only kernel (G2, G4, G5 of one center, no derivatives), included after
// acsf_kernel.hpp, whose center() gathers the neighbors; one copy per CPU variant.
//
// Values need no per-pair derivative state, so the triplet sum is organised for speed:
//  * per neighbor n, a_e(n) = exp(-eta_e r_n^2) f_c(r_n) and the unit vector are computed
//    once, so a pair (n1, n2) needs only a dot product, |v2 - v1|^2 and a_e(n1) a_e(n2);
//  * for a fixed n1 the second neighbors n2 are contiguous (rows padded with zeros): the
//    test r_12 < r_c and the pair quantities run 8 lanes wide without gathers, and the
//    pairs that pass are packed (AVX-512 compress, or a branch-free scalar loop) into a
//    chunk;
//  * per chunk, exp(-eta r_12^2) per distinct eta and f_c(r_12); then, when every zeta is
//    a power of two (1, 2, 4, ...), the sums over the chunk of b^(2^t) * E_e,
//    b = max(0, 1 + lambda cos), with the ladder of squares kept in registers; otherwise a
//    ladder of squares in memory, products of its rungs, and register-blocked sums of
//    P_zl * E_e over all (zeta-lambda, eta) combinations (or one sum per parameter when
//    few combinations are used).
// The feature of parameter p is prefactor_p * M[zl_p][eta_p] summed over chunks.
// In the AVX-512 variant (ALIP_KERNEL_AVX512) the exps (G2 included) and the cosine
// cutoff of r_12 are inline polynomials (<= 2 ulp / 2.2e-16 absolute); in the baseline,
// the same loops call std::exp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "acsf_kernel.hpp"
#include "acsf_simd.hpp"
#include "kernel_variant.hpp"

ALIP_KERNEL_BEGIN

/// Work arrays of the values kernel (kept per thread across centers).
struct ValuesScratch {
    static constexpr int64_t kChunk = 512;  ///< packed pairs per chunk (a multiple of 8)
    static constexpr int64_t kPad = 8;      ///< zero entries after each neighbor row (full-width loads)
    static constexpr int64_t kStride = kChunk + 8;  ///< rows of W: not a multiple of 4 KiB apart
    int64_t ma = 0;                  ///< row length of A: m + kPad
    std::vector<double> x, y, z, ux, uy, uz, r, f;  ///< (m + kPad,) vectors, unit vectors, r, f_c(r)
    std::vector<double> A;           ///< (n_eta, ma) exp(-eta r^2) f_c(r)
    std::vector<double> cos, r2, r12, fc;  ///< (kChunk,) per packed pair
    std::vector<double> W;           ///< (n_eta, kStride) a_e(n1) a_e(n2), then times exp f_c of r_12
    std::vector<double> ladder;      ///< (n_lambda, depth, kStride)
    std::vector<double> P;           ///< (n_zl, kStride) for zetas that are not a single rung
    std::vector<const double*> Pz;   ///< (n_zl,) where P of each (zeta, lambda) is
    std::vector<const double*> Ep;   ///< (n_eta,) rows of W
    std::vector<double> M;           ///< (n_zl, n_eta) or (n_params,) accumulated sums
    std::vector<double> R;           ///< (n_lambda, depth, n_eta) sums of the rungs (power-of-two zetas)
    double tmp[16];

    void resize(int64_t m, int64_t n_eta, int64_t n_zl, int64_t n_lambda, int depth, int64_t n_params) {
        ma = m + kPad;
        for (auto* v : {&x, &y, &z, &ux, &uy, &uz, &r, &f}) {
            v->resize(size_t(ma));
            std::fill(v->begin() + m, v->end(), 0.0);
        }
        A.resize(size_t(n_eta * ma));
        for (int64_t e = 0; e < n_eta; ++e) std::fill(&A[size_t(e * ma + m)], &A[size_t(e * ma + ma)], 0.0);
        for (auto* v : {&cos, &r2, &r12, &fc}) v->resize(size_t(kChunk));
        W.resize(size_t(n_eta * kStride));
        ladder.resize(size_t(n_lambda) * size_t(std::max(depth, 1)) * size_t(kStride));
        P.resize(size_t(n_zl * kStride));
        Pz.resize(size_t(n_zl));
        Ep.resize(size_t(n_eta));
        M.resize(size_t(std::max(n_zl * n_eta, n_params)));
        R.resize(size_t(n_lambda * std::max(depth, 1) * n_eta));
    }
};

/// M[a * ldm + b] += sum_k P[a][k] E[b][k] for a < NA, b < NB; n is a multiple of 8.
template <int NA, int NB>
inline void dot_tile(const double* const* P, const double* const* E, int64_t n, double* M, int64_t ldm) {
    double acc[NA][NB][8] = {};
    for (int64_t k = 0; k < n; k += 8) {
        for (int a = 0; a < NA; ++a)
            for (int b = 0; b < NB; ++b)
#pragma omp simd
                for (int l = 0; l < 8; ++l) acc[a][b][l] += P[a][k + l] * E[b][k + l];
    }
    for (int a = 0; a < NA; ++a)
        for (int b = 0; b < NB; ++b) {
            double s = 0.0;
            for (int l = 0; l < 8; ++l) s += acc[a][b][l];
            M[a * ldm + b] += s;
        }
}

#if ALIP_KERNEL_AVX512
/// R[t * NE + b] += sum_k b_k^(2^t) E[b][k], b_k = max(0, 1 + lambda cos_k), t < D, with the
/// ladder of squares kept in registers (no stores); n is a multiple of 8.
template <int D, int NE>
inline void ladder_dot(const double* cos, double lambda, const double* const* E, int64_t n, double* R) {
    __m512d acc[D][NE];
    for (int t = 0; t < D; ++t)
        for (int b = 0; b < NE; ++b) acc[t][b] = _mm512_setzero_pd();
    const __m512d lam = _mm512_set1_pd(lambda), one = _mm512_set1_pd(1.0), zero = _mm512_setzero_pd();
    for (int64_t k = 0; k < n; k += 8) {
        __m512d rung = _mm512_max_pd(zero, _mm512_fmadd_pd(lam, _mm512_loadu_pd(cos + k), one));
        __m512d e[NE];
        for (int b = 0; b < NE; ++b) e[b] = _mm512_loadu_pd(E[b] + k);
        for (int t = 0; t < D; ++t) {
            for (int b = 0; b < NE; ++b) acc[t][b] = _mm512_fmadd_pd(rung, e[b], acc[t][b]);
            rung = _mm512_mul_pd(rung, rung);
        }
    }
    for (int t = 0; t < D; ++t)
        for (int b = 0; b < NE; ++b) R[t * NE + b] += _mm512_reduce_add_pd(acc[t][b]);
}

template <int D>
inline void ladder_dot_all(const double* cos, double lambda, const double* const* E, int64_t ne, int64_t n,
                           double* R /* (D, ne) */, double* tmp /* (D, 2) */) {
    int64_t e = 0;
    for (; e + 2 <= ne; e += 2) {
        std::fill(tmp, tmp + 2 * D, 0.0);
        ladder_dot<D, 2>(cos, lambda, E + e, n, tmp);
        for (int t = 0; t < D; ++t) R[t * ne + e] += tmp[2 * t], R[t * ne + e + 1] += tmp[2 * t + 1];
    }
    if (e < ne) {
        std::fill(tmp, tmp + D, 0.0);
        ladder_dot<D, 1>(cos, lambda, E + e, n, tmp);
        for (int t = 0; t < D; ++t) R[t * ne + e] += tmp[t];
    }
}
#endif

inline void values_kernel(const AcsfTables& tb, const LocalNeighbors& L, double* g, ValuesScratch& S) {
    const int64_t m = L.m;
    const int32_t ns = tb.spec.n_species;
    const int64_t ne = int64_t(tb.angular_etas.size());
    const int64_t nz = int64_t(tb.zeta_lambdas.size());
    const int64_t nlam = int64_t(tb.lambdas.size());
    const int64_t C = ValuesScratch::kChunk;
    const int64_t CR = ValuesScratch::kStride;  // distance between rows of chunk arrays
    const double rc = tb.spec.cutoff;
    const int64_t n_params = int64_t(std::max(tb.g4_index.size(), tb.g5_index.size()));
    S.resize(m, ne, nz, nlam, tb.ladder_depth, n_params);

    // zetas all powers of two (1, 2, 4, ...): sums of the ladder's rungs are all it takes
    [[maybe_unused]] bool pow2_zetas = tb.ladder_depth >= 1 && tb.ladder_depth <= 7;
    for (const ZetaLambda& zl : tb.zeta_lambdas)
        if (zl.integer_zeta < 1 || (zl.integer_zeta & (zl.integer_zeta - 1)) != 0) pow2_zetas = false;
    [[maybe_unused]] auto rung_of = [](int zeta) {
        int t = 0;
        while ((1 << t) < zeta) ++t;
        return t;
    };

    const int64_t ma = S.ma, CW = CR;
#pragma omp simd
    for (int64_t n = 0; n < m; ++n) {
        S.x[n] = L.x[n];
        S.y[n] = L.y[n];
        S.z[n] = L.z[n];
        S.ux[n] = L.x[n] * L.inv_r[n];
        S.uy[n] = L.y[n] * L.inv_r[n];
        S.uz[n] = L.z[n] * L.inv_r[n];
        S.r[n] = L.r[n];
        S.f[n] = L.fc[n];
    }

    // ---- G2: per species block, sum over its neighbors ----------------------------
    std::fill(g, g + tb.n_features, 0.0);
    const int64_t n_g2 = int64_t(tb.spec.g2.size());
    for (int32_t sp = 0; sp < ns && n_g2 > 0; ++sp) {
        const int64_t lo = L.seg[sp], hi = L.seg[sp + 1];
        for (int64_t p = 0; p < n_g2; ++p) {
            const double eta = tb.spec.g2[p].eta, rs = tb.spec.g2[p].rs;
#if ALIP_KERNEL_AVX512
            __m512d acc = _mm512_setzero_pd();
            for (int64_t k = lo; k < hi; k += 8) {  // rows are padded: full-width loads
                const __mmask8 live = __mmask8(0xFFu >> (8 - std::min<int64_t>(8, hi - k)));
                const __m512d dr = _mm512_sub_pd(_mm512_loadu_pd(&S.r[k]), _mm512_set1_pd(rs));
                const __m512d ex = exp_nonpositive(_mm512_mul_pd(_mm512_set1_pd(-eta), _mm512_mul_pd(dr, dr)));
                acc = _mm512_mask_add_pd(acc, live, acc, _mm512_mul_pd(ex, _mm512_loadu_pd(&S.f[k])));
            }
            g[int64_t(sp) * n_g2 + p] += _mm512_reduce_add_pd(acc);
#else
            double acc = 0.0;
#pragma omp simd reduction(+ : acc)
            for (int64_t n = lo; n < hi; ++n) {
                const double dr = L.r[n] - rs;
                acc += std::exp(-eta * dr * dr) * L.fc[n];
            }
            g[int64_t(sp) * n_g2 + p] += acc;
#endif
        }
    }
    if (tb.n_angular_per_pair == 0) return;

    // ---- G4 / G5 --------------------------------------------------------------------
    for (int64_t e = 0; e < ne; ++e) {
        const double eta = tb.angular_etas[e];
        double* a = &S.A[size_t(e * ma)];
#if ALIP_KERNEL_AVX512
        for (int64_t n = 0; n < m; n += 8) {  // padding: r = 0, f = 0 -> a = 0
            const __m512d r = _mm512_loadu_pd(&S.r[n]);
            const __m512d ex = exp_nonpositive(_mm512_mul_pd(_mm512_set1_pd(-eta), _mm512_mul_pd(r, r)));
            _mm512_storeu_pd(a + n, _mm512_mul_pd(ex, _mm512_loadu_pd(&S.f[n])));
        }
#else
#pragma omp simd
        for (int64_t n = 0; n < m; ++n) a[n] = std::exp(-eta * L.r[n] * L.r[n]) * L.fc[n];
#endif
    }
    const double* X = S.x.data();
    const double* Y = S.y.data();
    const double* Z = S.z.data();
    const double* UX = S.ux.data();
    const double* UY = S.uy.data();
    const double* UZ = S.uz.data();
    const double* Arow = S.A.data();
    double* Wrow = S.W.data();
    double* cosb = S.cos.data();
    double* r2b = S.r2.data();

    // sums of one family over a chunk of `cnt` packed pairs
    auto process = [&](bool g4, int64_t cnt, bool full_matrix, const std::vector<AngularIndex>& params) {
        const int64_t n = (cnt + 7) & ~int64_t(7);
        for (int64_t k = cnt; k < n; ++k) {  // padding lanes contribute exactly 0
            S.cos[k] = 0.0;
            S.r2[k] = 0.0;
            for (int64_t e = 0; e < ne; ++e) S.W[size_t(e * CW + k)] = 0.0;
        }
#if ALIP_KERNEL_AVX512
        if (g4 && tb.spec.cutoff_function == CutoffFunction::Cosine) {  // one pass: f_c(r_12), then each W_e
            const double a = kPi / rc;
            for (int64_t k = 0; k < n; k += 8) {
                const __m512d r2 = _mm512_loadu_pd(&S.r2[k]);
                const __m512d fc = cosine_cutoff(_mm512_sqrt_pd(r2), a, rc);
                for (int64_t e = 0; e < ne; ++e) {
                    double* w = &S.W[size_t(e * CW + k)];
                    const __m512d ex = exp_nonpositive(_mm512_mul_pd(_mm512_set1_pd(-tb.angular_etas[e]), r2));
                    _mm512_storeu_pd(w, _mm512_mul_pd(_mm512_loadu_pd(w), _mm512_mul_pd(ex, fc)));
                }
            }
        } else
#endif
        if (g4) {
#pragma omp simd
            for (int64_t k = 0; k < n; ++k) S.r12[k] = std::sqrt(S.r2[k]);
            cutoff_values(tb.spec.cutoff_function, rc, S.r12.data(), S.fc.data(), nullptr, n, false);
            for (int64_t e = 0; e < ne; ++e) {
                const double eta = tb.angular_etas[e];
                double* w = &S.W[size_t(e * CW)];
                const double* r2 = S.r2.data();
                const double* fc = S.fc.data();
#if ALIP_KERNEL_AVX512
                const __m512d neg_eta = _mm512_set1_pd(-eta);
                for (int64_t k = 0; k < n; k += 8) {
                    const __m512d ex = exp_nonpositive(_mm512_mul_pd(neg_eta, _mm512_loadu_pd(r2 + k)));
                    _mm512_storeu_pd(w + k, _mm512_mul_pd(_mm512_loadu_pd(w + k), _mm512_mul_pd(ex, _mm512_loadu_pd(fc + k))));
                }
#else
#pragma omp simd
                for (int64_t k = 0; k < n; ++k) w[k] *= std::exp(-eta * r2[k]) * fc[k];
#endif
            }
        }
        for (int64_t e = 0; e < ne; ++e) S.Ep[e] = &S.W[size_t(e * CW)];
#if ALIP_KERNEL_AVX512
        if (full_matrix && pow2_zetas) {  // rung sums R[l][t][e]; M picks them up per family
            for (int64_t l = 0; l < nlam; ++l) {
                double* R = &S.R[size_t(l * tb.ladder_depth * ne)];
                const double lam = tb.lambdas[l];
                switch (tb.ladder_depth) {
                    case 1: ladder_dot_all<1>(S.cos.data(), lam, S.Ep.data(), ne, n, R, S.tmp); break;
                    case 2: ladder_dot_all<2>(S.cos.data(), lam, S.Ep.data(), ne, n, R, S.tmp); break;
                    case 3: ladder_dot_all<3>(S.cos.data(), lam, S.Ep.data(), ne, n, R, S.tmp); break;
                    case 4: ladder_dot_all<4>(S.cos.data(), lam, S.Ep.data(), ne, n, R, S.tmp); break;
                    case 5: ladder_dot_all<5>(S.cos.data(), lam, S.Ep.data(), ne, n, R, S.tmp); break;
                    case 6: ladder_dot_all<6>(S.cos.data(), lam, S.Ep.data(), ne, n, R, S.tmp); break;
                    default: ladder_dot_all<7>(S.cos.data(), lam, S.Ep.data(), ne, n, R, S.tmp); break;
                }
            }
            return;
        }
#endif
        for (int64_t l = 0; l < nlam; ++l) {
            const double lam = tb.lambdas[l];
            fill_ladder(&S.ladder[size_t(l * tb.ladder_depth * CR)], tb.ladder_depth, CR, lam, S.cos.data(), n);
        }
        for (int64_t z = 0; z < nz; ++z) {
            const ZetaLambda& zl = tb.zeta_lambdas[z];
            const double* rungs = &S.ladder[size_t(zl.lambda_index * tb.ladder_depth * CR)];
            double* P = &S.P[size_t(z * CR)];
            if (zl.integer_zeta >= 1) {
                const int e = zl.integer_zeta;
                if ((e & (e - 1)) == 0) {
                    int t = 0;
                    while ((1 << t) < e) ++t;
                    S.Pz[z] = rungs + t * CR;
                } else {
                                        bool first = true;
                    for (int t = 0, q = e; q > 0; ++t, q >>= 1) {
                        if (!(q & 1)) continue;
                        const double* src = rungs + t * CR;
                        if (first) {
                            std::copy(src, src + n, P);
                            first = false;
                        } else {
#pragma omp simd
                            for (int64_t k = 0; k < n; ++k) P[k] *= src[k];
                        }
                    }
                    S.Pz[z] = P;
                }
            } else {
                for (int64_t k = 0; k < n; ++k) {
                    const double b = std::max(0.0, 1.0 + zl.lambda * S.cos[k]);
                    P[k] = b > 0.0 ? std::pow(b, zl.zeta) : 0.0;
                }
                S.Pz[z] = P;
            }
        }
        if (full_matrix) {  // every (zeta-lambda, eta) combination, register-blocked
            int64_t z = 0;
            for (; z + 4 <= nz; z += 4) {
                int64_t e = 0;
                for (; e + 2 <= ne; e += 2) dot_tile<4, 2>(&S.Pz[z], &S.Ep[e], n, &S.M[z * ne + e], ne);
                for (; e < ne; ++e) dot_tile<4, 1>(&S.Pz[z], &S.Ep[e], n, &S.M[z * ne + e], ne);
            }
            for (; z < nz; ++z) {
                int64_t e = 0;
                for (; e + 2 <= ne; e += 2) dot_tile<1, 2>(&S.Pz[z], &S.Ep[e], n, &S.M[z * ne + e], ne);
                for (; e < ne; ++e) dot_tile<1, 1>(&S.Pz[z], &S.Ep[e], n, &S.M[z * ne + e], ne);
            }
        } else {  // few of the combinations are used: one sum per parameter
            for (size_t p = 0; p < params.size(); ++p)
                dot_tile<1, 1>(&S.Pz[params[p].zl], &S.Ep[params[p].eta], n, &S.M[p], 1);
        }
    };

    const int64_t n_radial = tb.n_radial_features();
    const double rc2 = rc * rc;
    for (int32_t s1 = 0; s1 < ns; ++s1) {
        for (int32_t s2 = s1; s2 < ns; ++s2) {
            const int64_t base = n_radial + int64_t(tb.pair_index[s1 * ns + s2]) * tb.n_angular_per_pair;
            for (int family = 0; family < 2; ++family) {
                const bool g4 = family == 0;
                const std::vector<AngularIndex>& params = g4 ? tb.g4_index : tb.g5_index;
                if (params.empty()) continue;
                const bool full_matrix = nz * ne <= 2 * int64_t(params.size());
                std::fill(S.M.begin(), S.M.end(), 0.0);
                std::fill(S.R.begin(), S.R.end(), 0.0);
                const double limit2 = g4 ? rc2 : std::numeric_limits<double>::max();  // G5 has no condition on r_12
                int64_t cnt = 0;
                for (int64_t n1 = L.seg[s1]; n1 < L.seg[s1 + 1]; ++n1) {
                    const double x1 = X[n1], y1 = Y[n1], z1 = Z[n1];
                    const double u1 = UX[n1], v1 = UY[n1], w1 = UZ[n1];
                    const int64_t lo = std::max(n1 + 1, L.seg[s2]), hi = L.seg[s2 + 1];
                    for (int64_t n2 = lo; n2 < hi; n2 += 8) {
                        if (cnt > C - 8) {
                            process(g4, cnt, full_matrix, params);
                            cnt = 0;
                        }
                        const int64_t width = std::min<int64_t>(8, hi - n2);
#if ALIP_KERNEL_AVX512
                        // full-width loads: rows are padded with kPad zeros
                        const __mmask8 live = __mmask8(0xFFu >> (8 - width));
                        const __m512d dx = _mm512_sub_pd(_mm512_loadu_pd(X + n2), _mm512_set1_pd(x1));
                        const __m512d dy = _mm512_sub_pd(_mm512_loadu_pd(Y + n2), _mm512_set1_pd(y1));
                        const __m512d dz = _mm512_sub_pd(_mm512_loadu_pd(Z + n2), _mm512_set1_pd(z1));
                        const __m512d r2 = _mm512_fmadd_pd(dz, dz, _mm512_fmadd_pd(dy, dy, _mm512_mul_pd(dx, dx)));
                        const __mmask8 keep = _mm512_mask_cmp_pd_mask(live, r2, _mm512_set1_pd(limit2), _CMP_LT_OQ);
                        __m512d c = _mm512_mul_pd(_mm512_loadu_pd(UX + n2), _mm512_set1_pd(u1));
                        c = _mm512_fmadd_pd(_mm512_loadu_pd(UY + n2), _mm512_set1_pd(v1), c);
                        c = _mm512_fmadd_pd(_mm512_loadu_pd(UZ + n2), _mm512_set1_pd(w1), c);
                        c = _mm512_min_pd(_mm512_set1_pd(1.0), _mm512_max_pd(_mm512_set1_pd(-1.0), c));
                        _mm512_storeu_pd(cosb + cnt, _mm512_maskz_compress_pd(keep, c));
                        _mm512_storeu_pd(r2b + cnt, _mm512_maskz_compress_pd(keep, r2));
                        for (int64_t e = 0; e < ne; ++e) {
                            const double* a = Arow + e * ma;
                            const __m512d w = _mm512_mul_pd(_mm512_loadu_pd(a + n2), _mm512_set1_pd(a[n1]));
                            _mm512_storeu_pd(Wrow + e * CW + cnt, _mm512_maskz_compress_pd(keep, w));
                        }
                        cnt += _mm_popcnt_u32(keep);
#else
                        for (int64_t q = n2; q < n2 + width; ++q) {
                            const double dx = X[q] - x1, dy = Y[q] - y1, dz = Z[q] - z1;
                            const double r2 = dx * dx + dy * dy + dz * dz;
                            const double c = u1 * UX[q] + v1 * UY[q] + w1 * UZ[q];
                            cosb[cnt] = std::min(1.0, std::max(-1.0, c));
                            r2b[cnt] = r2;
                            for (int64_t e = 0; e < ne; ++e) Wrow[e * CW + cnt] = Arow[e * ma + n1] * Arow[e * ma + q];
                            cnt += r2 < limit2 ? 1 : 0;
                        }
#endif
                    }
                }
                if (cnt > 0) process(g4, cnt, full_matrix, params);
#if ALIP_KERNEL_AVX512
                if (full_matrix && pow2_zetas)
                    for (int64_t z = 0; z < nz; ++z) {
                        const ZetaLambda& zl = tb.zeta_lambdas[z];
                        const double* R = &S.R[size_t((zl.lambda_index * tb.ladder_depth + rung_of(zl.integer_zeta)) * ne)];
                        for (int64_t e = 0; e < ne; ++e) S.M[size_t(z * ne + e)] += R[e];
                    }
#endif
                const int64_t offset = base + (g4 ? 0 : int64_t(tb.g4_index.size()));
                for (size_t p = 0; p < params.size(); ++p) {
                    const AngularIndex& ix = params[p];
                    const double sum = full_matrix ? S.M[size_t(ix.zl * ne + ix.eta)] : S.M[p];
                    g[offset + int64_t(p)] += ix.prefactor * sum;
                }
            }
        }
    }
}

ALIP_KERNEL_END
