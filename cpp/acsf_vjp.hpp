// The G4 / G5 part of the fused VJP (forces / virial) mode in one AVX-512 pass, applying
// what made the values kernel fast (acsf_values.hpp) to the derivative terms:
//  * per neighbor, the unit vector, f_c, f_c'/r, 1/r and exp(-eta r^2) are computed once,
//    in rows padded with zeros;
//  * for a fixed n1 the second neighbors n2 are contiguous: the test r_12 < r_c and the
//    pair quantities (cos, r_12^2, f1 f2, f1' f2 / r1, f1 f2' / r2, 1/r2, v2, exp products)
//    run 8 lanes wide without gathers, and the pairs that pass are packed (compress) into a
//    chunk; quantities of n1 are broadcast again per 8 packed pairs (gathered when the 8
//    span two n1);
//  * per 8 packed pairs, in one pass: 1/r_12 (rsqrt14 + two Newton steps), f_c(r_12) and
//    its derivative and exp(-eta r_12^2) (inline polynomials, acsf_simd.hpp), the ladder of
//    squares of 1 + lambda cos, P = b^zeta and dP/dcos = zeta lambda b^(zeta - 1) as
//    products of precomputed rungs, the dE/dG-contracted sums U, V, H (grouped by eta:
//    H = sum_e eta_e E_e V_e), and the per-pair coefficients, added to (coef, x, y, z) of
//    dE/dv_n1 and dE/dv_n2 kept interleaved (4 x 8 transpose, one 256-bit add per pair;
//    one reduction when the 8 pairs share n1).
// Integer zetas only (the ladder); other zetas, and the variants without AVX-512, keep the
// chunked loops of derivative_terms (acsf_kernel.hpp).
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "acsf_kernel.hpp"
#include "acsf_simd.hpp"
#include "kernel_variant.hpp"

ALIP_KERNEL_BEGIN

#if ALIP_KERNEL_AVX512
/// acc[4 idx[j] + c] += (a, b, c, d)[c] lane j, for j < lanes, in lane order (repeated
/// indices add up); tmp holds 32 doubles.
inline void transpose_add(__m512d a, __m512d b, __m512d c, __m512d d, const int64_t* idx, int lanes, double* acc,
                          double* tmp) {
    const __m512d t0 = _mm512_unpacklo_pd(a, b), t1 = _mm512_unpackhi_pd(a, b);  // (a0 b0 a2 b2 ..), (a1 b1 ..)
    const __m512d t2 = _mm512_unpacklo_pd(c, d), t3 = _mm512_unpackhi_pd(c, d);
    const __m512i lo = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0), hi = _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4);
    _mm512_storeu_pd(tmp, _mm512_permutex2var_pd(t0, lo, t2));       // lanes 0, 2
    _mm512_storeu_pd(tmp + 8, _mm512_permutex2var_pd(t0, hi, t2));   // lanes 4, 6
    _mm512_storeu_pd(tmp + 16, _mm512_permutex2var_pd(t1, lo, t3));  // lanes 1, 3
    _mm512_storeu_pd(tmp + 24, _mm512_permutex2var_pd(t1, hi, t3));  // lanes 5, 7
    static constexpr int where[8] = {0, 16, 4, 20, 8, 24, 12, 28};
    for (int j = 0; j < lanes; ++j) {
        double* p = acc + 4 * idx[j];
        _mm256_storeu_pd(p, _mm256_add_pd(_mm256_loadu_pd(p), _mm256_loadu_pd(tmp + where[j])));
    }
}
#endif

inline bool vjp_angular_fused(const AcsfTables& tb, VjpMode& mode, const LocalNeighbors& L, BlockScratch& B) {
#if !ALIP_KERNEL_AVX512
    (void)tb, (void)mode, (void)L, (void)B;
    return false;
#else
    const int depth = tb.ladder_depth;
    if (depth < 1 || depth > 7) return false;
    for (const ZetaLambda& zl : tb.zeta_lambdas)
        if (zl.integer_zeta < 1) return false;
    const int64_t m = L.m, ma = m + 8;
    const int32_t ns = tb.spec.n_species;
    const int64_t ne = int64_t(tb.angular_etas.size());
    const int64_t nz = int64_t(tb.zeta_lambdas.size());
    const int64_t nlam = int64_t(tb.lambdas.size());
    const int64_t C = kPairChunk, CS = kPairChunk + 8;
    const double rc = tb.spec.cutoff, rc2 = rc * rc;
    const bool cosine = tb.spec.cutoff_function == CutoffFunction::Cosine;
    const int64_t n_params = int64_t(std::max(tb.g4_index.size(), tb.g5_index.size()));

    // ---- layout of the work arrays -----------------------------------------------
    enum { NX, NY, NZ, NUX, NUY, NUZ, NF, NG, NIR, NROWS };  // per neighbor, then ne exp rows
    enum { PCOS, PR2, PA, PB1, PB2, PIR2, PX2, PY2, PZ2, PROWS };  // then ne W rows
    const size_t per_nb = size_t((NROWS + ne) * ma), per_pair = size_t((PROWS + ne) * CS);
    const size_t blk = size_t((ne + 2 * nz + nlam * depth) * 8 + 32 + nz);
    const size_t weights = size_t(mode.n_rhs * n_params);
    const size_t acc_size = size_t(mode.n_rhs * m * 4);
    B.fused.resize(per_nb + per_pair + blk + weights + acc_size);
    B.fused_idx.resize(size_t(2 * CS + n_params + ne + 1 + mode.n_rhs + 16 * nz));
    double* nb = B.fused.data();
    double* pk = nb + per_nb;
    double* bk = pk + per_pair;
    double* wt = bk + blk;
    // (n_rhs, m, 4): (coefficient of v_n, cross terms x, y, z) of dE/dv_n, interleaved
    double* acc4 = wt + weights;
    std::fill(acc4, acc4 + acc_size, 0.0);
    int64_t* I1 = B.fused_idx.data();
    int64_t* I2 = I1 + CS;
    int64_t* zq = I2 + CS;          // (n_params,) zeta-lambda index of the params, grouped by eta
    int64_t* gstart = zq + n_params;  // (ne + 1,) groups of equal eta
    int64_t* active = gstart + ne + 1;  // (n_rhs,) whether any weight of the family is nonzero
    // (nz, 16): per (zeta, lambda), the rungs (offsets into the ladder block) whose product is
    // b^zeta: count, then offsets; from slot 8, those of b^(zeta - 1)
    int64_t* ztab = active + mode.n_rhs;
    for (int64_t z = 0; z < nz; ++z) {
        const ZetaLambda& zl = tb.zeta_lambdas[size_t(z)];
        for (int half = 0; half < 2; ++half) {
            int64_t* slot = ztab + 16 * z + 8 * half;
            const int e = zl.integer_zeta - half;
            slot[0] = 0;
            for (int t = 0; (e >> t) > 0; ++t)
                if ((e >> t) & 1) slot[1 + slot[0]++] = (zl.lambda_index * depth + t) * 8;
        }
    }
    auto nrow = [&](int64_t r) { return nb + r * ma; };
    auto prow = [&](int64_t r) { return pk + r * CS; };
    double* Eb = bk;                       // (ne, 8)
    double* Pb = Eb + ne * 8;              // (nz, 8)
    double* dPb = Pb + nz * 8;             // (nz, 8)
    double* Rb = dPb + nz * 8;             // (nlam, depth, 8)
    double* Sb = Rb + nlam * depth * 8;    // (4, 8) transposed scatter terms
    double* zl_scale = Sb + 32;            // (nz,) zeta lambda
    for (int64_t z = 0; z < nz; ++z) zl_scale[z] = tb.zeta_lambdas[size_t(z)].zeta * tb.zeta_lambdas[size_t(z)].lambda;

    for (int64_t n = 0; n < ma; ++n) {
        const bool in = n < m;
        const double ir = in ? L.inv_r[n] : 0.0;
        nrow(NX)[n] = in ? L.x[n] : 0.0;
        nrow(NY)[n] = in ? L.y[n] : 0.0;
        nrow(NZ)[n] = in ? L.z[n] : 0.0;
        nrow(NUX)[n] = in ? L.x[n] * ir : 0.0;
        nrow(NUY)[n] = in ? L.y[n] * ir : 0.0;
        nrow(NUZ)[n] = in ? L.z[n] * ir : 0.0;
        nrow(NF)[n] = in ? L.fc[n] : 0.0;
        nrow(NG)[n] = in ? L.dfc[n] * ir : 0.0;
        nrow(NIR)[n] = ir;
        for (int64_t e = 0; e < ne; ++e) nrow(NROWS + e)[n] = in ? L.expo[e * m + n] : 0.0;
    }

    // per (zeta, lambda): the rungs whose product is b^zeta, and those of b^(zeta - 1)
    const __m512d one = _mm512_set1_pd(1.0), zero = _mm512_setzero_pd();
    const double* X = nrow(NX);
    const double* Y = nrow(NY);
    const double* Z = nrow(NZ);
    const double* UXn = nrow(NUX);
    const double* UYn = nrow(NUY);
    const double* UZn = nrow(NUZ);
    const double* Fn = nrow(NF);
    const double* Gn = nrow(NG);
    const double* IRn = nrow(NIR);
    const double* EXn = nrow(NROWS);

    // one chunk of `cnt` packed pairs of one family
    auto process = [&](bool g4, int64_t cnt, int64_t offset, const std::vector<AngularIndex>& params) {
        const double a_eta = g4 ? 4.0 : 2.0, b_eta = g4 ? 2.0 : 0.0;
        const int64_t np = int64_t(params.size());
        const double a = kPi / rc;
        // local copies: the stores below would otherwise force reloads of the captures
        const int dep = depth;
        const int64_t n_lam = nlam, n_zl = nz;
        const double* lambdas = tb.lambdas.data();
        const double* zlc = zl_scale;
        const int64_t* zt = ztab;
        double* const rungs = Rb;
        double* const Pb_ = Pb;
        double* const dPb_ = dPb;
        for (int64_t k = 0; k < cnt; k += 8) {
            const __mmask8 live = tail_mask(cnt - k);
            const __m512d c = _mm512_maskz_loadu_pd(live, prow(PCOS) + k);
            const __m512d A = _mm512_maskz_loadu_pd(live, prow(PA) + k);
            const __m512d B1 = _mm512_maskz_loadu_pd(live, prow(PB1) + k);
            const __m512d B2 = _mm512_maskz_loadu_pd(live, prow(PB2) + k);
            __m512d Fc = A, dF1 = B1, dF2 = B2, dFb = zero;
            if (g4) {
                const __m512d r2 = _mm512_maskz_loadu_pd(live, prow(PR2) + k);
                // 1/r_12 from rsqrt14 (2^-14) and two Newton steps (~1e-16 relative), r_12 = r_12^2 / r_12;
                // padding lanes (r2 = 0) get 0, not inf
                __m512d ir12 = _mm512_maskz_rsqrt14_pd(live, r2);
                const __m512d half_r2 = _mm512_mul_pd(_mm512_set1_pd(0.5), r2), three_halves = _mm512_set1_pd(1.5);
                ir12 = _mm512_mul_pd(ir12, _mm512_fnmadd_pd(half_r2, _mm512_mul_pd(ir12, ir12), three_halves));
                ir12 = _mm512_mul_pd(ir12, _mm512_fnmadd_pd(half_r2, _mm512_mul_pd(ir12, ir12), three_halves));
                const __m512d r12 = _mm512_mul_pd(r2, ir12);
                __m512d f12, df12;
                if (cosine) {
                    cosine_cutoff_deriv(r12, a, rc, f12, df12);
                } else {
                    const __m512d x = _mm512_mul_pd(r12, _mm512_set1_pd(1.0 / rc));
                    const __m512d x2 = _mm512_mul_pd(x, x);
                    const __mmask8 in = _mm512_cmp_pd_mask(r12, _mm512_set1_pd(rc), _CMP_LT_OQ);
                    // 1 + x^3 (-10 + x (15 - 6 x)), x^2 (-30 + x (60 - 30 x)) / rc
                    __m512d p = _mm512_fmadd_pd(x, _mm512_set1_pd(-6.0), _mm512_set1_pd(15.0));
                    p = _mm512_fmadd_pd(x, p, _mm512_set1_pd(-10.0));
                    f12 = _mm512_maskz_mov_pd(in, _mm512_fmadd_pd(_mm512_mul_pd(x2, x), p, one));
                    __m512d q = _mm512_fmadd_pd(x, _mm512_set1_pd(-30.0), _mm512_set1_pd(60.0));
                    q = _mm512_fmadd_pd(x, q, _mm512_set1_pd(-30.0));
                    df12 = _mm512_maskz_mov_pd(in, _mm512_div_pd(_mm512_mul_pd(x2, q), _mm512_set1_pd(rc)));
                }
                const __m512d d12 = _mm512_mul_pd(_mm512_mul_pd(A, df12), ir12);
                Fc = _mm512_mul_pd(A, f12);
                dF1 = _mm512_fmadd_pd(B1, f12, d12);
                dF2 = _mm512_fmadd_pd(B2, f12, d12);
                dFb = _mm512_sub_pd(zero, d12);
                for (int64_t e = 0; e < ne; ++e) {
                    const __m512d ex = exp_nonpositive(_mm512_mul_pd(_mm512_set1_pd(-tb.angular_etas[e]), r2));
                    _mm512_storeu_pd(Eb + e * 8, _mm512_mul_pd(_mm512_maskz_loadu_pd(live, prow(PROWS + e) + k), ex));
                }
            } else {
                for (int64_t e = 0; e < ne; ++e)
                    _mm512_storeu_pd(Eb + e * 8, _mm512_maskz_loadu_pd(live, prow(PROWS + e) + k));
            }
            for (int64_t l = 0; l < n_lam; ++l) {
                __m512d rung = _mm512_max_pd(zero, _mm512_fmadd_pd(_mm512_set1_pd(lambdas[l]), c, one));
                double* R = rungs + l * dep * 8;
                _mm512_storeu_pd(R, rung);
                for (int t = 1; t < dep; ++t) {
                    rung = _mm512_mul_pd(rung, rung);
                    _mm512_storeu_pd(R + t * 8, rung);
                }
            }
            for (int64_t z = 0; z < n_zl; ++z) {
                const int64_t* s = zt + 16 * z;
                __m512d P = s[0] ? _mm512_loadu_pd(rungs + s[1]) : one;
                for (int64_t i = 2; i <= s[0]; ++i) P = _mm512_mul_pd(P, _mm512_loadu_pd(rungs + s[i]));
                __m512d dP = _mm512_set1_pd(zlc[z]);
                for (int64_t i = 1; i <= s[8]; ++i) dP = _mm512_mul_pd(dP, _mm512_loadu_pd(rungs + s[8 + i]));
                _mm512_storeu_pd(Pb_ + z * 8, P);
                _mm512_storeu_pd(dPb_ + z * 8, dP);
            }
            const int64_t* i1 = I1 + k;
            const int64_t* i2 = I2 + k;
            const int lanes = int(std::min<int64_t>(8, cnt - k));
            const bool uniform = i1[0] == i1[lanes - 1];  // pairs are packed in n1 order
            // quantities of n1: broadcast when the 8 pairs share it, else gathered
            __m512d x1, y1, z1, ir1;
            if (uniform) {
                x1 = _mm512_set1_pd(X[i1[0]]);
                y1 = _mm512_set1_pd(Y[i1[0]]);
                z1 = _mm512_set1_pd(Z[i1[0]]);
                ir1 = _mm512_set1_pd(IRn[i1[0]]);
            } else {
                const __m512i idx = _mm512_maskz_loadu_epi64(live, i1);
                x1 = _mm512_i64gather_pd(idx, X, 8);
                y1 = _mm512_i64gather_pd(idx, Y, 8);
                z1 = _mm512_i64gather_pd(idx, Z, 8);
                ir1 = _mm512_i64gather_pd(idx, IRn, 8);
            }
            const __m512d C1c = _mm512_mul_pd(_mm512_mul_pd(Fc, c), _mm512_mul_pd(ir1, ir1));
            const __m512d ir2 = _mm512_maskz_loadu_pd(live, prow(PIR2) + k);
            const __m512d C2c = _mm512_mul_pd(_mm512_mul_pd(Fc, c), _mm512_mul_pd(ir2, ir2));
            const __m512d FIR = _mm512_mul_pd(Fc, _mm512_mul_pd(ir1, ir2));
            for (int64_t r = 0; r < mode.n_rhs; ++r) {
                if (!active[r]) continue;
                const double* wp = wt + r * np;
                // per eta group: Ue = sum w dP, Ve = sum w P; U = sum E_e Ue, V = sum E_e Ve, H = sum eta_e E_e Ve
                __m512d U = zero, V = zero, H = zero;
                for (int64_t e = 0; e < ne; ++e) {
                    if (gstart[e] == gstart[e + 1]) continue;
                    __m512d Ue = zero, Ve = zero, Ue2 = zero, Ve2 = zero;
                    int64_t q = gstart[e];
                    for (; q + 2 <= gstart[e + 1]; q += 2) {
                        const __m512d w0 = _mm512_set1_pd(wp[q]), w1 = _mm512_set1_pd(wp[q + 1]);
                        Ue = _mm512_fmadd_pd(w0, _mm512_loadu_pd(dPb + zq[q] * 8), Ue);
                        Ve = _mm512_fmadd_pd(w0, _mm512_loadu_pd(Pb + zq[q] * 8), Ve);
                        Ue2 = _mm512_fmadd_pd(w1, _mm512_loadu_pd(dPb + zq[q + 1] * 8), Ue2);
                        Ve2 = _mm512_fmadd_pd(w1, _mm512_loadu_pd(Pb + zq[q + 1] * 8), Ve2);
                    }
                    if (q < gstart[e + 1]) {
                        const __m512d w0 = _mm512_set1_pd(wp[q]);
                        Ue = _mm512_fmadd_pd(w0, _mm512_loadu_pd(dPb + zq[q] * 8), Ue);
                        Ve = _mm512_fmadd_pd(w0, _mm512_loadu_pd(Pb + zq[q] * 8), Ve);
                    }
                    const __m512d E = _mm512_loadu_pd(Eb + e * 8);
                    const __m512d EV = _mm512_mul_pd(E, _mm512_add_pd(Ve, Ve2));
                    U = _mm512_fmadd_pd(E, _mm512_add_pd(Ue, Ue2), U);
                    V = _mm512_add_pd(V, EV);
                    H = _mm512_fmadd_pd(_mm512_set1_pd(tb.angular_etas[size_t(e)]), EV, H);
                }
                const __m512d aFH = _mm512_mul_pd(_mm512_mul_pd(_mm512_set1_pd(a_eta), Fc), H);
                // sa1 = -Fc cos/r1^2 U + V dF1 - a Fc H; sb = Fc U/(r1 r2) + b Fc H + V dFb; sa2 likewise
                const __m512d sa1 = _mm512_maskz_mov_pd(live, _mm512_sub_pd(_mm512_fmsub_pd(V, dF1, aFH), _mm512_mul_pd(C1c, U)));
                const __m512d sa2 = _mm512_maskz_mov_pd(live, _mm512_sub_pd(_mm512_fmsub_pd(V, dF2, aFH), _mm512_mul_pd(C2c, U)));
                const __m512d sb = _mm512_maskz_mov_pd(
                    live, _mm512_fmadd_pd(V, dFb, _mm512_fmadd_pd(_mm512_mul_pd(_mm512_set1_pd(b_eta), Fc), H, _mm512_mul_pd(FIR, U))));
                double* acc = acc4 + r * m * 4;
                // n1 side: (sa1, sb x2, sb y2, sb z2); n2 side: (sa2, sb x1, sb y1, sb z1)
                const __m512d bx2 = _mm512_mul_pd(sb, _mm512_loadu_pd(prow(PX2) + k));
                const __m512d by2 = _mm512_mul_pd(sb, _mm512_loadu_pd(prow(PY2) + k));
                const __m512d bz2 = _mm512_mul_pd(sb, _mm512_loadu_pd(prow(PZ2) + k));
                if (uniform) {
                    double* d = acc + i1[0] * 4;
                    d[0] += _mm512_reduce_add_pd(sa1);
                    d[1] += _mm512_reduce_add_pd(bx2);
                    d[2] += _mm512_reduce_add_pd(by2);
                    d[3] += _mm512_reduce_add_pd(bz2);
                } else {
                    transpose_add(sa1, bx2, by2, bz2, i1, lanes, acc, Sb);
                }
                transpose_add(sa2, _mm512_mul_pd(sb, x1), _mm512_mul_pd(sb, y1), _mm512_mul_pd(sb, z1), i2, lanes, acc,
                              Sb);
            }
        }
        (void)offset;
    };

    const int64_t n_radial = tb.n_radial_features();
    const __m512i iota = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
    for (int32_t s1 = 0; s1 < ns; ++s1) {
        for (int32_t s2 = s1; s2 < ns; ++s2) {
            const int64_t base = n_radial + int64_t(tb.pair_index[s1 * ns + s2]) * tb.n_angular_per_pair;
            for (int family = 0; family < 2; ++family) {
                const bool g4 = family == 0;
                const std::vector<AngularIndex>& params = g4 ? tb.g4_index : tb.g5_index;
                if (params.empty()) continue;
                const int64_t offset = base + (g4 ? 0 : int64_t(tb.g4_index.size()));
                const int64_t np = int64_t(params.size());
                // the family's parameters grouped by eta; per rhs, their weights dE/dG * prefactor
                int64_t q = 0;
                for (int64_t e = 0; e < ne; ++e) {
                    gstart[e] = q;
                    for (int64_t p = 0; p < np; ++p)
                        if (params[size_t(p)].eta == e) zq[q++] = params[size_t(p)].zl;
                }
                gstart[ne] = q;
                for (int64_t r = 0; r < mode.n_rhs; ++r) {
                    active[r] = 0;
                    int64_t qq = 0;
                    for (int64_t e = 0; e < ne; ++e)
                        for (int64_t p = 0; p < np; ++p)
                            if (params[size_t(p)].eta == e) {
                                const double w = mode.w[r * mode.w_stride + offset + p] * params[size_t(p)].prefactor;
                                wt[r * np + qq++] = w;
                                active[r] |= w != 0.0;
                            }
                }
                const __m512d limit2 = _mm512_set1_pd(g4 ? rc2 : std::numeric_limits<double>::max());
                int64_t cnt = 0;
                for (int64_t n1 = L.seg[s1]; n1 < L.seg[s1 + 1]; ++n1) {
                    const __m512d x1 = _mm512_set1_pd(X[n1]), y1 = _mm512_set1_pd(Y[n1]), z1 = _mm512_set1_pd(Z[n1]);
                    const __m512d u1 = _mm512_set1_pd(UXn[n1]), v1 = _mm512_set1_pd(UYn[n1]), w1 = _mm512_set1_pd(UZn[n1]);
                    const __m512d f1 = _mm512_set1_pd(Fn[n1]), g1 = _mm512_set1_pd(Gn[n1]);
                    const __m512i n1v = _mm512_set1_epi64(n1);
                    const int64_t lo = std::max(n1 + 1, L.seg[s2]), hi = L.seg[s2 + 1];
                    for (int64_t n2 = lo; n2 < hi; n2 += 8) {
                        if (cnt > C - 8) {
                            process(g4, cnt, offset, params);
                            cnt = 0;
                        }
                        const __mmask8 live = tail_mask(hi - n2);
                        const __m512d x2 = _mm512_loadu_pd(X + n2), y2 = _mm512_loadu_pd(Y + n2),
                                      z2 = _mm512_loadu_pd(Z + n2);
                        const __m512d dx = _mm512_sub_pd(x2, x1), dy = _mm512_sub_pd(y2, y1), dz = _mm512_sub_pd(z2, z1);
                        const __m512d r2 = _mm512_fmadd_pd(dz, dz, _mm512_fmadd_pd(dy, dy, _mm512_mul_pd(dx, dx)));
                        const __mmask8 keep = _mm512_mask_cmp_pd_mask(live, r2, limit2, _CMP_LT_OQ);
                        __m512d c = _mm512_mul_pd(_mm512_loadu_pd(UXn + n2), u1);
                        c = _mm512_fmadd_pd(_mm512_loadu_pd(UYn + n2), v1, c);
                        c = _mm512_fmadd_pd(_mm512_loadu_pd(UZn + n2), w1, c);
                        c = _mm512_min_pd(one, _mm512_max_pd(_mm512_set1_pd(-1.0), c));
                        const __m512d f2 = _mm512_loadu_pd(Fn + n2);
                        const __m512d ir2 = _mm512_loadu_pd(IRn + n2);
                        double* const out = pk + cnt;
                        auto put = [keep, out, CS](int row, __m512d v) {
                            _mm512_storeu_pd(out + row * CS, _mm512_maskz_compress_pd(keep, v));
                        };
                        put(PCOS, c);
                        put(PR2, r2);
                        put(PA, _mm512_mul_pd(f1, f2));
                        put(PB1, _mm512_mul_pd(g1, f2));
                        put(PB2, _mm512_mul_pd(f1, _mm512_loadu_pd(Gn + n2)));
                        put(PIR2, ir2);
                        put(PX2, x2);
                        put(PY2, y2);
                        put(PZ2, z2);
                        for (int64_t e = 0; e < ne; ++e) {
                            const double* ex = EXn + e * ma;
                            put(int(PROWS + e), _mm512_mul_pd(_mm512_set1_pd(ex[n1]), _mm512_loadu_pd(ex + n2)));
                        }
                        _mm512_storeu_si512(I1 + cnt, n1v);
                        _mm512_storeu_si512(I2 + cnt, _mm512_maskz_compress_epi64(
                                                          keep, _mm512_add_epi64(_mm512_set1_epi64(n2), iota)));
                        cnt += _mm_popcnt_u32(keep);
                    }
                }
                if (cnt > 0) process(g4, cnt, offset, params);
            }
        }
    }
    for (int64_t r = 0; r < mode.n_rhs; ++r) {
        const double* acc = acc4 + r * m * 4;
        double* coef = mode.coef.data() + r * m;
        double* ex = mode.ex.data() + r * m;
        double* ey = mode.ey.data() + r * m;
        double* ez = mode.ez.data() + r * m;
        for (int64_t n = 0; n < m; ++n) {
            coef[n] += acc[4 * n];
            ex[n] += acc[4 * n + 1];
            ey[n] += acc[4 * n + 2];
            ez[n] += acc[4 * n + 3];
        }
    }
    return true;
#endif
}

ALIP_KERNEL_END
