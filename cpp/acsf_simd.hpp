// Vector math shared by the kernels (acsf_kernel.hpp, acsf_values.hpp, acsf_vjp.hpp),
// written once over simd.hpp: exp of non-positive arguments and the cutoff functions
// (with derivatives) as polynomials (std::exp / std::cos in the scalar backend), plus
// array helpers.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "acsf.hpp"
#include "kernel_variant.hpp"
#include "simd.hpp"

ALIP_KERNEL_BEGIN

constexpr double kPi = 3.14159265358979323846;
constexpr int64_t kPairChunk = 256;  ///< pairs per chunk of the derivative kernel

using simd::Vd;

/// exp(x) for x <= 0 to ~1 ulp: x = n ln2 + r (|r| <= ln2 / 2, two-constant reduction),
/// e^r by a polynomial of degree 11 fitted on Chebyshev nodes (truncation < 4e-18
/// relative; the Taylor series needs degree 13), times 2^n (flushing to
/// denormals / 0 below -708 as exp does). FMAs only: nothing fast-math can reassociate.
/// The scalar backend calls std::exp.
inline Vd exp_nonpositive(Vd x) {
#if ALIP_SIMD_SCALAR
    return {std::exp(x.v)};
#else
#if !ALIP_SIMD_AVX512
    x = simd::max(x, simd::set1(-1000.0));  // exp(-1000) is 0 in double; keeps n in scale_pow2's range
#endif
    const Vd n = simd::round_nearest(x * simd::set1(1.4426950408889634));
    Vd r = simd::fma(n, simd::set1(-6.93147180369123816490e-01), x);
    r = simd::fma(n, simd::set1(-1.90821492927058770002e-10), r);
    static constexpr double c[12] = {1.0,
                                     1.0,
                                     0.5000000000000019,
                                     0.1666666666666668,
                                     0.0416666666664881,
                                     0.008333333333319601,
                                     0.0013888888952314775,
                                     0.00019841269890047113,
                                     2.4801485482328494e-05,
                                     2.755724091857897e-06,
                                     2.763263963904103e-07,
                                     2.5110037605963777e-08};
    Vd p = simd::set1(c[11]);
    for (int k = 10; k >= 0; --k) p = simd::fma(p, r, simd::set1(c[k]));
    return simd::scale_pow2(p, n);
#endif
}

#if !ALIP_SIMD_SCALAR
/// sin(u) for |u| <= pi/2 as u + u^3 q(u^2), q of degree 7 fitted on Chebyshev nodes
/// (truncation < 1.4e-18 absolute; the Taylor series needs degree 9 for that); u2 = u * u.
inline Vd sin_poly(Vd u, Vd u2) {
    static constexpr double s[8] = {-0.16666666666666666,   0.008333333333333316,    -0.00019841269841254974,
                                    2.7557319219163234e-06, -2.5052107616996182e-08, 1.6058977312464087e-10,
                                    -7.643970296798572e-13, 2.7314447669863995e-15};
    Vd p = simd::set1(s[7]);
    for (int k = 6; k >= 0; --k) p = simd::fma(p, u2, simd::set1(s[k]));
    return simd::fma(p * u2, u, u);
}

/// cos(u) for |u| <= pi/2 as a polynomial of degree 8 in u^2 fitted on Chebyshev nodes
/// (truncation < 4e-18 absolute; the Taylor series needs degree 11).
inline Vd cos_poly(Vd u2) {
    static constexpr double c[9] = {1.0,
                                    -0.4999999999999997,
                                    0.04166666666666388,
                                    -0.001388888888877299,
                                    2.4801587277414926e-05,
                                    -2.755731639102575e-07,
                                    2.0876561839933163e-09,
                                    -1.1462901901757276e-11,
                                    4.608977003001797e-14};
    Vd p = simd::set1(c[8]);
    for (int k = 7; k >= 0; --k) p = simd::fma(p, u2, simd::set1(c[k]));
    return p;
}
#endif

/// 0.5 (cos(a r) + 1) for a r in [0, pi] and 0 where r >= rc: cos(a r) = -sin(u),
/// u = a r - pi/2 in [-pi/2, pi/2] (sin_poly).
inline Vd cosine_cutoff(Vd r, double a, double rc) {
#if ALIP_SIMD_SCALAR
    return {r.v < rc ? 0.5 * (std::cos(a * r.v) + 1.0) : 0.0};
#else
    const Vd u = simd::fms(r, simd::set1(a), simd::set1(1.57079632679489661923));
    const Vd sin_u = sin_poly(u, u * u);
    const Vd f = simd::fnma(simd::set1(0.5), sin_u, simd::set1(0.5));
    return simd::zero_unless(simd::lt(r, simd::set1(rc)), f);
#endif
}

/// The cosine cutoff and its derivative: f = 0.5 (cos(a r) + 1), df = -0.5 a sin(a r) for
/// r < rc, both 0 beyond. With u = a r - pi/2: cos(a r) = -sin(u), sin(a r) = cos(u), by
/// sin_poly and cos_poly.
inline void cosine_cutoff_deriv(Vd r, double a, double rc, Vd& f, Vd& df) {
#if ALIP_SIMD_SCALAR
    const bool inside = r.v < rc;
    f = {inside ? 0.5 * (std::cos(a * r.v) + 1.0) : 0.0};
    df = {inside ? -0.5 * a * std::sin(a * r.v) : 0.0};
#else
    const Vd u = simd::fms(r, simd::set1(a), simd::set1(1.57079632679489661923));
    const Vd u2 = u * u;
    const Vd sin_u = sin_poly(u, u2);
    const Vd pc = cos_poly(u2);
    const simd::Md inside = simd::lt(r, simd::set1(rc));
    f = simd::zero_unless(inside, simd::fnma(simd::set1(0.5), sin_u, simd::set1(0.5)));
    df = simd::zero_unless(inside, simd::set1(-0.5 * a) * pc);
#endif
}

/// The polynomial cutoff 1 + x^3 (-10 + x (15 - 6 x)), x = r / rc, and its derivative
/// x^2 (-30 + x (60 - 30 x)) / rc, both 0 for r >= rc.
inline void polynomial_cutoff_deriv(Vd r, double rc, Vd& f, Vd& df) {
    const Vd x = r * simd::set1(1.0 / rc);
    const Vd x2 = x * x;
    const simd::Md inside = simd::lt(r, simd::set1(rc));
    Vd p = simd::fma(x, simd::set1(-6.0), simd::set1(15.0));
    p = simd::fma(x, p, simd::set1(-10.0));
    f = simd::zero_unless(inside, simd::fma(x2 * x, p, simd::set1(1.0)));
    Vd q = simd::fma(x, simd::set1(-30.0), simd::set1(60.0));
    q = simd::fma(x, q, simd::set1(-30.0));
    df = simd::zero_unless(inside, (x2 * q) / simd::set1(rc));
}

// The array helpers below: in the SIMD backends, loops over Vd; in the scalar backend,
// loops the compiler vectorizes itself (omp simd with glibc's vector exp / cos under
// -ffast-math), which a one-lane Vd loop would prevent.

/// out[k] = exp(-eta * x[k]) for k < n (eta, x >= 0).
inline void exp_neg(double eta, const double* x, double* out, int64_t n) {
#if ALIP_SIMD_SCALAR
#pragma omp simd
    for (int64_t k = 0; k < n; ++k) out[k] = std::exp(-eta * x[k]);
#else
    const Vd ne = simd::set1(-eta);
    for (int64_t k = 0; k < n; k += simd::kWidth) {
        const simd::Md live = simd::tail(n - k);
        simd::store_tail(out + k, live, exp_nonpositive(ne * simd::load_tail(live, x + k)));
    }
#endif
}

/// out[k] = exp(-eta * (r[k] - rs)^2) for k < n (eta >= 0).
inline void exp_neg_sq(double eta, double rs, const double* r, double* out, int64_t n) {
#if ALIP_SIMD_SCALAR
#pragma omp simd
    for (int64_t k = 0; k < n; ++k) out[k] = std::exp(-eta * (r[k] - rs) * (r[k] - rs));
#else
    const Vd ne = simd::set1(-eta), vrs = simd::set1(rs);
    for (int64_t k = 0; k < n; k += simd::kWidth) {
        const simd::Md live = simd::tail(n - k);
        const Vd x = simd::load_tail(live, r + k) - vrs;
        simd::store_tail(out + k, live, exp_nonpositive(ne * (x * x)));
    }
#endif
}

/// f[k] = f_c(r[k]) and, with `derivative`, df[k] = f_c'(r[k]), for k < n.
inline void cutoff_values(CutoffFunction kind, double rc, const double* r, double* f, double* df, int64_t n,
                          bool derivative) {
    const double a = kPi / rc;
#if ALIP_SIMD_SCALAR
    if (kind == CutoffFunction::Cosine) {
#pragma omp simd
        for (int64_t k = 0; k < n; ++k) f[k] = r[k] < rc ? 0.5 * (std::cos(a * r[k]) + 1.0) : 0.0;
        if (derivative) {
#pragma omp simd
            for (int64_t k = 0; k < n; ++k) df[k] = r[k] < rc ? -0.5 * a * std::sin(a * r[k]) : 0.0;
        }
        return;
    }
#endif
    for (int64_t k = 0; k < n; k += simd::kWidth) {
        const simd::Md live = simd::tail(n - k);
        const Vd x = simd::load_tail(live, r + k);
        Vd fk, dfk;
        if (kind == CutoffFunction::Polynomial) {
            polynomial_cutoff_deriv(x, rc, fk, dfk);
        } else if (derivative) {
            cosine_cutoff_deriv(x, a, rc, fk, dfk);
        } else {
            fk = cosine_cutoff(x, a, rc);
        }
        simd::store_tail(f + k, live, fk);
        if (derivative) simd::store_tail(df + k, live, dfk);
    }
}

/// ladder[t * stride + k] = max(0, 1 + lambda cos_k)^(2^t) for t < depth: the rungs that
/// ladder_power multiplies into (1 + lambda cos)^zeta.
inline void fill_ladder(double* ladder, int depth, int64_t stride, double lambda, const double* cos, int64_t n) {
#pragma omp simd
    for (int64_t k = 0; k < n; ++k) ladder[k] = std::max(0.0, 1.0 + lambda * cos[k]);
    for (int t = 1; t < depth; ++t) {
        double* next = ladder + t * stride;
        const double* prev = next - stride;
#pragma omp simd
        for (int64_t k = 0; k < n; ++k) next[k] = prev[k] * prev[k];
    }
}

/// out = product of ladder[t] over the set bits t of e (ladder[t] = b^(2^t)), i.e. b^e.
inline void ladder_power(const double* ladder, int e, double* out, int64_t n) {
    bool first = true;
    for (int t = 0; e > 0; ++t, e >>= 1) {
        if (!(e & 1)) continue;
        const double* src = ladder + t * kPairChunk;
        if (first) {
#pragma omp simd
            for (int64_t k = 0; k < n; ++k) out[k] = src[k];
            first = false;
        } else {
#pragma omp simd
            for (int64_t k = 0; k < n; ++k) out[k] *= src[k];
        }
    }
    if (first) std::fill(out, out + n, 1.0);
}

ALIP_KERNEL_END
