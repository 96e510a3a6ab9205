// The values-only kernel (G2, G4, G5 of one center, no derivatives), included after
// acsf_kernel.hpp, whose center() gathers the neighbors; one copy per CPU variant.
//
// Values need no per-pair derivative state, so the triplet sum is organised for speed:
//  * per neighbor n, a_e(n) = exp(-eta_e r_n^2) f_c(r_n) and the unit vector are computed
//    once, so a pair (n1, n2) needs only a dot product, |v2 - v1|^2 and a_e(n1) a_e(n2);
//  * for a fixed n1 the second neighbors n2 are contiguous (rows padded with zeros): the
//    test r_12 < r_c and the pair quantities run simd::kWidth lanes wide without gathers,
//    and the pairs that pass are packed (simd::Packer: AVX-512 compress, an AVX2
//    permutation, NEON / scalar lane moves) into a chunk;
//  * per chunk, exp(-eta r_12^2) per distinct eta and f_c(r_12); then, when every zeta is
//    a power of two (1, 2, 4, ...), the sums over the chunk of b^(2^t) * E_e,
//    b = max(0, 1 + lambda cos), with the ladder of squares kept in registers; otherwise a
//    ladder of squares in memory, products of its rungs, and register-blocked sums of
//    P_zl * E_e over all (zeta-lambda, eta) combinations (or one sum per parameter when
//    few combinations are used).
// The feature of parameter p is prefactor_p * M[zl_p][eta_p] summed over chunks.
// Written once over simd.hpp: in the SIMD backends the exps (G2 included) and the cosine
// cutoff of r_12 are inline polynomials (<= 2 ulp / 2.2e-16 absolute, acsf_simd.hpp); the
// scalar backend calls std::exp / std::cos in the same loops.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "acsf_kernel.hpp"
#include "acsf_simd.hpp"
#include "kernel_variant.hpp"

ALIP_KERNEL_BEGIN

/// Work arrays of the values kernel (kept per thread across centers).
struct ValuesScratch {
    static constexpr int64_t kChunk = 512;          ///< packed pairs per chunk (a multiple of 8)
    static constexpr int64_t kPad = 8;              ///< zero entries after each neighbor row (full-width loads)
    static constexpr int64_t kStride = kChunk + 8;  ///< rows of W: not a multiple of 4 KiB apart
    int64_t ma = 0;                                 ///< row length of A: m + kPad
    std::vector<double> x, y, z, ux, uy, uz, r, f;  ///< (m + kPad,) vectors, unit vectors, r, f_c(r)
    std::vector<double> A;                          ///< (n_legs, ma) exp(-eta (r - rs)^2) f_c(r) per window
    std::vector<double> cos, r2, r12, fc;           ///< (kChunk,) per packed pair
    std::vector<double> W;                          ///< (n_eta, kStride) a_e(n1) a_e(n2), then times exp f_c of r_12
    std::vector<double> ladder;                     ///< (n_lambda, depth, kStride)
    std::vector<double> P;                          ///< (n_zl, kStride) for zetas that are not a single rung
    std::vector<const double*> Pz;                  ///< (n_zl,) where P of each (zeta, lambda) is
    std::vector<const double*> Ep;                  ///< (n_eta,) rows of W
    std::vector<double> M;                          ///< (n_zl, n_eta) or (n_params,) accumulated sums
    std::vector<double> R;                          ///< (n_lambda, depth, n_eta) sums of the rungs (power-of-two zetas)
    double tmp[16];

    void resize(int64_t m, int64_t n_eta, int64_t n_legs, int64_t n_zl, int64_t n_lambda, int depth, int64_t n_params) {
        ma = m + kPad;
        for (auto* v : {&x, &y, &z, &ux, &uy, &uz, &r, &f}) {
            v->resize(size_t(ma));
            std::fill(v->begin() + m, v->end(), 0.0);
        }
        A.resize(size_t(n_legs * ma));
        for (int64_t e = 0; e < n_legs; ++e) std::fill(&A[size_t(e * ma + m)], &A[size_t(e * ma + ma)], 0.0);
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

/// R[t * NE + b] += sum_k b_k^(2^t) E[b][k], b_k = max(0, 1 + lambda cos_k), t < D, with the
/// ladder of squares kept in registers (no stores); n is a multiple of kWidth.
template <int D, int NE>
inline void ladder_dot(const double* cos, double lambda, const double* const* E, int64_t n, double* R) {
    Vd acc[D][NE];
    for (int t = 0; t < D; ++t)
        for (int b = 0; b < NE; ++b) acc[t][b] = simd::zero();
    const Vd lam = simd::set1(lambda), one = simd::set1(1.0), zero = simd::zero();
    for (int64_t k = 0; k < n; k += simd::kWidth) {
        Vd rung = simd::max(zero, simd::fma(lam, simd::load(cos + k), one));
        Vd e[NE];
        for (int b = 0; b < NE; ++b) e[b] = simd::load(E[b] + k);
        for (int t = 0; t < D; ++t) {
            for (int b = 0; b < NE; ++b) acc[t][b] = simd::fma(rung, e[b], acc[t][b]);
            rung = rung * rung;
        }
    }
    for (int t = 0; t < D; ++t)
        for (int b = 0; b < NE; ++b) R[t * NE + b] += simd::reduce_add(acc[t][b]);
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

/// G2 of one center: per neighbor species block, sum of exp(-eta (r - rs)^2) f_c(r).
inline void radial_values(const AcsfTables& tb, const LocalNeighbors& L, const ValuesScratch& S, double* g) {
    const int32_t ns = tb.spec.n_species;
    const int64_t n_g2 = int64_t(tb.spec.g2.size());
    for (int32_t sp = 0; sp < ns && n_g2 > 0; ++sp) {
        const int64_t lo = L.seg[sp], hi = L.seg[sp + 1];
        for (int64_t p = 0; p < n_g2; ++p) {
            const double eta = tb.spec.g2[p].eta, rs = tb.spec.g2[p].rs;
            Vd acc = simd::zero();
            for (int64_t k = lo; k < hi; k += simd::kWidth) {  // rows are padded: full-width loads
                const simd::Md live = simd::tail(hi - k);
                const Vd dr = simd::load(&S.r[k]) - simd::set1(rs);
                const Vd ex = exp_nonpositive(simd::set1(-eta) * (dr * dr));
                acc = acc + simd::zero_unless(live, ex * simd::load(&S.f[k]));
            }
            g[int64_t(sp) * n_g2 + p] += simd::reduce_add(acc);
        }
    }
}

/// Whether every zeta is a power of two (1, 2, 4, ...): then sums of the ladder's rungs
/// are all the angular values need.
inline bool power_of_two_zetas(const AcsfTables& tb) {
    bool pow2 = tb.ladder_depth >= 1 && tb.ladder_depth <= 7;
    for (const ZetaLambda& zl : tb.zeta_lambdas)
        if (zl.integer_zeta < 1 || (zl.integer_zeta & (zl.integer_zeta - 1)) != 0) pow2 = false;
    return pow2;
}

/// Angular values of one chunk of `cnt` packed pairs of one family: for G4 the exps and
/// cutoff of r_12 folded into W; then the sums of (1 + lambda cos)^zeta E_eta into S.M
/// (or the rung sums into S.R when every zeta is a power of two).
inline void angular_values_chunk(const AcsfTables& tb, ValuesScratch& S, bool g4, int64_t cnt, bool full_matrix,
                                 const std::vector<AngularIndex>& params, bool pow2_zetas) {
    const int64_t ne = int64_t(tb.angular_etas.size());
    const int64_t nz = int64_t(tb.zeta_lambdas.size());
    const int64_t nlam = int64_t(tb.lambdas.size());
    const int64_t CR = ValuesScratch::kStride, CW = CR;
    const double rc = tb.spec.cutoff;
    const int64_t n = (cnt + 7) & ~int64_t(7);
    for (int64_t k = cnt; k < n; ++k) {  // padding lanes contribute exactly 0
        S.cos[k] = 0.0;
        S.r2[k] = 0.0;
        for (int64_t e = 0; e < ne; ++e) S.W[size_t(e * CW + k)] = 0.0;
    }
    if (g4) {  // one pass: f_c(r_12), then each W_e times exp(-eta_e r_12^2) f_c(r_12)
        const double a = kPi / rc;
        const bool cosine = tb.spec.cutoff_function == CutoffFunction::Cosine;
        for (int64_t k = 0; k < n; k += simd::kWidth) {
            const Vd r2 = simd::load(&S.r2[k]);
            const Vd r12 = simd::sqrt(r2);
            Vd fc = simd::zero(), dfc = simd::zero();
            if (cosine) {
                fc = cosine_cutoff(r12, a, rc);
            } else {
                polynomial_cutoff_deriv(r12, rc, fc, dfc);
            }
            for (int64_t e = 0; e < ne; ++e) {
                double* w = &S.W[size_t(e * CW + k)];
                const double rs = tb.angular_rs[e];
                const Vd dr = r12 - simd::set1(rs);
                const Vd ex = exp_nonpositive(simd::set1(-tb.angular_etas[e]) * (rs == 0.0 ? r2 : dr * dr));
                simd::store(w, simd::load(w) * (ex * fc));
            }
        }
    }
    for (int64_t e = 0; e < ne; ++e) S.Ep[e] = &S.W[size_t(e * CW)];
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
}

/// G2, G4, G5 of one center (values only): radial_values, then per species pair and
/// family the pairs (n1 < n2) with r_12 < r_c packed into chunks (angular_values_chunk).
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
    const int64_t n_legs = int64_t(tb.leg_etas.size());
    S.resize(m, ne, n_legs, nz, nlam, tb.ladder_depth, n_params);
    const bool pow2_zetas = power_of_two_zetas(tb);
    auto rung_of = [](int zeta) {
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

    std::fill(g, g + tb.n_features, 0.0);
    radial_values(tb, L, S, g);
    if (tb.n_angular_per_pair == 0) return;

    // ---- G4 / G5 --------------------------------------------------------------------
    for (int64_t e = 0; e < n_legs; ++e) {
        const double eta = tb.leg_etas[e];
        const Vd rs = simd::set1(tb.leg_rs[e]);
        double* a = &S.A[size_t(e * ma)];
        for (int64_t n = 0; n < m; n += simd::kWidth) {  // padding: f = 0 -> a = 0
            const Vd dr = simd::load(&S.r[n]) - rs;
            simd::store(a + n, exp_nonpositive(simd::set1(-eta) * (dr * dr)) * simd::load(&S.f[n]));
        }
    }
    const double* X = S.x.data();
    const double* Y = S.y.data();
    const double* Z = S.z.data();
    const double* UX = S.ux.data();
    const double* UY = S.uy.data();
    const double* UZ = S.uz.data();
    const double* Arow = S.A.data();
    const bool two_windows = tb.angular_two_windows;
    const int32_t* leg_a = tb.leg_a.data();
    const int32_t* leg_b = tb.leg_b.data();
    double* Wrow = S.W.data();
    double* cosb = S.cos.data();
    double* r2b = S.r2.data();

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
                    const Vd x1v = simd::set1(x1), y1v = simd::set1(y1), z1v = simd::set1(z1);
                    const Vd u1v = simd::set1(u1), v1v = simd::set1(v1), w1v = simd::set1(w1);
                    // packs the pairs (n1, n2 .. n2 + kWidth) with r_12 < limit; `tail`: only the
                    // lanes before hi (rows are padded with kPad zeros: full-width loads)
                    auto pack_block = [&](int64_t n2, auto tail) {
                        if (cnt > C - simd::kWidth) {
                            angular_values_chunk(tb, S, g4, cnt, full_matrix, params, pow2_zetas);
                            cnt = 0;
                        }
                        const Vd dx = simd::load(X + n2) - x1v;
                        const Vd dy = simd::load(Y + n2) - y1v;
                        const Vd dz = simd::load(Z + n2) - z1v;
                        const Vd r2 = simd::fma(dz, dz, simd::fma(dy, dy, dx * dx));
                        simd::Md keep = simd::lt(r2, simd::set1(limit2));
                        if constexpr (decltype(tail)::value) keep = keep & simd::tail(hi - n2);
                        Vd c = simd::load(UX + n2) * u1v;
                        c = simd::fma(simd::load(UY + n2), v1v, c);
                        c = simd::fma(simd::load(UZ + n2), w1v, c);
                        c = simd::min(simd::set1(1.0), simd::max(simd::set1(-1.0), c));
                        const simd::Packer pack(keep);
                        pack.store(cosb + cnt, c);
                        pack.store(r2b + cnt, r2);
                        if (!two_windows) {  // one window per group: leg e is group e's (AcsfTables)
                            for (int64_t e = 0; e < ne; ++e) {
                                const double* a = Arow + e * ma;
                                pack.store(Wrow + e * CW + cnt, simd::load(a + n2) * simd::set1(a[n1]));
                            }
                        } else {
                            for (int64_t e = 0; e < ne; ++e) {
                                const double* a = Arow + leg_a[e] * ma;
                                const double* b = Arow + leg_b[e] * ma;
                                const Vd ab = simd::load(b + n2) * simd::set1(a[n1]);
                                if (a == b) {
                                    pack.store(Wrow + e * CW + cnt, ab);
                                    continue;
                                }
                                const Vd ba = simd::load(a + n2) * simd::set1(b[n1]);  // 1/2 (a_1 b_2 + b_1 a_2)
                                pack.store(Wrow + e * CW + cnt, simd::set1(0.5) * (ab + ba));
                            }
                        }
                        cnt += simd::count(keep);
                    };
                    int64_t n2 = lo;
                    for (; n2 + simd::kWidth <= hi; n2 += simd::kWidth) pack_block(n2, std::false_type{});
                    if (n2 < hi) pack_block(n2, std::true_type{});
                }
                if (cnt > 0) angular_values_chunk(tb, S, g4, cnt, full_matrix, params, pow2_zetas);
                if (full_matrix && pow2_zetas)
                    for (int64_t z = 0; z < nz; ++z) {
                        const ZetaLambda& zl = tb.zeta_lambdas[z];
                        const double* R =
                            &S.R[size_t((zl.lambda_index * tb.ladder_depth + rung_of(zl.integer_zeta)) * ne)];
                        for (int64_t e = 0; e < ne; ++e) S.M[size_t(z * ne + e)] += R[e];
                    }
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
