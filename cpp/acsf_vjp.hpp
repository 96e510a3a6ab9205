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
#include <type_traits>
#include <vector>

#include "acsf_kernel.hpp"
#include "acsf_simd.hpp"
#include "kernel_variant.hpp"

ALIP_KERNEL_BEGIN

inline bool vjp_angular_fused(const AcsfTables& tb, VjpMode& mode, const LocalNeighbors& L, BlockScratch& B) {
    const int depth = tb.ladder_depth;
    if (depth < 1 || depth > 7) return false;
    for (const ZetaLambda& zl : tb.zeta_lambdas)
        if (zl.integer_zeta < 1) return false;
    constexpr int W = simd::kWidth;
    const int64_t m = L.m, ma = m + 8;  // rows padded for full-width loads
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
    const size_t blk = size_t((ne + 2 * nz + nlam * depth) * W + nz);
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
                if ((e >> t) & 1) slot[1 + slot[0]++] = (zl.lambda_index * depth + t) * W;
        }
    }
    auto nrow = [&](int64_t r) { return nb + r * ma; };
    auto prow = [&](int64_t r) { return pk + r * CS; };
    double* Eb = bk;                       // (ne, W)
    double* Pb = Eb + ne * W;              // (nz, W)
    double* dPb = Pb + nz * W;             // (nz, W)
    double* Rb = dPb + nz * W;             // (nlam, depth, W)
    double* zl_scale = Rb + nlam * depth * W;  // (nz,) zeta lambda
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
    const Vd one = simd::set1(1.0), zero = simd::zero();
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
        for (int64_t k = 0; k < cnt; k += W) {
            const simd::Md live = simd::tail(cnt - k);
            const Vd c = simd::load_tail(live, prow(PCOS) + k);
            const Vd A = simd::load_tail(live, prow(PA) + k);
            const Vd B1 = simd::load_tail(live, prow(PB1) + k);
            const Vd B2 = simd::load_tail(live, prow(PB2) + k);
            Vd Fc = A, dF1 = B1, dF2 = B2, dFb = zero;
            if (g4) {
                const Vd r2 = simd::load_tail(live, prow(PR2) + k);
                // r_12 = r_12^2 / r_12; padding lanes (r2 = 0) take r2 = 1, not 1/0
                const Vd ir12 = simd::inv_sqrt(r2 + (one - simd::zero_unless(live, one)));
                const Vd r12 = r2 * ir12;
                Vd f12, df12;
                if (cosine) {
                    cosine_cutoff_deriv(r12, a, rc, f12, df12);
                } else {
                    polynomial_cutoff_deriv(r12, rc, f12, df12);
                }
                const Vd d12 = (A * df12) * ir12;
                Fc = A * f12;
                dF1 = simd::fma(B1, f12, d12);
                dF2 = simd::fma(B2, f12, d12);
                dFb = zero - d12;
                for (int64_t e = 0; e < ne; ++e) {
                    const Vd ex = exp_nonpositive(simd::set1(-tb.angular_etas[e]) * r2);
                    simd::store(Eb + e * W, simd::load_tail(live, prow(PROWS + e) + k) * ex);
                }
            } else {
                for (int64_t e = 0; e < ne; ++e) simd::store(Eb + e * W, simd::load_tail(live, prow(PROWS + e) + k));
            }
            for (int64_t l = 0; l < n_lam; ++l) {
                Vd rung = simd::max(zero, simd::fma(simd::set1(lambdas[l]), c, one));
                double* R = rungs + l * dep * W;
                simd::store(R, rung);
                for (int t = 1; t < dep; ++t) {
                    rung = rung * rung;
                    simd::store(R + t * W, rung);
                }
            }
            for (int64_t z = 0; z < n_zl; ++z) {
                const int64_t* s = zt + 16 * z;
                Vd P = s[0] ? simd::load(rungs + s[1]) : one;
                for (int64_t i = 2; i <= s[0]; ++i) P = P * simd::load(rungs + s[i]);
                Vd dP = simd::set1(zlc[z]);
                for (int64_t i = 1; i <= s[8]; ++i) dP = dP * simd::load(rungs + s[8 + i]);
                simd::store(Pb_ + z * W, P);
                simd::store(dPb_ + z * W, dP);
            }
            const int64_t* i1 = I1 + k;
            const int64_t* i2 = I2 + k;
            const int lanes = int(std::min<int64_t>(W, cnt - k));
            const bool uniform = i1[0] == i1[lanes - 1];  // pairs are packed in n1 order
            // quantities of n1: broadcast when the lanes share it, else gathered
            Vd x1, y1, z1, ir1;
            if (uniform) {
                x1 = simd::set1(X[i1[0]]);
                y1 = simd::set1(Y[i1[0]]);
                z1 = simd::set1(Z[i1[0]]);
                ir1 = simd::set1(IRn[i1[0]]);
            } else {
                x1 = simd::gather(X, i1, lanes);
                y1 = simd::gather(Y, i1, lanes);
                z1 = simd::gather(Z, i1, lanes);
                ir1 = simd::gather(IRn, i1, lanes);
            }
            const Vd C1c = (Fc * c) * (ir1 * ir1);
            const Vd ir2 = simd::load_tail(live, prow(PIR2) + k);
            const Vd C2c = (Fc * c) * (ir2 * ir2);
            const Vd FIR = Fc * (ir1 * ir2);
            for (int64_t r = 0; r < mode.n_rhs; ++r) {
                if (!active[r]) continue;
                const double* wp = wt + r * np;
                // per eta group: Ue = sum w dP, Ve = sum w P; U = sum E_e Ue, V = sum E_e Ve, H = sum eta_e E_e Ve
                Vd U = zero, V = zero, H = zero;
                for (int64_t e = 0; e < ne; ++e) {
                    if (gstart[e] == gstart[e + 1]) continue;
                    Vd Ue = zero, Ve = zero, Ue2 = zero, Ve2 = zero;
                    int64_t q = gstart[e];
                    for (; q + 2 <= gstart[e + 1]; q += 2) {
                        const Vd w0 = simd::set1(wp[q]), w1 = simd::set1(wp[q + 1]);
                        Ue = simd::fma(w0, simd::load(dPb + zq[q] * W), Ue);
                        Ve = simd::fma(w0, simd::load(Pb + zq[q] * W), Ve);
                        Ue2 = simd::fma(w1, simd::load(dPb + zq[q + 1] * W), Ue2);
                        Ve2 = simd::fma(w1, simd::load(Pb + zq[q + 1] * W), Ve2);
                    }
                    if (q < gstart[e + 1]) {
                        const Vd w0 = simd::set1(wp[q]);
                        Ue = simd::fma(w0, simd::load(dPb + zq[q] * W), Ue);
                        Ve = simd::fma(w0, simd::load(Pb + zq[q] * W), Ve);
                    }
                    const Vd E = simd::load(Eb + e * W);
                    const Vd EV = E * (Ve + Ve2);
                    U = simd::fma(E, Ue + Ue2, U);
                    V = V + EV;
                    H = simd::fma(simd::set1(tb.angular_etas[size_t(e)]), EV, H);
                }
                const Vd aFH = (simd::set1(a_eta) * Fc) * H;
                // sa1 = -Fc cos/r1^2 U + V dF1 - a Fc H; sb = Fc U/(r1 r2) + b Fc H + V dFb; sa2 likewise
                const Vd sa1 = simd::zero_unless(live, simd::fms(V, dF1, aFH) - C1c * U);
                const Vd sa2 = simd::zero_unless(live, simd::fms(V, dF2, aFH) - C2c * U);
                const Vd sb = simd::zero_unless(live, simd::fma(V, dFb, simd::fma(simd::set1(b_eta) * Fc, H, FIR * U)));
                double* acc = acc4 + r * m * 4;
                // n1 side: (sa1, sb x2, sb y2, sb z2); n2 side: (sa2, sb x1, sb y1, sb z1)
                const Vd bx2 = sb * simd::load(prow(PX2) + k);
                const Vd by2 = sb * simd::load(prow(PY2) + k);
                const Vd bz2 = sb * simd::load(prow(PZ2) + k);
                if (uniform) {
                    double* d = acc + i1[0] * 4;
                    d[0] += simd::reduce_add(sa1);
                    d[1] += simd::reduce_add(bx2);
                    d[2] += simd::reduce_add(by2);
                    d[3] += simd::reduce_add(bz2);
                } else {
                    simd::transpose_add4(sa1, bx2, by2, bz2, i1, lanes, acc);
                }
                simd::transpose_add4(sa2, sb * x1, sb * y1, sb * z1, i2, lanes, acc);
            }
        }
        (void)offset;
    };

    const int64_t n_radial = tb.n_radial_features();
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
                const Vd limit2 = simd::set1(g4 ? rc2 : std::numeric_limits<double>::max());
                int64_t cnt = 0;
                for (int64_t n1 = L.seg[s1]; n1 < L.seg[s1 + 1]; ++n1) {
                    const Vd x1 = simd::set1(X[n1]), y1 = simd::set1(Y[n1]), z1 = simd::set1(Z[n1]);
                    const Vd u1 = simd::set1(UXn[n1]), v1 = simd::set1(UYn[n1]), w1 = simd::set1(UZn[n1]);
                    const Vd f1 = simd::set1(Fn[n1]), g1 = simd::set1(Gn[n1]);
                    const int64_t lo = std::max(n1 + 1, L.seg[s2]), hi = L.seg[s2 + 1];
                    // packs the pairs (n1, n2 .. n2 + W) with r_12 < limit; `tail`: only the lanes before hi
                    auto pack_block = [&](int64_t n2, auto tail) {
                        if (cnt > C - W) {
                            process(g4, cnt, offset, params);
                            cnt = 0;
                        }
                        const Vd x2 = simd::load(X + n2), y2 = simd::load(Y + n2), z2 = simd::load(Z + n2);
                        const Vd dx = x2 - x1, dy = y2 - y1, dz = z2 - z1;
                        const Vd r2 = simd::fma(dz, dz, simd::fma(dy, dy, dx * dx));
                        simd::Md keep = simd::lt(r2, limit2);
                        if constexpr (decltype(tail)::value) keep = keep & simd::tail(hi - n2);
                        Vd c = simd::load(UXn + n2) * u1;
                        c = simd::fma(simd::load(UYn + n2), v1, c);
                        c = simd::fma(simd::load(UZn + n2), w1, c);
                        c = simd::min(one, simd::max(simd::set1(-1.0), c));
                        const Vd f2 = simd::load(Fn + n2);
                        double* const out = pk + cnt;
                        const simd::Packer pack(keep);
                        auto put = [&pack, out, CS](int row, Vd v) { pack.store(out + row * CS, v); };
                        put(PCOS, c);
                        put(PR2, r2);
                        put(PA, f1 * f2);
                        put(PB1, g1 * f2);
                        put(PB2, f1 * simd::load(Gn + n2));
                        put(PIR2, simd::load(IRn + n2));
                        put(PX2, x2);
                        put(PY2, y2);
                        put(PZ2, z2);
                        for (int64_t e = 0; e < ne; ++e) {
                            const double* ex = EXn + e * ma;
                            put(int(PROWS + e), simd::set1(ex[n1]) * simd::load(ex + n2));
                        }
                        for (int j = 0; j < W; ++j) I1[cnt + j] = n1;
                        pack.store_index(I2 + cnt, n2);
                        cnt += simd::count(keep);
                    };
                    int64_t n2 = lo;
                    for (; n2 + W <= hi; n2 += W) pack_block(n2, std::false_type{});
                    if (n2 < hi) pack_block(n2, std::true_type{});
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
}

ALIP_KERNEL_END
