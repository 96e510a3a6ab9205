// Inline AVX-512 math shared by the kernels (acsf_kernel.hpp, acsf_values.hpp): exp of
// non-positive arguments and the cosine cutoff (with its derivative) as polynomials,
// plus array helpers that fall back to std:: calls in the variants without AVX-512.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "acsf.hpp"
#include "kernel_variant.hpp"

ALIP_KERNEL_BEGIN

constexpr double kPi = 3.14159265358979323846;
constexpr int64_t kPairChunk = 256;  ///< pairs per chunk of the derivative kernel

#if ALIP_KERNEL_AVX512
/// exp(x) for x <= 0 to ~1 ulp: x = n ln2 + r (|r| <= ln2 / 2, two-constant reduction),
/// e^r by its Taylor series to r^13 (truncation < 1e-17), times 2^n by scalef (which
/// flushes to 0 / denormals below -745 as exp does). FMAs only: nothing fast-math can
/// reassociate.
inline __m512d exp_nonpositive(__m512d x) {
    const __m512d n = _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(1.4426950408889634)),
                                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512d r = _mm512_fmadd_pd(n, _mm512_set1_pd(-6.93147180369123816490e-01), x);
    r = _mm512_fmadd_pd(n, _mm512_set1_pd(-1.90821492927058770002e-10), r);
    static constexpr double c[14] = {1.0,
                                     1.0,
                                     1.0 / 2,
                                     1.0 / 6,
                                     1.0 / 24,
                                     1.0 / 120,
                                     1.0 / 720,
                                     1.0 / 5040,
                                     1.0 / 40320,
                                     1.0 / 362880,
                                     1.0 / 3628800,
                                     1.0 / 39916800,
                                     1.0 / 479001600,
                                     1.0 / 6227020800.0};
    __m512d p = _mm512_set1_pd(c[13]);
    for (int k = 12; k >= 0; --k) p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(c[k]));
    return _mm512_scalef_pd(p, n);
}

/// 0.5 (cos(a r) + 1) for a r in [0, pi] and 0 where r >= rc: cos(a r) = -sin(u),
/// u = a r - pi/2 in [-pi/2, pi/2], sin by its Taylor series to u^21 (truncation < 2e-18).
inline __m512d cosine_cutoff(__m512d r, double a, double rc) {
    const __m512d u = _mm512_fmsub_pd(r, _mm512_set1_pd(a), _mm512_set1_pd(1.57079632679489661923));
    const __m512d u2 = _mm512_mul_pd(u, u);
    __m512d p = _mm512_set1_pd(1.0 / 51090942171709440000.0);  // 1/21!
    static constexpr double c[10] = {-1.0 / 6,           1.0 / 120,           -1.0 / 5040,         1.0 / 362880,
                                     -1.0 / 39916800,    1.0 / 6227020800.0,  -1.0 / 1307674368000.0,
                                     1.0 / 355687428096000.0, -1.0 / 121645100408832000.0, 0.0};
    for (int k = 8; k >= 0; --k) p = _mm512_fmadd_pd(p, u2, _mm512_set1_pd(c[k]));
    const __m512d sin_u = _mm512_fmadd_pd(_mm512_mul_pd(p, u2), u, u);
    const __m512d f = _mm512_fnmadd_pd(_mm512_set1_pd(0.5), sin_u, _mm512_set1_pd(0.5));
    return _mm512_maskz_mov_pd(_mm512_cmp_pd_mask(r, _mm512_set1_pd(rc), _CMP_LT_OQ), f);
}

/// The cosine cutoff and its derivative: f = 0.5 (cos(a r) + 1), df = -0.5 a sin(a r) for
/// r < rc, both 0 beyond. With u = a r - pi/2: cos(a r) = -sin(u), sin(a r) = cos(u), by
/// their Taylor series to u^21 / u^22 (truncation < 2e-18).
inline void cosine_cutoff_deriv(__m512d r, double a, double rc, __m512d& f, __m512d& df) {
    const __m512d u = _mm512_fmsub_pd(r, _mm512_set1_pd(a), _mm512_set1_pd(1.57079632679489661923));
    const __m512d u2 = _mm512_mul_pd(u, u);
    static constexpr double s[10] = {-1.0 / 6,           1.0 / 120,           -1.0 / 5040,         1.0 / 362880,
                                     -1.0 / 39916800,    1.0 / 6227020800.0,  -1.0 / 1307674368000.0,
                                     1.0 / 355687428096000.0, -1.0 / 121645100408832000.0, 1.0 / 51090942171709440000.0};
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
    __m512d ps = _mm512_set1_pd(s[9]);
    for (int k = 8; k >= 0; --k) ps = _mm512_fmadd_pd(ps, u2, _mm512_set1_pd(s[k]));
    const __m512d sin_u = _mm512_fmadd_pd(_mm512_mul_pd(ps, u2), u, u);
    __m512d pc = _mm512_set1_pd(c[11]);
    for (int k = 10; k >= 0; --k) pc = _mm512_fmadd_pd(pc, u2, _mm512_set1_pd(c[k]));
    const __mmask8 inside = _mm512_cmp_pd_mask(r, _mm512_set1_pd(rc), _CMP_LT_OQ);
    f = _mm512_maskz_mov_pd(inside, _mm512_fnmadd_pd(_mm512_set1_pd(0.5), sin_u, _mm512_set1_pd(0.5)));
    df = _mm512_maskz_mov_pd(inside, _mm512_mul_pd(_mm512_set1_pd(-0.5 * a), pc));
}

inline __mmask8 tail_mask(int64_t left) { return __mmask8(0xFFu >> (8 - std::min<int64_t>(8, left))); }
#endif

/// out[k] = exp(-eta * r[k]^2) for k < n (eta >= 0).
inline void exp_neg_sq(double eta, const double* r, double* out, int64_t n) {
#if ALIP_KERNEL_AVX512
    const __m512d ne = _mm512_set1_pd(-eta);
    for (int64_t k = 0; k < n; k += 8) {
        const __mmask8 live = tail_mask(n - k);
        const __m512d x = _mm512_maskz_loadu_pd(live, r + k);
        _mm512_mask_storeu_pd(out + k, live, exp_nonpositive(_mm512_mul_pd(ne, _mm512_mul_pd(x, x))));
    }
#else
#pragma omp simd
    for (int64_t k = 0; k < n; ++k) out[k] = std::exp(-eta * r[k] * r[k]);
#endif
}

inline void cutoff_values(CutoffFunction kind, double rc, const double* r, double* f, double* df, int64_t n,
                          bool derivative) {
    if (kind == CutoffFunction::Cosine) {
        const double a = kPi / rc;
#if ALIP_KERNEL_AVX512
        for (int64_t k = 0; k < n; k += 8) {
            const __mmask8 live = tail_mask(n - k);
            const __m512d x = _mm512_maskz_loadu_pd(live, r + k);
            if (derivative) {
                __m512d fk, dfk;
                cosine_cutoff_deriv(x, a, rc, fk, dfk);
                _mm512_mask_storeu_pd(f + k, live, fk);
                _mm512_mask_storeu_pd(df + k, live, dfk);
            } else {
                _mm512_mask_storeu_pd(f + k, live, cosine_cutoff(x, a, rc));
            }
        }
        return;
#endif
#pragma omp simd
        for (int64_t k = 0; k < n; ++k) f[k] = r[k] < rc ? 0.5 * (std::cos(a * r[k]) + 1.0) : 0.0;
        if (derivative) {
#pragma omp simd
            for (int64_t k = 0; k < n; ++k) df[k] = r[k] < rc ? -0.5 * a * std::sin(a * r[k]) : 0.0;
        }
    } else {
#pragma omp simd
        for (int64_t k = 0; k < n; ++k) {
            const double inside = r[k] < rc ? 1.0 : 0.0;
            const double x = r[k] / rc, x2 = x * x;
            f[k] = inside * (1.0 + x2 * x * (-10.0 + x * (15.0 - 6.0 * x)));
        }
        if (derivative) {
#pragma omp simd
            for (int64_t k = 0; k < n; ++k) {
                const double inside = r[k] < rc ? 1.0 : 0.0;
                const double x = r[k] / rc, x2 = x * x;
                df[k] = inside * x2 * (-30.0 + x * (60.0 - 30.0 * x)) / rc;
            }
        }
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
