// The G4 / G5 part of the fused VJP (forces / virial) mode in one SIMD pass, applying
// what made the values kernel fast (acsf_values.hpp) to the derivative terms:
//  * per neighbor, f_c, f_c'/r, 1/r and exp(-eta (r - rs)^2) are computed once, in rows padded
//    with zeros;
//  * for a fixed n1 the second neighbors n2 are contiguous: the test r_12 < r_c and the
//    pair quantities (r_12^2, f1 f2, f1' f2 / r1, f1 f2' / r2, 1/r2, v2, exp products)
//    run kWidth lanes wide without gathers, and the pairs that pass are packed (compress)
//    into a chunk whose rows are zero-padded (full-width loads); quantities of n1 are
//    broadcast again per kWidth packed pairs (gathered when the lanes span two n1);
//  * per kWidth packed pairs, in one pass: cos = v1.v2 / (r1 r2) (on the ~45 % of pairs
//    that pass, not in the packing), 1/r_12, f_c(r_12) and its derivative and
//    exp(-eta r_12^2) (inline polynomials, acsf_simd.hpp), the ladder of squares of
//    1 + lambda cos, the dE/dG-contracted sums U = sum w dP/dcos, V = sum w P and
//    H = sum_e eta_e E_e V_e (grouped by eta), and the per-pair coefficients, added to
//    (coef, x, y, z) of dE/dv_n1 and dE/dv_n2 kept interleaved (4 x kWidth transpose, one
//    4-double add per pair; one reduction when the lanes share n1). When every zeta is a
//    power of two (1, 2, 4, ...), P = b^zeta is one rung and dP/dcos = zeta lambda
//    b^(zeta - 1) one prefix product of rungs, so U and V sum over rungs with weights
//    summed per (eta, rung) once per center; otherwise P and dP are products of rungs
//    per (zeta, lambda) from a table.
// Written once over simd.hpp (the AVX-512, AVX2 and NEON variants; the scalar one keeps
// the compiler-vectorized chunked loops). Integer zetas only (the ladder); other zetas
// keep the chunked loops of derivative_terms (acsf_kernel.hpp).
// Named steps: fused_vjp_arrays (layout, rung table, neighbor rows), fused_family_weights,
// pack_fused_pairs (one n1's pairs), angular_vjp_chunk (the angular derivatives of a
// chunk), add_fused_terms; vjp_angular_fused runs them.
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

/// The fused VJP's work arrays for one center, carved out of BlockScratch::fused / fused_idx.
struct FusedVjpArrays {
    enum NeighborRow { NX, NY, NZ, NF, NG, NIR, NROWS };             ///< then n_legs exp rows
    enum PairRow { PR2, PA, PB1, PB2, PIR2, PX2, PY2, PZ2, PROWS };  ///< then ne W rows (and ne E_odd rows)
    static constexpr int64_t CS = kPairChunk + 8;                    ///< row length of the packed pairs
    int64_t m = 0, ma = 0;                                           ///< neighbors, padded row length
    int64_t ne = 0, nz = 0, nlam = 0, n_params = 0, n_rhs = 0;
    int64_t n_legs = 0;        ///< per-neighbor windows (AcsfTables::leg_etas)
    bool two_windows = false;  ///< some group has two windows: ne more pair rows, 1/2 (a_1 b_2 - b_1 a_2)
    int depth = 0;
    /// every zeta a power of two (1, 2, 4, ..): b^zeta is a rung and zeta lambda b^(zeta - 1)
    /// one per rung too (Db), so the contraction sums over rungs, with no products of rungs
    bool pow2 = false;
    int64_t n_slots = 0;         ///< pow2: rungs (lambda, t) the family uses
    double* nb = nullptr;        ///< (NROWS + n_legs, ma) per-neighbor rows
    double* pk = nullptr;        ///< (PROWS + ne (+ ne), CS) per packed pair
    double* Eb = nullptr;        ///< (ne, W) exp products of the current lanes
    double* Pb = nullptr;        ///< (nz, W) b^zeta
    double* dPb = nullptr;       ///< (nz, W) zeta lambda b^(zeta - 1)
    double* Rb = nullptr;        ///< (nlam, depth, W) rungs b^(2^t)
    double* Db = nullptr;        ///< pow2: (nlam, depth, W) 2^t lambda b^(2^t - 1)
    double* zl_scale = nullptr;  ///< (nz,) zeta lambda
    double* wt = nullptr;        ///< (n_rhs, n_params) dE/dG * prefactor, grouped by eta;
                                 ///< pow2: (n_rhs, ne, n_slots) summed per (eta, rung)
    double* acc4 = nullptr;      ///< (n_rhs, m, 4) (coefficient of v_n, cross terms x, y, z) of dE/dv_n
    int64_t* I1 = nullptr;       ///< (CS,) n1 of each packed pair
    int64_t* I2 = nullptr;       ///< (CS,) n2 of each packed pair
    int64_t* zq = nullptr;       ///< (n_params,) zeta-lambda index of the params, grouped by eta
    int64_t* gstart = nullptr;   ///< (ne + 1,) groups of equal eta
    int64_t* slot = nullptr;     ///< pow2: (nlam * depth,) offsets into Rb / Db of the used rungs, then scratch
    int64_t* active = nullptr;   ///< (n_rhs,) whether any weight of the family is nonzero
    /// (nz, 16): per (zeta, lambda), the rungs (offsets into Rb) whose product is b^zeta:
    /// count, then offsets; from slot 8, those of b^(zeta - 1)
    int64_t* ztab = nullptr;

    double* nrow(int64_t r) const { return nb + r * ma; }
    double* prow(int64_t r) const { return pk + r * CS; }
};

/// Lays out the work arrays, fills the rung table and the padded per-neighbor rows.
inline FusedVjpArrays fused_vjp_arrays(const AcsfTables& tb, const VjpMode& mode, const LocalNeighbors& L,
                                       BlockScratch& B) {
    constexpr int W = simd::kWidth;
    using A_ = FusedVjpArrays;
    A_ A;
    A.m = L.m;
    A.ma = L.m + 8;  // rows padded for full-width loads
    A.ne = int64_t(tb.angular_etas.size());
    A.nz = int64_t(tb.zeta_lambdas.size());
    A.nlam = int64_t(tb.lambdas.size());
    A.depth = tb.ladder_depth;
    A.n_params = int64_t(std::max(tb.g4_index.size(), tb.g5_index.size()));
    A.n_rhs = mode.n_rhs;
    A.n_legs = int64_t(tb.leg_etas.size());
    A.two_windows = tb.angular_two_windows;
    const int64_t m = A.m, ma = A.ma, ne = A.ne, nz = A.nz, CS = A_::CS;
    const size_t per_nb = size_t((A_::NROWS + A.n_legs) * ma);
    const size_t per_pair = size_t((A_::PROWS + (A.two_windows ? 2 : 1) * ne) * CS);
    A.pow2 = true;
    for (const ZetaLambda& zl : tb.zeta_lambdas)
        if ((zl.integer_zeta & (zl.integer_zeta - 1)) != 0) A.pow2 = false;
    const size_t blk = size_t((ne + 2 * nz + 2 * A.nlam * A.depth) * W + nz);
    const size_t weights = size_t(A.n_rhs * std::max(A.n_params, ne * A.nlam * A.depth));
    const size_t acc_size = size_t(A.n_rhs * m * 4);
    B.fused.resize(per_nb + per_pair + blk + weights + acc_size);
    B.fused_idx.resize(size_t(2 * CS + A.n_params + ne + 1 + A.n_rhs + 16 * nz + 2 * A.nlam * A.depth));
    A.nb = B.fused.data();
    A.pk = A.nb + per_nb;
    A.Eb = A.pk + per_pair;
    A.Pb = A.Eb + ne * W;
    A.dPb = A.Pb + nz * W;
    A.Rb = A.dPb + nz * W;
    A.Db = A.Rb + A.nlam * A.depth * W;
    A.zl_scale = A.Db + A.nlam * A.depth * W;
    A.wt = A.Eb + blk;
    A.acc4 = A.wt + weights;
    std::fill(A.acc4, A.acc4 + acc_size, 0.0);
    A.I1 = B.fused_idx.data();
    A.I2 = A.I1 + CS;
    A.zq = A.I2 + CS;
    A.gstart = A.zq + A.n_params;
    A.active = A.gstart + ne + 1;
    A.ztab = A.active + A.n_rhs;
    A.slot = A.ztab + 16 * nz;
    for (int64_t z = 0; z < nz; ++z) {
        const ZetaLambda& zl = tb.zeta_lambdas[size_t(z)];
        A.zl_scale[z] = zl.zeta * zl.lambda;
        for (int half = 0; half < 2; ++half) {
            int64_t* slot = A.ztab + 16 * z + 8 * half;
            const int e = zl.integer_zeta - half;
            slot[0] = 0;
            for (int t = 0; (e >> t) > 0; ++t)
                if ((e >> t) & 1) slot[1 + slot[0]++] = (zl.lambda_index * A.depth + t) * W;
        }
    }
    for (int64_t n = 0; n < ma; ++n) {
        const bool in = n < m;
        const double ir = in ? L.inv_r[n] : 0.0;
        A.nrow(A_::NX)[n] = in ? L.x[n] : 0.0;
        A.nrow(A_::NY)[n] = in ? L.y[n] : 0.0;
        A.nrow(A_::NZ)[n] = in ? L.z[n] : 0.0;
        A.nrow(A_::NF)[n] = in ? L.fc[n] : 0.0;
        A.nrow(A_::NG)[n] = in ? L.dfc[n] * ir : 0.0;
        A.nrow(A_::NIR)[n] = ir;
        for (int64_t l = 0; l < A.n_legs; ++l) A.nrow(A_::NROWS + l)[n] = in ? L.expo[l * m + n] : 0.0;
    }
    return A;
}

/// The family's parameters grouped by eta (zq, gstart) and, per rhs, their weights
/// dE/dG * prefactor (wt) and whether any is nonzero (active).
inline void fused_family_weights(const AcsfTables& tb, const VjpMode& mode, const std::vector<AngularIndex>& params,
                                 int64_t offset, FusedVjpArrays& A) {
    const int64_t np = int64_t(params.size());
    if (A.pow2) {  // weights summed per (eta, rung), over the rungs the family uses
        const int64_t nr = A.nlam * A.depth;
        auto rung_of = [&](const AngularIndex& ix) {
            const ZetaLambda& zl = tb.zeta_lambdas[size_t(ix.zl)];
            int t = 0;
            while ((1 << t) < zl.integer_zeta) ++t;
            return int64_t(zl.lambda_index) * A.depth + t;
        };
        int64_t* where = A.slot + nr;  // rung -> slot
        std::fill(where, where + nr, -1);
        for (const AngularIndex& ix : params) where[rung_of(ix)] = 0;
        A.n_slots = 0;
        for (int64_t q = 0; q < nr; ++q)
            if (where[q] == 0) A.slot[A.n_slots] = q * simd::kWidth, where[q] = A.n_slots++;
        for (int64_t e = 0; e <= A.ne; ++e) A.gstart[e] = 0;
        for (const AngularIndex& ix : params) A.gstart[ix.eta + 1] = 1;  // gstart[e + 1] != gstart[e]: eta e used
        for (int64_t e = 0; e < A.ne; ++e) A.gstart[e + 1] = A.gstart[e] + A.gstart[e + 1];
        for (int64_t r = 0; r < mode.n_rhs; ++r) {
            double* w = A.wt + r * A.ne * A.n_slots;
            std::fill(w, w + A.ne * A.n_slots, 0.0);
            A.active[r] = 0;
            for (int64_t p = 0; p < np; ++p) {
                const AngularIndex& ix = params[size_t(p)];
                const double v = mode.w[r * mode.w_stride + offset + p] * ix.prefactor;
                w[ix.eta * A.n_slots + where[rung_of(ix)]] += v;
                A.active[r] |= v != 0.0;
            }
        }
        return;
    }
    int64_t q = 0;
    for (int64_t e = 0; e < A.ne; ++e) {
        A.gstart[e] = q;
        for (int64_t p = 0; p < np; ++p)
            if (params[size_t(p)].eta == e) A.zq[q++] = params[size_t(p)].zl;
    }
    A.gstart[A.ne] = q;
    for (int64_t r = 0; r < mode.n_rhs; ++r) {
        A.active[r] = 0;
        int64_t qq = 0;
        for (int64_t e = 0; e < A.ne; ++e)
            for (int64_t p = 0; p < np; ++p)
                if (params[size_t(p)].eta == e) {
                    const double w = mode.w[r * mode.w_stride + offset + p] * params[size_t(p)].prefactor;
                    A.wt[r * np + qq++] = w;
                    A.active[r] |= w != 0.0;
                }
    }
}

/// The angular derivatives of one chunk of `cnt` packed pairs of one family (G4 or G5):
/// per kWidth pairs, the cutoff of r_12, exps, powers of (1 + lambda cos), the
/// dE/dG-contracted sums and the per-pair coefficients, added to acc4.
inline void angular_vjp_chunk(const AcsfTables& tb, const FusedVjpArrays& arrays, bool g4, int64_t cnt, int64_t np) {
    constexpr int W = simd::kWidth;
    using A_ = FusedVjpArrays;
    const FusedVjpArrays S = arrays;  // local copy: the stores below would otherwise force reloads
    const double a_eta = g4 ? 4.0 : 2.0, b_eta = g4 ? 2.0 : 0.0;
    const bool shifted = tb.angular_shifted;
    const double rc = tb.spec.cutoff, a = kPi / rc;
    const bool cosine = tb.spec.cutoff_function == CutoffFunction::Cosine;
    const int64_t ne = S.ne, m = S.m;
    const int dep = S.depth;
    const int64_t n_lam = S.nlam, n_zl = S.nz;
    const double* lambdas = tb.lambdas.data();
    const double* zlc = S.zl_scale;
    const int64_t* zt = S.ztab;
    double* const rungs = S.Rb;
    double* const drungs = S.Db;
    const bool pow2 = S.pow2;
    const int64_t n_slots = S.n_slots;
    const int64_t* slot = S.slot;
    double* const Pb_ = S.Pb;
    double* const dPb_ = S.dPb;
    const double* Pb = S.Pb;
    const double* dPb = S.dPb;
    double* const Eb = S.Eb;
    const double* X = S.nrow(A_::NX);
    const double* Y = S.nrow(A_::NY);
    const double* Z = S.nrow(A_::NZ);
    const double* IRn = S.nrow(A_::NIR);
    const int64_t* I1 = S.I1;
    const int64_t* I2 = S.I2;
    const int64_t* zq = S.zq;
    const int64_t* gstart = S.gstart;
    const int64_t* active = S.active;
    const double* wt = S.wt;
    double* const acc4 = S.acc4;
    const Vd one = simd::set1(1.0), zero = simd::zero();
    const bool two = !g4 && S.two_windows;
    const double* half_gap = tb.angular_half_gap.data();
    auto prow = [&S](int64_t r) { return S.prow(r); };
    for (int64_t r = 0; r < A_::PROWS + (S.two_windows ? 2 : 1) * ne; ++r)  // padding lanes: zeros (full-width loads)
        std::fill(prow(r) + cnt, prow(r) + cnt + W, 0.0);
    enum {
        PR2 = A_::PR2,
        PA = A_::PA,
        PB1 = A_::PB1,
        PB2 = A_::PB2,
        PIR2 = A_::PIR2,
        PX2 = A_::PX2,
        PY2 = A_::PY2,
        PZ2 = A_::PZ2,
        PROWS = A_::PROWS
    };
    const int64_t n_rhs = S.n_rhs;
    for (int64_t k = 0; k < cnt; k += W) {
        const simd::Md live = simd::tail(cnt - k);
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
        const Vd x2 = simd::load(prow(PX2) + k), y2 = simd::load(prow(PY2) + k), z2 = simd::load(prow(PZ2) + k);
        const Vd ir2 = simd::load(prow(PIR2) + k);
        const Vd c =
            simd::min(one, simd::max(simd::set1(-1.0), (simd::fma(z1, z2, simd::fma(y1, y2, x1 * x2)) * ir1) * ir2));
        const Vd A = simd::load(prow(PA) + k);
        const Vd B1 = simd::load(prow(PB1) + k);
        const Vd B2 = simd::load(prow(PB2) + k);
        Vd Fc = A, dF1 = B1, dF2 = B2, dFb = zero, IR12 = zero;
        if (g4) {
            const Vd r2 = simd::load(prow(PR2) + k);
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
                const double rs = tb.angular_rs[size_t(e)];
                const Vd dr = r12 - simd::set1(rs);
                const Vd ex = exp_nonpositive(simd::set1(-tb.angular_etas[e]) * (rs == 0.0 ? r2 : dr * dr));
                simd::store(Eb + e * W, simd::load(prow(PROWS + e) + k) * ex);
            }
            IR12 = ir12;
        } else {
            for (int64_t e = 0; e < ne; ++e) simd::store(Eb + e * W, simd::load(prow(PROWS + e) + k));
        }
        for (int64_t l = 0; l < n_lam; ++l) {
            Vd rung = simd::max(zero, simd::fma(simd::set1(lambdas[l]), c, one));
            double* R = rungs + l * dep * W;
            simd::store(R, rung);
            if (pow2) {  // D_t = 2^t lambda b^(2^t - 1): the prefix products of the rungs
                double* D = drungs + l * dep * W;
                Vd prefix = rung;
                simd::store(D, simd::set1(lambdas[l]));
                for (int t = 1; t < dep; ++t) {
                    simd::store(D + t * W, simd::set1(double(1 << t) * lambdas[l]) * prefix);
                    rung = rung * rung;
                    simd::store(R + t * W, rung);
                    prefix = prefix * rung;
                }
                continue;
            }
            for (int t = 1; t < dep; ++t) {
                rung = rung * rung;
                simd::store(R + t * W, rung);
            }
        }
        for (int64_t z = 0; z < n_zl && !pow2; ++z) {
            const int64_t* s = zt + 16 * z;
            Vd P = s[0] ? simd::load(rungs + s[1]) : one;
            for (int64_t i = 2; i <= s[0]; ++i) P = P * simd::load(rungs + s[i]);
            Vd dP = simd::set1(zlc[z]);
            for (int64_t i = 1; i <= s[8]; ++i) dP = dP * simd::load(rungs + s[8 + i]);
            simd::store(Pb_ + z * W, P);
            simd::store(dPb_ + z * W, dP);
        }
        const Vd C1c = (Fc * c) * (ir1 * ir1);
        const Vd C2c = (Fc * c) * (ir2 * ir2);
        const Vd FIR = Fc * (ir1 * ir2);
        for (int64_t r = 0; r < n_rhs; ++r) {
            if (!active[r]) continue;
            const double* wp = wt + r * (pow2 ? ne * n_slots : np);
            // per eta group: Ue = sum w dP, Ve = sum w P; U = sum E_e Ue, V = sum E_e Ve, H = sum eta_e E_e Ve,
            // H2 = sum eta_e rs_e E_e Ve (the shifted groups), H3 = sum eta_e half_gap_e E_odd_e Ve (two windows)
            Vd U = zero, V = zero, H = zero, H2 = zero, H3 = zero;
            for (int64_t e = 0; e < ne; ++e) {
                if (gstart[e] == gstart[e + 1]) continue;
                Vd Ue = zero, Ve = zero, Ue2 = zero, Ve2 = zero;
                if (pow2) {  // Ue = sum_s w D_s, Ve = sum_s w R_s over the used rungs s
                    const double* we = wp + e * n_slots;
                    int64_t q = 0;
                    for (; q + 2 <= n_slots; q += 2) {
                        const Vd w0 = simd::set1(we[q]), w1 = simd::set1(we[q + 1]);
                        Ue = simd::fma(w0, simd::load(drungs + slot[q]), Ue);
                        Ve = simd::fma(w0, simd::load(rungs + slot[q]), Ve);
                        Ue2 = simd::fma(w1, simd::load(drungs + slot[q + 1]), Ue2);
                        Ve2 = simd::fma(w1, simd::load(rungs + slot[q + 1]), Ve2);
                    }
                    if (q < n_slots) {
                        const Vd w0 = simd::set1(we[q]);
                        Ue = simd::fma(w0, simd::load(drungs + slot[q]), Ue);
                        Ve = simd::fma(w0, simd::load(rungs + slot[q]), Ve);
                    }
                    const Vd E = simd::load(Eb + e * W);
                    const Vd EV = E * (Ve + Ve2);
                    U = simd::fma(E, Ue + Ue2, U);
                    V = V + EV;
                    H = simd::fma(simd::set1(tb.angular_etas[size_t(e)]), EV, H);
                    if (shifted)
                        H2 = simd::fma(simd::set1(tb.angular_etas[size_t(e)] * tb.angular_rs[size_t(e)]), EV, H2);
                    if (two && half_gap[e] != 0.0)
                        H3 = simd::fma(simd::set1(tb.angular_etas[size_t(e)] * half_gap[e]),
                                       simd::load(prow(PROWS + ne + e) + k) * (Ve + Ve2), H3);
                    continue;
                }
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
                if (shifted) H2 = simd::fma(simd::set1(tb.angular_etas[size_t(e)] * tb.angular_rs[size_t(e)]), EV, H2);
                if (two && half_gap[e] != 0.0)
                    H3 = simd::fma(simd::set1(tb.angular_etas[size_t(e)] * half_gap[e]),
                                   simd::load(prow(PROWS + ne + e) + k) * (Ve + Ve2), H3);
            }
            const Vd aFH = (simd::set1(a_eta) * Fc) * H;
            // sa1 = -Fc cos/r1^2 U + V dF1 - a Fc H; sb = Fc U/(r1 r2) + b Fc H + V dFb; sa2 likewise
            Vd sa1 = simd::fms(V, dF1, aFH) - C1c * U;
            Vd sa2 = simd::fms(V, dF2, aFH) - C2c * U;
            Vd sb = simd::fma(V, dFb, simd::fma(simd::set1(b_eta) * Fc, H, FIR * U));
            if (shifted) {  // + 2 eta rs / r per shifted factor (angular_gradient_chunk, acsf_kernel.hpp)
                const Vd h = (simd::set1(2.0) * Fc) * H2;
                sa1 = simd::fma(h, ir1 + IR12, sa1);
                sa2 = simd::fma(h, ir2 + IR12, sa2);
                sb = sb - h * IR12;
            }
            if (two) {  // two windows: +- 2 eta half_gap E_odd / r on the legs (G5: no r_12)
                const Vd h3 = (simd::set1(2.0) * Fc) * H3;
                sa1 = simd::fma(h3, ir1, sa1);
                sa2 = simd::fnma(h3, ir2, sa2);
            }
            sa1 = simd::zero_unless(live, sa1);
            sa2 = simd::zero_unless(live, sa2);
            sb = simd::zero_unless(live, sb);
            double* acc = acc4 + r * m * 4;
            // n1 side: (sa1, sb x2, sb y2, sb z2); n2 side: (sa2, sb x1, sb y1, sb z1)
            const Vd bx2 = sb * x2, by2 = sb * y2, bz2 = sb * z2;
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
}

/// Packs the pairs (n1, n2) of one n1 with n2 in [lo, hi) and r_12^2 < limit2 into the
/// chunk (cnt pairs so far), running angular_vjp_chunk whenever the chunk is full.
inline void pack_fused_pairs(const AcsfTables& tb, const FusedVjpArrays& S, bool g4, int64_t np, int64_t n1, int64_t lo,
                             int64_t hi, double limit2_value, int64_t& cnt) {
    constexpr int W = simd::kWidth;
    using A_ = FusedVjpArrays;
    const int64_t C = kPairChunk, CS = A_::CS, ne = S.ne, ma = S.ma;
    const double* X = S.nrow(A_::NX);
    const double* Y = S.nrow(A_::NY);
    const double* Z = S.nrow(A_::NZ);
    const double* Fn = S.nrow(A_::NF);
    const double* Gn = S.nrow(A_::NG);
    const double* IRn = S.nrow(A_::NIR);
    const double* EXn = S.nrow(A_::NROWS);
    double* const pk = S.pk;
    int64_t* const I1 = S.I1;
    int64_t* const I2 = S.I2;
    enum {
        PR2 = A_::PR2,
        PA = A_::PA,
        PB1 = A_::PB1,
        PB2 = A_::PB2,
        PIR2 = A_::PIR2,
        PX2 = A_::PX2,
        PY2 = A_::PY2,
        PZ2 = A_::PZ2,
        PROWS = A_::PROWS
    };
    const Vd limit2 = simd::set1(limit2_value);
    const Vd x1 = simd::set1(X[n1]), y1 = simd::set1(Y[n1]), z1 = simd::set1(Z[n1]);
    const Vd f1 = simd::set1(Fn[n1]), g1 = simd::set1(Gn[n1]);
    // the pairs (n1, n2 .. n2 + W); `tail`: only the lanes before hi (rows are padded)
    auto pack_block = [&](int64_t n2, auto tail) {
        if (cnt > C - W) {
            angular_vjp_chunk(tb, S, g4, cnt, np);
            cnt = 0;
        }
        const Vd x2 = simd::load(X + n2), y2 = simd::load(Y + n2), z2 = simd::load(Z + n2);
        const Vd dx = x2 - x1, dy = y2 - y1, dz = z2 - z1;
        const Vd r2 = simd::fma(dz, dz, simd::fma(dy, dy, dx * dx));
        simd::Md keep = simd::lt(r2, limit2);
        if constexpr (decltype(tail)::value) keep = keep & simd::tail(hi - n2);
        const Vd f2 = simd::load(Fn + n2);
        double* const out = pk + cnt;
        const simd::Packer pack(keep);
        auto put = [&pack, out, CS](int row, Vd v) { pack.store(out + row * CS, v); };
        put(PR2, r2);
        put(PA, f1 * f2);
        put(PB1, g1 * f2);
        put(PB2, f1 * simd::load(Gn + n2));
        put(PIR2, simd::load(IRn + n2));
        put(PX2, x2);
        put(PY2, y2);
        put(PZ2, z2);
        if (!S.two_windows) {  // one window per group: leg e is group e's (AcsfTables)
            for (int64_t e = 0; e < ne; ++e) {
                const double* ex = EXn + e * ma;
                put(int(PROWS + e), simd::set1(ex[n1]) * simd::load(ex + n2));
            }
        } else {
            for (int64_t e = 0; e < ne; ++e) {
                const double* xa = EXn + tb.leg_a[size_t(e)] * ma;
                const double* xb = EXn + tb.leg_b[size_t(e)] * ma;
                const Vd ab = simd::set1(xa[n1]) * simd::load(xb + n2);
                if (xa == xb) {
                    put(int(PROWS + e), ab);
                    continue;
                }
                const Vd ba = simd::set1(xb[n1]) * simd::load(xa + n2);  // two windows: even and odd parts
                put(int(PROWS + e), simd::set1(0.5) * (ab + ba));
                put(int(PROWS + ne + e), simd::set1(0.5) * (ab - ba));
            }
        }
        for (int j = 0; j < W; ++j) I1[cnt + j] = n1;
        pack.store_index(I2 + cnt, n2);
        cnt += simd::count(keep);
    };
    int64_t n2 = lo;
    for (; n2 + W <= hi; n2 += W) pack_block(n2, std::false_type{});
    if (n2 < hi) pack_block(n2, std::true_type{});
}

/// Adds the accumulated (coefficient, x, y, z) of dE/dv_n to the mode's arrays.
inline void add_fused_terms(VjpMode& mode, const FusedVjpArrays& A) {
    for (int64_t r = 0; r < mode.n_rhs; ++r) {
        const double* acc = A.acc4 + r * A.m * 4;
        double* coef = mode.coef.data() + r * A.m;
        double* ex = mode.ex.data() + r * A.m;
        double* ey = mode.ey.data() + r * A.m;
        double* ez = mode.ez.data() + r * A.m;
        for (int64_t n = 0; n < A.m; ++n) {
            coef[n] += acc[4 * n];
            ex[n] += acc[4 * n + 1];
            ey[n] += acc[4 * n + 2];
            ez[n] += acc[4 * n + 3];
        }
    }
}

inline bool vjp_angular_fused(const AcsfTables& tb, VjpMode& mode, const LocalNeighbors& L, BlockScratch& B) {
    // one lane gains nothing from the fused pass: the chunked loops are vectorized by the
    // compiler (measured: the scalar backend's fused pass was 30 % slower)
    if (simd::kWidth == 1) return false;
    if (tb.ladder_depth < 1 || tb.ladder_depth > 7) return false;
    for (const ZetaLambda& zl : tb.zeta_lambdas)
        if (zl.integer_zeta < 1) return false;
    FusedVjpArrays A = fused_vjp_arrays(tb, mode, L, B);
    const int32_t ns = tb.spec.n_species;
    const double rc2 = tb.spec.cutoff * tb.spec.cutoff;
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
                fused_family_weights(tb, mode, params, offset, A);
                const double limit2 = g4 ? rc2 : std::numeric_limits<double>::max();  // G5: no condition on r_12
                int64_t cnt = 0;
                for (int64_t n1 = L.seg[s1]; n1 < L.seg[s1 + 1]; ++n1)
                    pack_fused_pairs(tb, A, g4, np, n1, std::max(n1 + 1, L.seg[s2]), L.seg[s2 + 1], limit2, cnt);
                if (cnt > 0) angular_vjp_chunk(tb, A, g4, cnt, np);
            }
        }
    }
    add_fused_terms(mode, A);
    return true;
}

ALIP_KERNEL_END
