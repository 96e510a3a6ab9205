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
/// e^r by its Taylor series to r^13 (truncation < 1e-17), times 2^n (flushing to
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
    static constexpr double c[14] = {
        1.0,        1.0,         1.0 / 2,      1.0 / 6,       1.0 / 24,       1.0 / 120,       1.0 / 720,
        1.0 / 5040, 1.0 / 40320, 1.0 / 362880, 1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600, 1.0 / 6227020800.0};
    Vd p = simd::set1(c[13]);
    for (int k = 12; k >= 0; --k) p = simd::fma(p, r, simd::set1(c[k]));
    return simd::scale_pow2(p, n);
#endif
}

#if !ALIP_SIMD_SCALAR
/// sin(u) for |u| <= pi/2 by its Taylor series to u^21 (truncation < 2e-18); u2 = u * u.
inline Vd sin_taylor(Vd u, Vd u2) {
    static constexpr double s[10] = {-1.0 / 6,
                                     1.0 / 120,
                                     -1.0 / 5040,
                                     1.0 / 362880,
                                     -1.0 / 39916800,
                                     1.0 / 6227020800.0,
                                     -1.0 / 1307674368000.0,
                                     1.0 / 355687428096000.0,
                                     -1.0 / 121645100408832000.0,
                                     1.0 / 51090942171709440000.0};
    Vd p = simd::set1(s[9]);
    for (int k = 8; k >= 0; --k) p = simd::fma(p, u2, simd::set1(s[k]));
    return simd::fma(p * u2, u, u);
}
#endif

/// 0.5 (cos(a r) + 1) for a r in [0, pi] and 0 where r >= rc: cos(a r) = -sin(u),
/// u = a r - pi/2 in [-pi/2, pi/2], sin by its Taylor series to u^21 (truncation < 2e-18).
inline Vd cosine_cutoff(Vd r, double a, double rc) {
#if ALIP_SIMD_SCALAR
    return {r.v < rc ? 0.5 * (std::cos(a * r.v) + 1.0) : 0.0};
#else
    const Vd u = simd::fms(r, simd::set1(a), simd::set1(1.57079632679489661923));
    const Vd sin_u = sin_taylor(u, u * u);
    const Vd f = simd::fnma(simd::set1(0.5), sin_u, simd::set1(0.5));
    return simd::zero_unless(simd::lt(r, simd::set1(rc)), f);
#endif
}

/// The cosine cutoff and its derivative: f = 0.5 (cos(a r) + 1), df = -0.5 a sin(a r) for
/// r < rc, both 0 beyond. With u = a r - pi/2: cos(a r) = -sin(u), sin(a r) = cos(u), by
/// their Taylor series to u^21 / u^22 (truncation < 2e-18).
inline void cosine_cutoff_deriv(Vd r, double a, double rc, Vd& f, Vd& df) {
#if ALIP_SIMD_SCALAR
    const bool inside = r.v < rc;
    f = {inside ? 0.5 * (std::cos(a * r.v) + 1.0) : 0.0};
    df = {inside ? -0.5 * a * std::sin(a * r.v) : 0.0};
#else
    const Vd u = simd::fms(r, simd::set1(a), simd::set1(1.57079632679489661923));
    const Vd u2 = u * u;
    static constexpr double c[12] = {1.0,
                                     -1.0 / 2,
                                     1.0 / 24,
                                     -1.0 / 720,
                                     1.0 / 40320,
                                     -1.0 / 3628800,
                                     1.0 / 479001600,
                                     -1.0 / 87178291200.0,
                                     1.0 / 20922789888000.0,
                                     -1.0 / 6402373705728000.0,
                                     1.0 / 2432902008176640000.0,
                                     -1.0 / 1124000727777607680000.0};
    const Vd sin_u = sin_taylor(u, u2);
    Vd pc = simd::set1(c[11]);
    for (int k = 10; k >= 0; --k) pc = simd::fma(pc, u2, simd::set1(c[k]));
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

/// out[k] = exp(-eta * r[k]^2) for k < n (eta >= 0).
inline void exp_neg_sq(double eta, const double* r, double* out, int64_t n) {
#if ALIP_SIMD_SCALAR
#pragma omp simd
    for (int64_t k = 0; k < n; ++k) out[k] = std::exp(-eta * r[k] * r[k]);
#else
    const Vd ne = simd::set1(-eta);
    for (int64_t k = 0; k < n; k += simd::kWidth) {
        const simd::Md live = simd::tail(n - k);
        const Vd x = simd::load_tail(live, r + k);
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
