// Per-center ACSF kernel of the derivative modes (sparse gradients, fused VJP); the
// values-only mode shares the gather and continues in acsf_values.hpp. Compiled once per
// CPU variant, in that variant's namespace (kernel_variant.hpp, dispatch.hpp).
// Neighbors of a center are copied into species-sorted structure-of-arrays so that the
// inner loops over the second neighbor of a triplet run over contiguous memory with a
// constant feature offset, and vectorize.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "acsf.hpp"
#include "acsf_simd.hpp"
#include "kernel_variant.hpp"
#include "neighbors.hpp"

ALIP_KERNEL_BEGIN

using detail::AcsfTables;
using AngularIndex = AcsfTables::AngularIndex;
using ZetaLambda = AcsfTables::ZetaLambda;

enum class Kind { Values, Gradients, Vjp };

/// Neighbors of one center, sorted by species (stable in the neighbor-list order).
struct LocalNeighbors {
    int64_t m = 0;
    std::vector<int64_t> entry;  ///< index of the pair in the neighbor list
    std::vector<int64_t> local;  ///< inverse: pair (relative to the center's first) -> local index
    std::vector<double> x, y, z, r, inv_r, fc, dfc;
    std::vector<double> expo;  ///< (n_legs, m) exp(-eta (r - rs)^2) per window (AcsfTables::leg_etas)
    std::vector<int64_t> seg;  ///< (n_species + 1) species segments
    std::vector<int32_t> sp;

    void resize(int64_t n, int64_t n_legs, int32_t n_species) {
        m = n;
        for (auto* v : {&x, &y, &z, &r, &inv_r, &fc, &dfc}) v->resize(size_t(n));
        entry.resize(size_t(n));
        local.resize(size_t(n));
        sp.resize(size_t(n));
        expo.resize(size_t(n * n_legs));
        seg.assign(size_t(n_species) + 1, 0);
    }
};

/// Work arrays for a chunk of (kPairChunk) neighbor pairs (n1 < n2) of one center and one species pair.

struct BlockScratch {
    std::vector<int64_t> i1, i2, cursor;
    std::vector<double> cos, r12sq, r12, fc12, dfc12, Fc, dF1, dF2, dFb, cos_r1, cos_r2, inv12, U, V, H, work;
    std::vector<double> E;      ///< (n_eta, kPairChunk) radial factor of each group
    std::vector<double> E_odd;  ///< (n_eta, kPairChunk) two windows: 1/2 (a_1 b_2 - b_1 a_2), else 0
    std::vector<double> AP;     ///< (kPairChunk, n_params) two windows: prefactor E_odd P (gradient mode)
    std::vector<double> work2;
    std::vector<double> P, dP;      ///< (n_zl, kPairChunk)
    std::vector<double> ladder;     ///< (n_lambda, depth, kPairChunk): (1 + lambda cos)^(2^t)
    std::vector<const double*> Pz;  ///< per (zeta, lambda): where its P values are
    std::vector<double> EP, EdP;    ///< (kPairChunk, n_params) for the gradient mode
    std::vector<double> fused;      ///< work arrays of the fused VJP (acsf_vjp.hpp)
    std::vector<int64_t> fused_idx;

    void resize(int64_t n_eta, int64_t n_zl, int64_t n_lambda, int depth, int64_t n_params) {
        ladder.resize(size_t(n_lambda) * size_t(std::max(depth, 1)) * size_t(kPairChunk));
        Pz.resize(size_t(n_zl));
        EP.resize(size_t(kPairChunk) * size_t(std::max<int64_t>(n_params, 1)));
        EdP.resize(EP.size());
        AP.resize(EP.size());
        const size_t c = size_t(kPairChunk);
        i1.resize(c);
        i2.resize(c);
        for (auto* v : {&cos, &r12sq, &r12, &fc12, &dfc12, &Fc, &dF1, &dF2, &dFb, &cos_r1, &cos_r2, &inv12, &U, &V, &H,
                        &work, &work2})
            v->resize(c);
        E.resize(c * size_t(n_eta));
        E_odd.resize(c * size_t(n_eta));
        P.resize(c * size_t(n_zl));
        dP.resize(c * size_t(n_zl));
    }
};

struct ValuesScratch;  // acsf_values.hpp

struct ValuesMode {
    static constexpr Kind kind = Kind::Values;
    double* g = nullptr;
    ValuesScratch* scratch = nullptr;  ///< work arrays of the angular values kernel
};

struct GradientMode {
    static constexpr Kind kind = Kind::Gradients;
    double* g = nullptr;
    std::vector<double> d;  ///< (m, 3, F): d G_f / d v_n,c
};

/// Several right-hand sides (e.g. the K members of a committee) share the geometry.
struct VjpMode {
    static constexpr Kind kind = Kind::Vjp;
    const double* w = nullptr;       ///< dE/dG of this center for rhs 0 (F,)
    int64_t n_rhs = 1;               ///< number of right-hand sides
    int64_t w_stride = 0;            ///< distance between the dE/dG of consecutive rhs
    std::vector<double> coef;        ///< (n_rhs, m) coefficient of v_n in dE/dv_n
    std::vector<double> ex, ey, ez;  ///< (n_rhs, m) remaining cross terms of dE/dv_n
};

/// G2, G4, G5 of one center for the values-only mode (acsf_values.hpp).
inline void values_kernel(const AcsfTables& tb, const LocalNeighbors& L, double* g, ValuesScratch& S);

template <class Mode>
void derivative_terms(const AcsfTables& tb, Mode& mode, LocalNeighbors& L, BlockScratch& B);

/// G4 / G5 terms of the VJP mode in one fused pass (acsf_vjp.hpp); false where it does
/// not apply (a non-integer zeta: the chunked loops below take it).
inline bool vjp_angular_fused(const AcsfTables& tb, VjpMode& mode, const LocalNeighbors& L, BlockScratch& B);

/// Accumulates the center's values and, by mode, derivatives w.r.t. its pair vectors.
template <class Mode>
void center(const AcsfTables& tb, const StructureView& s, const NeighborList& nl, int64_t i, Mode& mode,
            LocalNeighbors& L, BlockScratch& B) {
    constexpr Kind kind = Mode::kind;
    constexpr bool deriv = kind != Kind::Values;
    const int64_t first = nl.offsets[i];
    const int64_t m = nl.offsets[i + 1] - first;
    const int32_t ns = tb.spec.n_species;
    const int64_t n_legs = int64_t(tb.leg_etas.size());
    const double rc = tb.spec.cutoff;

    // ---- gather the neighbors, sorted by species ---------------------------
    L.resize(m, n_legs, ns);
    for (int64_t p = 0; p < m; ++p) ++L.seg[size_t(s.species[nl.neighbor[first + p]]) + 1];
    for (int32_t a = 0; a < ns; ++a) L.seg[a + 1] += L.seg[a];
    {
        std::vector<int64_t>& fill = B.cursor;
        fill.assign(L.seg.begin(), L.seg.end());
        for (int64_t p = 0; p < m; ++p) {
            const int32_t sp = s.species[nl.neighbor[first + p]];
            const int64_t k = fill[sp]++;
            L.entry[k] = first + p;
            L.local[p] = k;
            L.sp[k] = sp;
            L.x[k] = nl.vector[3 * (first + p)];
            L.y[k] = nl.vector[3 * (first + p) + 1];
            L.z[k] = nl.vector[3 * (first + p) + 2];
            L.r[k] = nl.distance[first + p];
            L.inv_r[k] = 1.0 / L.r[k];
        }
    }
    cutoff_values(tb.spec.cutoff_function, rc, L.r.data(), L.fc.data(), L.dfc.data(), m, deriv);
    if constexpr (kind == Kind::Values) {
        values_kernel(tb, L, mode.g, *mode.scratch);  // G2, G4, G5 of values only: acsf_values.hpp
    } else {
        derivative_terms(tb, mode, L, B);
    }
}

/// G2 terms of the derivative modes: values and d G / d v_n (gradients), or the
/// dE/dG-weighted coefficient of v_n (VJP), per neighbor species block.
template <class Mode>
void radial_terms(const AcsfTables& tb, Mode& mode, const LocalNeighbors& L) {
    constexpr Kind kind = Mode::kind;
    const int64_t m = L.m;
    const int64_t F = tb.n_features;
    const int32_t ns = tb.spec.n_species;
    const double* X = L.x.data();
    const double* Y = L.y.data();
    const double* Z = L.z.data();
    (void)m, (void)F, (void)X, (void)Y, (void)Z;
    const int64_t n_g2 = int64_t(tb.spec.g2.size());
    for (int32_t sp = 0; sp < ns && n_g2 > 0; ++sp) {
        const int64_t lo = L.seg[sp], hi = L.seg[sp + 1];
        for (int64_t p = 0; p < n_g2; ++p) {
            const double eta = tb.spec.g2[p].eta, rs = tb.spec.g2[p].rs;
            const int64_t f = int64_t(sp) * n_g2 + p;
            if constexpr (kind == Kind::Gradients) {
                double acc = 0.0;
                double* d = mode.d.data();
                double ebuf[simd::kWidth];
                for (int64_t n = lo; n < hi; ++n) {
                    const double dr = L.r[n] - rs;
                    if ((n - lo) % simd::kWidth == 0) {  // exp(-eta (r - rs)^2) of the next kWidth neighbors
                        const simd::Md live = simd::tail(hi - n);
                        const Vd x = simd::load_tail(live, &L.r[n]) - simd::set1(rs);
                        simd::store(ebuf, exp_nonpositive(simd::set1(-eta) * (x * x)));
                    }
                    const double e = ebuf[(n - lo) % simd::kWidth];
                    acc += e * L.fc[n];
                    const double c = e * (L.dfc[n] - 2.0 * eta * dr * L.fc[n]) * L.inv_r[n];
                    d[size_t((n * 3 + 0) * F + f)] += c * X[n];
                    d[size_t((n * 3 + 1) * F + f)] += c * Y[n];
                    d[size_t((n * 3 + 2) * F + f)] += c * Z[n];
                }
                mode.g[f] += acc;
            } else {
                for (int64_t r = 0; r < mode.n_rhs; ++r) {
                    const double w = mode.w[r * mode.w_stride + f];
                    if (w == 0.0) continue;
                    double* coef = mode.coef.data() + r * m;
                    for (int64_t n = lo; n < hi; n += simd::kWidth) {
                        const simd::Md live = simd::tail(hi - n);
                        const Vd dr = simd::load_tail(live, &L.r[n]) - simd::set1(rs);
                        const Vd e = exp_nonpositive(simd::set1(-eta) * (dr * dr));
                        const Vd fc = simd::load_tail(live, &L.fc[n]);
                        // w e (dfc - 2 eta dr fc) / r
                        const Vd inner = simd::fnma(simd::set1(2.0 * eta) * dr, fc, simd::load_tail(live, &L.dfc[n]));
                        const Vd t = (simd::set1(w) * e) * (inner * simd::load_tail(live, &L.inv_r[n]));
                        simd::store_tail(coef + n, live, simd::load_tail(live, coef + n) + t);
                    }
                }
            }
        }
    }
}

/// Geometry of a chunk of `cnt` pairs (B.i1, B.i2): cos, for G4 the cutoff of r_12, the
/// product of cutoffs Fc and its derivatives, and E = exp(-eta ((r1 - rs)^2 + (r2 - rs)^2 [+ (r12 - rs)^2])).
inline void angular_chunk_geometry(const AcsfTables& tb, const LocalNeighbors& L, BlockScratch& B, bool g4,
                                   int64_t cnt) {
    constexpr bool deriv = true;
    const int64_t m = L.m;
    const int64_t ne = int64_t(tb.angular_etas.size());
    const double rc = tb.spec.cutoff;
    const int64_t C = kPairChunk;
    const double* X = L.x.data();
    const double* Y = L.y.data();
    const double* Z = L.z.data();
    const int64_t* i1 = B.i1.data();
    const int64_t* i2 = B.i2.data();
#pragma omp simd
    for (int64_t k = 0; k < cnt; ++k) {
        const int64_t n1 = i1[k], n2 = i2[k];
        const double c = (X[n1] * X[n2] + Y[n1] * Y[n2] + Z[n1] * Z[n2]) * L.inv_r[n1] * L.inv_r[n2];
        B.cos[k] = std::min(1.0, std::max(-1.0, c));
    }
    if (g4) {
#pragma omp simd
        for (int64_t k = 0; k < cnt; ++k) B.r12[k] = std::sqrt(B.r12sq[k]);
        cutoff_values(tb.spec.cutoff_function, rc, B.r12.data(), B.fc12.data(), B.dfc12.data(), cnt, deriv);
    }
#pragma omp simd
    for (int64_t k = 0; k < cnt; ++k) {
        const int64_t n1 = i1[k], n2 = i2[k];
        const double f1 = L.fc[n1], f2 = L.fc[n2], f12 = g4 ? B.fc12[k] : 1.0;
        B.Fc[k] = f1 * f2 * f12;
        if (deriv) {
            const double ir1 = L.inv_r[n1], ir2 = L.inv_r[n2];
            const double ir12 = g4 ? 1.0 / B.r12[k] : 0.0;
            const double d12 = g4 ? f1 * f2 * B.dfc12[k] * ir12 : 0.0;
            B.dF1[k] = L.dfc[n1] * f2 * f12 * ir1 + d12;
            B.dF2[k] = f1 * L.dfc[n2] * f12 * ir2 + d12;
            B.dFb[k] = -d12;
            B.cos_r1[k] = B.cos[k] * ir1 * ir1;
            B.cos_r2[k] = B.cos[k] * ir2 * ir2;
            B.inv12[k] = ir1 * ir2;
        }
    }
    for (int64_t e = 0; e < ne; ++e) {
        const double eta = tb.angular_etas[e], rs = tb.angular_rs[e];
        const double* ex = &L.expo[tb.leg_a[e] * m];
        double* E = &B.E[size_t(e * C)];
        if (tb.leg_b[e] != tb.leg_a[e]) {  // two windows (G5 only): symmetric and antisymmetric parts
            const double* eb = &L.expo[tb.leg_b[e] * m];
            double* odd = &B.E_odd[size_t(e * C)];
#pragma omp simd
            for (int64_t k = 0; k < cnt; ++k) {
                const double ab = ex[i1[k]] * eb[i2[k]], ba = eb[i1[k]] * ex[i2[k]];
                E[k] = 0.5 * (ab + ba);
                odd[k] = 0.5 * (ab - ba);
            }
            continue;
        }
        if (g4) {
            if (rs == 0.0) {
                exp_neg(eta, B.r12sq.data(), E, cnt);
            } else {  // exp(-eta (r_12 - rs)^2)
                exp_neg_sq(eta, rs, B.r12.data(), E, cnt);
            }
#pragma omp simd
            for (int64_t k = 0; k < cnt; ++k) E[k] *= ex[i1[k]] * ex[i2[k]];
        } else {
#pragma omp simd
            for (int64_t k = 0; k < cnt; ++k) E[k] = ex[i1[k]] * ex[i2[k]];
        }
    }
}

/// P = (1 + lambda cos)^zeta and dP/dcos per (zeta, lambda) of a chunk: a ladder of
/// squares per lambda, then products of its rungs (std::pow for non-integer zeta).
inline void angular_powers(const AcsfTables& tb, BlockScratch& B, int64_t cnt) {
    constexpr bool deriv = true;
    const int64_t nz = int64_t(tb.zeta_lambdas.size());
    const int64_t nl_lambda = int64_t(tb.lambdas.size());
    const int64_t C = kPairChunk;
    // (1 + lambda cos)^zeta: a ladder of squares per lambda, then products of its rungs
    for (int64_t l = 0; l < nl_lambda; ++l) {
        const double lam = tb.lambdas[l];
        fill_ladder(&B.ladder[size_t(l * tb.ladder_depth * C)], tb.ladder_depth, C, lam, B.cos.data(), cnt);
    }
    for (int64_t z = 0; z < nz; ++z) {
        const ZetaLambda& zl = tb.zeta_lambdas[z];
        const double* rungs = &B.ladder[size_t(zl.lambda_index * tb.ladder_depth * C)];
        double* P = &B.P[size_t(z * C)];
        double* dP = &B.dP[size_t(z * C)];
        if (zl.integer_zeta >= 1) {
            const int e = zl.integer_zeta;
            if ((e & (e - 1)) == 0) {  // a power of two: one rung, no work
                int t = 0;
                while ((1 << t) < e) ++t;
                B.Pz[z] = rungs + t * C;
            } else {
                ladder_power(rungs, e, P, cnt);
                B.Pz[z] = P;
            }
            if (deriv) {  // dP/dcos = zeta lambda b^(zeta - 1)
                ladder_power(rungs, e - 1, dP, cnt);
                const double c = zl.zeta * zl.lambda;
#pragma omp simd
                for (int64_t k = 0; k < cnt; ++k) dP[k] *= c;
            }
        } else {
            for (int64_t k = 0; k < cnt; ++k) {
                const double b = std::max(0.0, 1.0 + zl.lambda * B.cos[k]);
                const double q = b > 0.0 ? std::pow(b, zl.zeta - 1.0) : (zl.zeta == 1.0 ? 1.0 : 0.0);
                P[k] = q * b;
                if (deriv) dP[k] = zl.zeta * zl.lambda * q;
            }
            B.Pz[z] = P;
        }
    }
}

/// Angular derivatives, gradient mode: adds a chunk's G4 or G5 values and d G / d v_n,
/// vectorized over the family's parameters (contiguous features).
inline void angular_gradient_chunk(const AcsfTables& tb, GradientMode& mode, const LocalNeighbors& L, BlockScratch& B,
                                   const std::vector<AngularIndex>& params, int64_t base, int64_t cnt, double a_eta,
                                   double b_eta) {
    const int64_t F = tb.n_features;
    const int64_t C = kPairChunk;
    const double* X = L.x.data();
    const double* Y = L.y.data();
    const double* Z = L.z.data();
    const int64_t* i1 = B.i1.data();
    const int64_t* i2 = B.i2.data();
    // per pair, vectorized over the family's parameters (contiguous features)
    const int64_t np = int64_t(params.size());
    double* EP = B.EP.data();    // (cnt, np): prefactor E P
    double* EdP = B.EdP.data();  // (cnt, np): prefactor E dP
    double* AP = B.AP.data();    // (cnt, np): prefactor E_odd P (two windows)
    const bool g4 = &params == &tb.g4_index;
    const bool two = !g4 && tb.angular_two_windows;
    for (int64_t p = 0; p < np; ++p) {
        const AngularIndex& ix = params[size_t(p)];
        const double* E = &B.E[size_t(ix.eta * C)];
        const double* P = B.Pz[size_t(ix.zl)];
        const double* dP = &B.dP[size_t(ix.zl * C)];
        for (int64_t k = 0; k < cnt; ++k) {
            EP[k * np + p] = ix.prefactor * E[k] * P[k];
            EdP[k * np + p] = ix.prefactor * E[k] * dP[k];
        }
        if (two) {
            const double* odd = &B.E_odd[size_t(ix.eta * C)];
            const bool has = ix.eta_half_gap != 0.0;
            for (int64_t k = 0; k < cnt; ++k) AP[k * np + p] = has ? ix.prefactor * odd[k] * P[k] : 0.0;
        }
    }
    const double* etas = g4 ? tb.g4_etas.data() : tb.g5_etas.data();
    const double* eta_rs = g4 ? tb.g4_eta_rs.data() : tb.g5_eta_rs.data();
    const double* eta_gap = tb.g5_eta_half_gap.data();
    double* d = mode.d.data();
    double* g = mode.g + base;
    // the shift: d/dv exp(-eta (r - rs)^2) = -2 eta (1 - rs / r) v exp(..), so each -2 eta of
    // rs = 0 gains + 2 eta rs / r (r_12 enters G4 only); compiled out where no rs is set.
    // Two windows: rs is their centre and leg 1 (2) gains + (-) 2 eta half_gap E_odd / r.
    auto pairs = [&](auto shifted_tag, auto two_tag) {
        constexpr bool shifted = decltype(shifted_tag)::value;
        constexpr bool two_windows = decltype(two_tag)::value;
        for (int64_t k = 0; k < cnt; ++k) {
            const int64_t n1 = i1[k], n2 = i2[k];
            const double Fc = B.Fc[k];
            const double c1 = -Fc * B.cos_r1[k], c2 = -Fc * B.cos_r2[k], cb = Fc * B.inv12[k];
            const double v1[3] = {X[n1], Y[n1], Z[n1]}, v2[3] = {X[n2], Y[n2], Z[n2]};
            const double dF1 = B.dF1[k], dF2 = B.dF2[k], dFb = B.dFb[k];
            const double ir12 = (shifted && g4) ? 1.0 / B.r12[k] : 0.0;
            const double s1 = 2.0 * Fc * (L.inv_r[n1] + ir12), s2 = 2.0 * Fc * (L.inv_r[n2] + ir12);
            const double sb = -2.0 * Fc * ir12;
            const double* ep = EP + k * np;
            const double* edp = EdP + k * np;
            [[maybe_unused]] const double* ap = AP + k * np;
            [[maybe_unused]] const double t1 = 2.0 * Fc * L.inv_r[n1], t2 = 2.0 * Fc * L.inv_r[n2];
            double* d1 = d + (n1 * 3) * F + base;
            double* d2 = d + (n2 * 3) * F + base;
#pragma omp simd
            for (int64_t p = 0; p < np; ++p) {
                const double eF = etas[p] * Fc;
                double r1 = dF1 - a_eta * eF, rb = dFb + b_eta * eF, r2 = dF2 - a_eta * eF;
                if constexpr (shifted) r1 += s1 * eta_rs[p], rb += sb * eta_rs[p], r2 += s2 * eta_rs[p];
                double a1 = edp[p] * c1 + ep[p] * r1;
                const double b = edp[p] * cb + ep[p] * rb;
                double a2 = edp[p] * c2 + ep[p] * r2;
                if constexpr (two_windows) {
                    const double odd = ap[p] * eta_gap[p];
                    a1 += odd * t1;
                    a2 -= odd * t2;
                }
                g[p] += ep[p] * Fc;
                d1[p] += a1 * v1[0] + b * v2[0];
                d1[F + p] += a1 * v1[1] + b * v2[1];
                d1[2 * F + p] += a1 * v1[2] + b * v2[2];
                d2[p] += a2 * v2[0] + b * v1[0];
                d2[F + p] += a2 * v2[1] + b * v1[1];
                d2[2 * F + p] += a2 * v2[2] + b * v1[2];
            }
        }
    };
    if (two)
        pairs(std::true_type{}, std::true_type{});
    else if (tb.angular_shifted)
        pairs(std::true_type{}, std::false_type{});
    else
        pairs(std::false_type{}, std::false_type{});
}

/// Angular derivatives, VJP mode (chunked path: non-integer zetas): contracts a chunk's
/// G4 or G5 terms with dE/dG into the coefficients of dE/dv_n.
inline void angular_vjp_chunked(const AcsfTables& tb, VjpMode& mode, const LocalNeighbors& L, BlockScratch& B,
                                const std::vector<AngularIndex>& params, int64_t base, int64_t cnt, double a_eta,
                                double b_eta) {
    (void)tb;
    const int64_t m = L.m;
    const int64_t C = kPairChunk;
    const double* X = L.x.data();
    const double* Y = L.y.data();
    const double* Z = L.z.data();
    const int64_t* i1 = B.i1.data();
    const int64_t* i2 = B.i2.data();
    double* U = B.U.data();
    double* V = B.V.data();
    double* H = B.H.data();
    double* H2 = B.work.data();   // sum eta rs E P w: the shift's terms
    double* H3 = B.work2.data();  // sum eta half_gap E_odd P w: the two windows' antisymmetric terms
    const bool shifted = tb.angular_shifted, g4 = &params == &tb.g4_index;
    const bool two = !g4 && tb.angular_two_windows;
    for (int64_t r = 0; r < mode.n_rhs; ++r) {
        const double* w = mode.w + r * mode.w_stride;
        std::fill(U, U + cnt, 0.0);
        std::fill(V, V + cnt, 0.0);
        std::fill(H, H + cnt, 0.0);
        std::fill(H2, H2 + cnt, 0.0);
        if (two) std::fill(H3, H3 + cnt, 0.0);
        bool any = false;
        for (size_t p = 0; p < params.size(); ++p) {
            const AngularIndex& ix = params[p];
            const double wp = w[base + int64_t(p)] * ix.prefactor;
            if (wp == 0.0) continue;
            any = true;
            const double* E = &B.E[size_t(ix.eta * C)];
            const double* P = B.Pz[size_t(ix.zl)];
            const double* dP = &B.dP[size_t(ix.zl * C)];
            const double eta = ix.eta_value, eta_rs = ix.eta_rs;
#pragma omp simd
            for (int64_t k = 0; k < cnt; ++k) {
                const double Xw = wp * E[k];
                U[k] += Xw * dP[k];
                V[k] += Xw * P[k];
                H[k] += eta * Xw * P[k];
            }
            if (eta_rs != 0.0) {
#pragma omp simd
                for (int64_t k = 0; k < cnt; ++k) H2[k] += eta_rs * wp * E[k] * P[k];
            }
            if (ix.eta_half_gap != 0.0) {
                const double* odd = &B.E_odd[size_t(ix.eta * C)];
                const double c = ix.eta_half_gap * wp;
#pragma omp simd
                for (int64_t k = 0; k < cnt; ++k) H3[k] += c * odd[k] * P[k];
            }
        }
        if (!any) continue;
        double* coef = mode.coef.data() + r * m;
        double* ex = mode.ex.data() + r * m;
        double* ey = mode.ey.data() + r * m;
        double* ez = mode.ez.data() + r * m;
        for (int64_t k = 0; k < cnt; ++k) {
            const int64_t n1 = i1[k], n2 = i2[k];
            const double Fc = B.Fc[k];
            double sa1 = -Fc * B.cos_r1[k] * U[k] + V[k] * B.dF1[k] - a_eta * Fc * H[k];
            double sb = Fc * B.inv12[k] * U[k] + b_eta * Fc * H[k] + V[k] * B.dFb[k];
            double sa2 = -Fc * B.cos_r2[k] * U[k] + V[k] * B.dF2[k] - a_eta * Fc * H[k];
            if (shifted) {  // + 2 eta rs / r per shifted factor (angular_gradient_chunk)
                const double ir12 = g4 ? 1.0 / B.r12[k] : 0.0, h = 2.0 * Fc * H2[k];
                sa1 += h * (L.inv_r[n1] + ir12);
                sa2 += h * (L.inv_r[n2] + ir12);
                sb -= h * ir12;
            }
            if (two) {  // two windows: +- 2 eta half_gap E_odd / r on the legs (G5: no r_12)
                const double h = 2.0 * Fc * H3[k];
                sa1 += h * L.inv_r[n1];
                sa2 -= h * L.inv_r[n2];
            }
            coef[n1] += sa1;
            coef[n2] += sa2;
            ex[n1] += sb * X[n2];
            ey[n1] += sb * Y[n2];
            ez[n1] += sb * Z[n2];
            ex[n2] += sb * X[n1];
            ey[n2] += sb * Y[n1];
            ez[n2] += sb * Z[n1];
        }
    }
}

/// One chunk of pairs of one family: geometry, powers, then the mode's angular terms.
template <class Mode>
void angular_chunk(const AcsfTables& tb, Mode& mode, const LocalNeighbors& L, BlockScratch& B, bool g4, int64_t base,
                   int64_t cnt) {
    angular_chunk_geometry(tb, L, B, g4, cnt);
    angular_powers(tb, B, cnt);
    const std::vector<AngularIndex>& params = g4 ? tb.g4_index : tb.g5_index;
    const int64_t offset = base + (g4 ? 0 : int64_t(tb.g4_index.size()));
    const double a_eta = g4 ? 4.0 : 2.0, b_eta = g4 ? 2.0 : 0.0;
    if constexpr (Mode::kind == Kind::Gradients)
        angular_gradient_chunk(tb, mode, L, B, params, offset, cnt, a_eta, b_eta);
    else
        angular_vjp_chunked(tb, mode, L, B, params, offset, cnt, a_eta, b_eta);
}

/// The derivative modes' part of center(), after the neighbors are gathered: G2
/// (radial_terms), then G4 / G5 over unordered pairs (n1 < n2) of neighbors, packed into
/// chunks (angular_chunk), or the fused VJP pass (vjp_angular_fused, acsf_vjp.hpp).
template <class Mode>
void derivative_terms(const AcsfTables& tb, Mode& mode, LocalNeighbors& L, BlockScratch& B) {
    constexpr Kind kind = Mode::kind;
    const int64_t m = L.m;
    const int64_t F = tb.n_features;
    const int32_t ns = tb.spec.n_species;
    const int64_t ne = int64_t(tb.angular_etas.size());
    const int64_t nz = int64_t(tb.zeta_lambdas.size());
    const double rc = tb.spec.cutoff;
    for (size_t l = 0; l < tb.leg_etas.size(); ++l)
        exp_neg_sq(tb.leg_etas[l], tb.leg_rs[l], L.r.data(), &L.expo[int64_t(l) * m], m);
    if constexpr (kind == Kind::Gradients) {
        std::fill(mode.g, mode.g + F, 0.0);
        mode.d.assign(size_t(m * 3 * F), 0.0);
    } else {
        for (auto* v : {&mode.coef, &mode.ex, &mode.ey, &mode.ez}) v->assign(size_t(mode.n_rhs * m), 0.0);
    }
    radial_terms(tb, mode, L);
    if (tb.n_angular_per_pair == 0) return;
    if constexpr (kind == Kind::Vjp) {
        if (vjp_angular_fused(tb, mode, L, B)) return;
    }
    B.resize(ne, nz, int64_t(tb.lambdas.size()), tb.ladder_depth,
             int64_t(std::max(tb.g4_index.size(), tb.g5_index.size())));
    const int64_t n_radial = tb.n_radial_features();
    const double rc2 = rc * rc;
    const int64_t C = kPairChunk;
    const double* X = L.x.data();
    const double* Y = L.y.data();
    const double* Z = L.z.data();
    for (int32_t s1 = 0; s1 < ns; ++s1) {
        for (int32_t s2 = s1; s2 < ns; ++s2) {
            const int64_t base = n_radial + int64_t(tb.pair_index[s1 * ns + s2]) * tb.n_angular_per_pair;
            for (int family = 0; family < 2; ++family) {
                const bool g4 = family == 0;
                if (g4 ? tb.g4_index.empty() : tb.g5_index.empty()) continue;
                int64_t cnt = 0;
                for (int64_t n1 = L.seg[s1]; n1 < L.seg[s1 + 1]; ++n1) {
                    const double x1 = X[n1], y1 = Y[n1], z1 = Z[n1];
                    int64_t n2 = std::max(n1 + 1, L.seg[s2]);
                    const int64_t n2_end = L.seg[s2 + 1];
                    while (n2 < n2_end) {
                        // branch-free compaction of at most the room left in the chunk
                        const int64_t stop = std::min(n2_end, n2 + (C - cnt));
                        if (g4) {
                            for (; n2 < stop; ++n2) {
                                const double dx = X[n2] - x1, dy = Y[n2] - y1, dz = Z[n2] - z1;
                                const double r2 = dx * dx + dy * dy + dz * dz;
                                B.r12sq[cnt] = r2;  // the third side must be inside the cutoff
                                B.i1[cnt] = n1;
                                B.i2[cnt] = n2;
                                cnt += r2 < rc2 ? 1 : 0;
                            }
                        } else {
                            for (; n2 < stop; ++n2, ++cnt) {
                                B.i1[cnt] = n1;
                                B.i2[cnt] = n2;
                            }
                        }
                        if (cnt == C) {
                            angular_chunk(tb, mode, L, B, g4, base, cnt);
                            cnt = 0;
                        }
                    }
                }
                if (cnt > 0) angular_chunk(tb, mode, L, B, g4, base, cnt);
            }
        }
    }
}

ALIP_KERNEL_END
