// A thin portable SIMD layer for the kernels: one vector type of doubles (Vd), its mask
// (Md) and the handful of operations the kernels need, in four backends chosen by the
// variant's TU (kernel_variant.hpp):
//   ALIP_SIMD_AVX512  8 lanes (__m512d, __mmask8; native compress, scalef, rsqrt14)
//   ALIP_SIMD_AVX2    8 lanes as two __m256d halves (lane masks; compress by a permutation
//                     table per half): two independent chains per operation
//   ALIP_SIMD_NEON    2 lanes (float64x2_t, aarch64)
//   otherwise         1 lane, plain double (std::exp / std::cos in the math helpers)
// The kernels (acsf_values.hpp, acsf_vjp.hpp, acsf_kernel.hpp) are written once against
// this interface; acsf_simd.hpp builds exp and the cutoff functions from it.
// Conventions: loads and stores are unaligned; `load` reads kWidth doubles (callers pad
// their rows), `load_tail` / `store_tail` touch only the lanes of a tail mask.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernel_variant.hpp"

#if ALIP_SIMD_AVX512 || ALIP_SIMD_AVX2
#include <immintrin.h>
#elif ALIP_SIMD_NEON
#include <arm_neon.h>
#endif

ALIP_KERNEL_BEGIN
namespace simd {

#if ALIP_SIMD_AVX512
constexpr int kWidth = 8;
constexpr const char* kName = "avx512";
struct Vd {
    __m512d v;
};
struct Md {
    __mmask8 m;
};
inline Vd zero() { return {_mm512_setzero_pd()}; }
inline Vd set1(double x) { return {_mm512_set1_pd(x)}; }
inline Vd load(const double* p) { return {_mm512_loadu_pd(p)}; }
inline void store(double* p, Vd a) { _mm512_storeu_pd(p, a.v); }
inline Md tail(int64_t left) { return {__mmask8(0xFFu >> (8 - (left < 8 ? left : 8)))}; }
inline Vd load_tail(Md m, const double* p) { return {_mm512_maskz_loadu_pd(m.m, p)}; }
inline void store_tail(double* p, Md m, Vd a) { _mm512_mask_storeu_pd(p, m.m, a.v); }
inline Vd operator+(Vd a, Vd b) { return {_mm512_add_pd(a.v, b.v)}; }
inline Vd operator-(Vd a, Vd b) { return {_mm512_sub_pd(a.v, b.v)}; }
inline Vd operator*(Vd a, Vd b) { return {_mm512_mul_pd(a.v, b.v)}; }
inline Vd operator/(Vd a, Vd b) { return {_mm512_div_pd(a.v, b.v)}; }
inline Vd fma(Vd a, Vd b, Vd c) { return {_mm512_fmadd_pd(a.v, b.v, c.v)}; }    ///< a b + c
inline Vd fms(Vd a, Vd b, Vd c) { return {_mm512_fmsub_pd(a.v, b.v, c.v)}; }    ///< a b - c
inline Vd fnma(Vd a, Vd b, Vd c) { return {_mm512_fnmadd_pd(a.v, b.v, c.v)}; }  ///< c - a b
inline Vd min(Vd a, Vd b) { return {_mm512_min_pd(a.v, b.v)}; }
inline Vd max(Vd a, Vd b) { return {_mm512_max_pd(a.v, b.v)}; }
inline Vd sqrt(Vd a) { return {_mm512_sqrt_pd(a.v)}; }
inline Vd round_nearest(Vd a) { return {_mm512_roundscale_pd(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
inline Md lt(Vd a, Vd b) { return {_mm512_cmp_pd_mask(a.v, b.v, _CMP_LT_OQ)}; }
inline Md operator&(Md a, Md b) { return {__mmask8(a.m & b.m)}; }
inline Vd zero_unless(Md m, Vd a) { return {_mm512_maskz_mov_pd(m.m, a.v)}; }
inline unsigned bits(Md m) { return m.m; }
inline double reduce_add(Vd a) { return _mm512_reduce_add_pd(a.v); }
/// p 2^n for integer-valued n in [-2044, 0] (AVX-512: any n), flushing to denormals / 0
/// as exp does.
inline Vd scale_pow2(Vd p, Vd n) { return {_mm512_scalef_pd(p.v, n.v)}; }
/// 1 / sqrt(x) for x > 0: rsqrt14 (2^-14) and two Newton steps (~1e-16 relative).
inline Vd inv_sqrt(Vd x) {
    const __m512d half_x = _mm512_mul_pd(_mm512_set1_pd(0.5), x.v), three_halves = _mm512_set1_pd(1.5);
    __m512d y = _mm512_rsqrt14_pd(x.v);
    y = _mm512_mul_pd(y, _mm512_fnmadd_pd(half_x, _mm512_mul_pd(y, y), three_halves));
    y = _mm512_mul_pd(y, _mm512_fnmadd_pd(half_x, _mm512_mul_pd(y, y), three_halves));
    return {y};
}
/// Packs the lanes a mask keeps to the front (stream compaction): store(out, a) writes
/// kWidth doubles, the kept lanes of `a` first; store_index(out, first) writes first + j
/// for the kept lanes j, likewise.
struct Packer {
    __mmask8 m;
    explicit Packer(Md keep) : m(keep.m) {}
    void store(double* out, Vd a) const { _mm512_storeu_pd(out, _mm512_maskz_compress_pd(m, a.v)); }
    void store_index(int64_t* out, int64_t first) const {
        const __m512i idx = _mm512_add_epi64(_mm512_set1_epi64(first), _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0));
        _mm512_storeu_si512(out, _mm512_maskz_compress_epi64(m, idx));
    }
};
/// base[idx[j]] for the lanes j < lanes, 0 beyond.
inline Vd gather(const double* base, const int64_t* idx, int lanes) {
    const __mmask8 m = tail(lanes).m;
    return {_mm512_mask_i64gather_pd(_mm512_setzero_pd(), m, _mm512_maskz_loadu_epi64(m, idx), base, 8)};
}
/// acc[4 idx[j] + c] += (a, b, c, d)[c] of lane j, for j < lanes, in lane order (repeated
/// indices add up).
inline void transpose_add4(Vd a, Vd b, Vd c, Vd d, const int64_t* idx, int lanes, double* acc) {
    const __m512d t0 = _mm512_unpacklo_pd(a.v, b.v), t1 = _mm512_unpackhi_pd(a.v, b.v);  // (a0 b0 a2 b2 ..)
    const __m512d t2 = _mm512_unpacklo_pd(c.v, d.v), t3 = _mm512_unpackhi_pd(c.v, d.v);
    const __m512i lo = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0), hi = _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4);
    alignas(64) double tmp[32];
    _mm512_store_pd(tmp, _mm512_permutex2var_pd(t0, lo, t2));       // lanes 0, 2
    _mm512_store_pd(tmp + 8, _mm512_permutex2var_pd(t0, hi, t2));   // lanes 4, 6
    _mm512_store_pd(tmp + 16, _mm512_permutex2var_pd(t1, lo, t3));  // lanes 1, 3
    _mm512_store_pd(tmp + 24, _mm512_permutex2var_pd(t1, hi, t3));  // lanes 5, 7
    static constexpr int where[8] = {0, 16, 4, 20, 8, 24, 12, 28};
    for (int j = 0; j < lanes; ++j) {
        double* p = acc + 4 * idx[j];
        _mm256_storeu_pd(p, _mm256_add_pd(_mm256_loadu_pd(p), _mm256_load_pd(tmp + where[j])));
    }
}

#elif ALIP_SIMD_AVX2
// Two 256-bit halves per vector (8 lanes, like AVX-512): the kernels are bound by the
// latency of their dependency chains (exp and cutoff polynomials, the ladder of squares),
// and one 4-lane chain per step leaves the FMA units idle; two independent halves per
// operation double the work in flight. Lane j < 4 is in lo, lane j >= 4 in hi[j - 4].
constexpr int kWidth = 8;
constexpr const char* kName = "avx2";
struct Vd {
    __m256d lo, hi;
};
struct Md {
    __m256d lo, hi;  ///< all-ones lanes
};
/// Per 4-bit mask: the 32-bit lane indices that move the kept doubles of a half to the front.
struct CompressTable {
    int32_t idx[16][8];
};
constexpr CompressTable make_compress_table() {
    CompressTable t{};
    for (int m = 0; m < 16; ++m) {
        int k = 0;
        for (int j = 0; j < 4; ++j)
            if ((m >> j) & 1) t.idx[m][2 * k] = 2 * j, t.idx[m][2 * k + 1] = 2 * j + 1, ++k;
        for (; k < 4; ++k) t.idx[m][2 * k] = 0, t.idx[m][2 * k + 1] = 1;
    }
    return t;
}
alignas(32) inline constexpr CompressTable kCompressTable = make_compress_table();

inline Vd zero() { return {_mm256_setzero_pd(), _mm256_setzero_pd()}; }
inline Vd set1(double x) { return {_mm256_set1_pd(x), _mm256_set1_pd(x)}; }
inline Vd load(const double* p) { return {_mm256_loadu_pd(p), _mm256_loadu_pd(p + 4)}; }
inline void store(double* p, Vd a) {
    _mm256_storeu_pd(p, a.lo);
    _mm256_storeu_pd(p + 4, a.hi);
}
inline Md tail(int64_t left) {  // lanes j < left
    const __m256i n = _mm256_set1_epi64x(left);
    return {_mm256_castsi256_pd(_mm256_cmpgt_epi64(n, _mm256_set_epi64x(3, 2, 1, 0))),
            _mm256_castsi256_pd(_mm256_cmpgt_epi64(n, _mm256_set_epi64x(7, 6, 5, 4)))};
}
inline Vd load_tail(Md m, const double* p) {
    return {_mm256_maskload_pd(p, _mm256_castpd_si256(m.lo)), _mm256_maskload_pd(p + 4, _mm256_castpd_si256(m.hi))};
}
inline void store_tail(double* p, Md m, Vd a) {
    _mm256_maskstore_pd(p, _mm256_castpd_si256(m.lo), a.lo);
    _mm256_maskstore_pd(p + 4, _mm256_castpd_si256(m.hi), a.hi);
}
inline Vd operator+(Vd a, Vd b) { return {_mm256_add_pd(a.lo, b.lo), _mm256_add_pd(a.hi, b.hi)}; }
inline Vd operator-(Vd a, Vd b) { return {_mm256_sub_pd(a.lo, b.lo), _mm256_sub_pd(a.hi, b.hi)}; }
inline Vd operator*(Vd a, Vd b) { return {_mm256_mul_pd(a.lo, b.lo), _mm256_mul_pd(a.hi, b.hi)}; }
inline Vd operator/(Vd a, Vd b) { return {_mm256_div_pd(a.lo, b.lo), _mm256_div_pd(a.hi, b.hi)}; }
inline Vd fma(Vd a, Vd b, Vd c) { return {_mm256_fmadd_pd(a.lo, b.lo, c.lo), _mm256_fmadd_pd(a.hi, b.hi, c.hi)}; }
inline Vd fms(Vd a, Vd b, Vd c) { return {_mm256_fmsub_pd(a.lo, b.lo, c.lo), _mm256_fmsub_pd(a.hi, b.hi, c.hi)}; }
inline Vd fnma(Vd a, Vd b, Vd c) { return {_mm256_fnmadd_pd(a.lo, b.lo, c.lo), _mm256_fnmadd_pd(a.hi, b.hi, c.hi)}; }
inline Vd min(Vd a, Vd b) { return {_mm256_min_pd(a.lo, b.lo), _mm256_min_pd(a.hi, b.hi)}; }
inline Vd max(Vd a, Vd b) { return {_mm256_max_pd(a.lo, b.lo), _mm256_max_pd(a.hi, b.hi)}; }
inline Vd sqrt(Vd a) { return {_mm256_sqrt_pd(a.lo), _mm256_sqrt_pd(a.hi)}; }
inline Vd round_nearest(Vd a) {
    return {_mm256_round_pd(a.lo, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
            _mm256_round_pd(a.hi, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)};
}
inline Md lt(Vd a, Vd b) { return {_mm256_cmp_pd(a.lo, b.lo, _CMP_LT_OQ), _mm256_cmp_pd(a.hi, b.hi, _CMP_LT_OQ)}; }
inline Md operator&(Md a, Md b) { return {_mm256_and_pd(a.lo, b.lo), _mm256_and_pd(a.hi, b.hi)}; }
inline Vd zero_unless(Md m, Vd a) { return {_mm256_and_pd(m.lo, a.lo), _mm256_and_pd(m.hi, a.hi)}; }
inline unsigned bits(Md m) { return unsigned(_mm256_movemask_pd(m.lo)) | unsigned(_mm256_movemask_pd(m.hi)) << 4; }
/// The lanes' sum in AVX-512's order: (x0 + x4, .., x3 + x7), then halves, then the pair.
inline double reduce_add(Vd a) {
    const __m256d s4 = _mm256_add_pd(a.lo, a.hi);
    const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(s4), _mm256_extractf128_pd(s4, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}
/// 2^t for integer-valued t in [-1022, 1023]: t + 1.5 2^52 + 1023 holds t + 1023 in its
/// low mantissa bits; shifted into the exponent field.
inline __m256d pow2_integer(__m256d t) {
    const __m256d shifted = _mm256_add_pd(t, _mm256_set1_pd(6755399441055744.0 + 1023.0));
    return _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_castpd_si256(shifted), 52));
}
inline __m256d scale_pow2_half(__m256d p, __m256d n) {  // two normal factors: the product rounds once into denormals
    const __m256d n1 = _mm256_floor_pd(_mm256_mul_pd(n, _mm256_set1_pd(0.5)));
    return _mm256_mul_pd(_mm256_mul_pd(p, pow2_integer(n1)), pow2_integer(_mm256_sub_pd(n, n1)));
}
/// One exact product by 2^n while every n >= -1022 (2^n normal; exp arguments above -708,
/// i.e. always in the kernels); otherwise the two-factor product, same result.
inline Vd scale_pow2(Vd p, Vd n) {
    const __m256d lowest = _mm256_set1_pd(-1022.0);
    const __m256d below =
        _mm256_or_pd(_mm256_cmp_pd(n.lo, lowest, _CMP_LT_OQ), _mm256_cmp_pd(n.hi, lowest, _CMP_LT_OQ));
    if (__builtin_expect(_mm256_movemask_pd(below) != 0, 0))
        return {scale_pow2_half(p.lo, n.lo), scale_pow2_half(p.hi, n.hi)};
    return {_mm256_mul_pd(p.lo, pow2_integer(n.lo)), _mm256_mul_pd(p.hi, pow2_integer(n.hi))};
}
inline Vd inv_sqrt(Vd x) {
    const __m256d one = _mm256_set1_pd(1.0);
    return {_mm256_div_pd(one, _mm256_sqrt_pd(x.lo)), _mm256_div_pd(one, _mm256_sqrt_pd(x.hi))};
}
/// Compress per half by a permutation-table row; the kept lanes of hi follow those of lo.
struct Packer {
    __m256i perm_lo, perm_hi;  ///< the 32-bit lane permutations of the halves' table rows
    int n_lo;                  ///< lanes kept in lo
    explicit Packer(Md keep) {
        const unsigned lo = unsigned(_mm256_movemask_pd(keep.lo)), hi = unsigned(_mm256_movemask_pd(keep.hi));
        perm_lo = _mm256_load_si256(reinterpret_cast<const __m256i*>(kCompressTable.idx[lo]));
        perm_hi = _mm256_load_si256(reinterpret_cast<const __m256i*>(kCompressTable.idx[hi]));
        n_lo = __builtin_popcount(lo);
    }
    void store(double* out, Vd a) const {
        _mm256_storeu_pd(out, _mm256_castps_pd(_mm256_permutevar8x32_ps(_mm256_castpd_ps(a.lo), perm_lo)));
        _mm256_storeu_pd(out + n_lo, _mm256_castps_pd(_mm256_permutevar8x32_ps(_mm256_castpd_ps(a.hi), perm_hi)));
    }
    void store_index(int64_t* out, int64_t first) const {
        const __m256i lo = _mm256_add_epi64(_mm256_set1_epi64x(first), _mm256_set_epi64x(3, 2, 1, 0));
        const __m256i hi = _mm256_add_epi64(_mm256_set1_epi64x(first), _mm256_set_epi64x(7, 6, 5, 4));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_permutevar8x32_epi32(lo, perm_lo));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + n_lo), _mm256_permutevar8x32_epi32(hi, perm_hi));
    }
};
inline Vd gather(const double* base, const int64_t* idx, int lanes) {
    // scalar loads straight into registers (a stack buffer read back as vectors would stall
    // on store forwarding; AVX2's gather instruction is slow on many CPUs); lanes beyond
    // `lanes` repeat the last index and are then zeroed
    double v[8];
    for (int j = 0; j < 8; ++j) v[j] = base[idx[j < lanes ? j : lanes - 1]];
    const Md live = tail(lanes);
    return {_mm256_and_pd(live.lo, _mm256_set_pd(v[3], v[2], v[1], v[0])),
            _mm256_and_pd(live.hi, _mm256_set_pd(v[7], v[6], v[5], v[4]))};
}
/// The 4 x 4 transpose of one half: row j = (a_j, b_j, c_j, d_j).
inline void transpose4(__m256d a, __m256d b, __m256d c, __m256d d, __m256d row[4]) {
    const __m256d t0 = _mm256_unpacklo_pd(a, b), t1 = _mm256_unpackhi_pd(a, b);  // (a0 b0 a2 b2), (a1 b1 a3 b3)
    const __m256d t2 = _mm256_unpacklo_pd(c, d), t3 = _mm256_unpackhi_pd(c, d);
    row[0] = _mm256_permute2f128_pd(t0, t2, 0x20);
    row[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
    row[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
    row[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
}
inline void transpose_add4(Vd a, Vd b, Vd c, Vd d, const int64_t* idx, int lanes, double* acc) {
    __m256d row[8];
    transpose4(a.lo, b.lo, c.lo, d.lo, row);
    transpose4(a.hi, b.hi, c.hi, d.hi, row + 4);
    for (int j = 0; j < lanes; ++j) {
        double* p = acc + 4 * idx[j];
        _mm256_storeu_pd(p, _mm256_add_pd(_mm256_loadu_pd(p), row[j]));
    }
}

#elif ALIP_SIMD_NEON
constexpr int kWidth = 2;
constexpr const char* kName = "neon";
struct Vd {
    float64x2_t v;
};
struct Md {
    uint64x2_t m;
};
inline Vd zero() { return {vdupq_n_f64(0.0)}; }
inline Vd set1(double x) { return {vdupq_n_f64(x)}; }
inline Vd load(const double* p) { return {vld1q_f64(p)}; }
inline void store(double* p, Vd a) { vst1q_f64(p, a.v); }
inline Md tail(int64_t left) {
    const uint64x2_t lane = vcombine_u64(vcreate_u64(0), vcreate_u64(1));
    return {vcltq_u64(lane, vdupq_n_u64(uint64_t(left < 2 ? left : 2)))};
}
inline unsigned bits(Md m) {
    return unsigned(vgetq_lane_u64(m.m, 0) & 1u) | unsigned(vgetq_lane_u64(m.m, 1) & 1u) << 1;
}
inline Vd load_tail(Md m, const double* p) {
    const unsigned b = bits(m);
    if (b == 3u) return load(p);
    return {vcombine_f64(vdup_n_f64((b & 1u) ? p[0] : 0.0), vdup_n_f64((b & 2u) ? p[1] : 0.0))};
}
inline void store_tail(double* p, Md m, Vd a) {
    const unsigned b = bits(m);
    if (b & 1u) p[0] = vgetq_lane_f64(a.v, 0);
    if (b & 2u) p[1] = vgetq_lane_f64(a.v, 1);
}
inline Vd operator+(Vd a, Vd b) { return {vaddq_f64(a.v, b.v)}; }
inline Vd operator-(Vd a, Vd b) { return {vsubq_f64(a.v, b.v)}; }
inline Vd operator*(Vd a, Vd b) { return {vmulq_f64(a.v, b.v)}; }
inline Vd operator/(Vd a, Vd b) { return {vdivq_f64(a.v, b.v)}; }
inline Vd fma(Vd a, Vd b, Vd c) { return {vfmaq_f64(c.v, a.v, b.v)}; }
inline Vd fms(Vd a, Vd b, Vd c) { return {vnegq_f64(vfmsq_f64(c.v, a.v, b.v))}; }
inline Vd fnma(Vd a, Vd b, Vd c) { return {vfmsq_f64(c.v, a.v, b.v)}; }
inline Vd min(Vd a, Vd b) { return {vminq_f64(a.v, b.v)}; }
inline Vd max(Vd a, Vd b) { return {vmaxq_f64(a.v, b.v)}; }
inline Vd sqrt(Vd a) { return {vsqrtq_f64(a.v)}; }
inline Vd round_nearest(Vd a) { return {vrndnq_f64(a.v)}; }
inline Md lt(Vd a, Vd b) { return {vcltq_f64(a.v, b.v)}; }
inline Md operator&(Md a, Md b) { return {vandq_u64(a.m, b.m)}; }
inline Vd zero_unless(Md m, Vd a) { return {vreinterpretq_f64_u64(vandq_u64(m.m, vreinterpretq_u64_f64(a.v)))}; }
inline double reduce_add(Vd a) { return vaddvq_f64(a.v); }
inline float64x2_t pow2_integer(float64x2_t t) {  // t integer-valued in [-1022, 1023]
    const int64x2_t e = vaddq_s64(vcvtnq_s64_f64(t), vdupq_n_s64(1023));
    return vreinterpretq_f64_s64(vshlq_n_s64(e, 52));
}
inline Vd scale_pow2(Vd p, Vd n) {  // two normal factors, so that the product rounds once into denormals
    const float64x2_t n1 = vrndmq_f64(vmulq_f64(n.v, vdupq_n_f64(0.5)));
    return {vmulq_f64(vmulq_f64(p.v, pow2_integer(n1)), pow2_integer(vsubq_f64(n.v, n1)))};
}
inline Vd inv_sqrt(Vd x) { return {vdivq_f64(vdupq_n_f64(1.0), vsqrtq_f64(x.v))}; }
struct Packer {
    bool first_kept;  ///< lane 0 kept: the vector stays as it is; else lane 1 moves to the front
    explicit Packer(Md keep) : first_kept(vgetq_lane_u64(keep.m, 0) != 0) {}
    void store(double* out, Vd a) const { vst1q_f64(out, first_kept ? a.v : vdupq_laneq_f64(a.v, 1)); }
    void store_index(int64_t* out, int64_t first) const {
        out[0] = first_kept ? first : first + 1;
        out[1] = first + 1;
    }
};
inline Vd gather(const double* base, const int64_t* idx, int lanes) {
    return {vcombine_f64(vdup_n_f64(base[idx[0]]), vdup_n_f64(lanes > 1 ? base[idx[1]] : 0.0))};
}
inline void transpose_add4(Vd a, Vd b, Vd c, Vd d, const int64_t* idx, int lanes, double* acc) {
    const float64x2_t lo0 = vzip1q_f64(a.v, b.v), lo1 = vzip1q_f64(c.v, d.v);  // lane 0: (a0 b0), (c0 d0)
    double* p = acc + 4 * idx[0];
    vst1q_f64(p, vaddq_f64(vld1q_f64(p), lo0));
    vst1q_f64(p + 2, vaddq_f64(vld1q_f64(p + 2), lo1));
    if (lanes > 1) {
        const float64x2_t hi0 = vzip2q_f64(a.v, b.v), hi1 = vzip2q_f64(c.v, d.v);
        double* q = acc + 4 * idx[1];
        vst1q_f64(q, vaddq_f64(vld1q_f64(q), hi0));
        vst1q_f64(q + 2, vaddq_f64(vld1q_f64(q + 2), hi1));
    }
}

#else  // scalar: one lane
constexpr int kWidth = 1;
constexpr const char* kName = "scalar";
struct Vd {
    double v;
};
struct Md {
    bool m;
};
inline Vd zero() { return {0.0}; }
inline Vd set1(double x) { return {x}; }
inline Vd load(const double* p) { return {*p}; }
inline void store(double* p, Vd a) { *p = a.v; }
inline Md tail(int64_t left) { return {left > 0}; }
inline Vd load_tail(Md m, const double* p) { return {m.m ? *p : 0.0}; }
inline void store_tail(double* p, Md m, Vd a) {
    if (m.m) *p = a.v;
}
inline Vd operator+(Vd a, Vd b) { return {a.v + b.v}; }
inline Vd operator-(Vd a, Vd b) { return {a.v - b.v}; }
inline Vd operator*(Vd a, Vd b) { return {a.v * b.v}; }
inline Vd operator/(Vd a, Vd b) { return {a.v / b.v}; }
inline Vd fma(Vd a, Vd b, Vd c) { return {a.v * b.v + c.v}; }  // no hardware FMA assumed
inline Vd fms(Vd a, Vd b, Vd c) { return {a.v * b.v - c.v}; }
inline Vd fnma(Vd a, Vd b, Vd c) { return {c.v - a.v * b.v}; }
inline Vd min(Vd a, Vd b) { return {a.v < b.v ? a.v : b.v}; }
inline Vd max(Vd a, Vd b) { return {a.v > b.v ? a.v : b.v}; }
inline Vd sqrt(Vd a) { return {std::sqrt(a.v)}; }
inline Vd round_nearest(Vd a) { return {std::nearbyint(a.v)}; }
inline Md lt(Vd a, Vd b) { return {a.v < b.v}; }
inline Md operator&(Md a, Md b) { return {a.m && b.m}; }
inline Vd zero_unless(Md m, Vd a) { return {m.m ? a.v : 0.0}; }
inline unsigned bits(Md m) { return m.m ? 1u : 0u; }
inline double reduce_add(Vd a) { return a.v; }
inline Vd scale_pow2(Vd p, Vd n) { return {std::ldexp(p.v, int(n.v))}; }
inline Vd inv_sqrt(Vd x) { return {1.0 / std::sqrt(x.v)}; }
struct Packer {  // one lane: stored whether kept or not; count() says whether it stays
    explicit Packer(Md) {}
    void store(double* out, Vd a) const { *out = a.v; }
    void store_index(int64_t* out, int64_t first) const { *out = first; }
};
inline Vd gather(const double* base, const int64_t* idx, int) { return {base[idx[0]]}; }
inline void transpose_add4(Vd a, Vd b, Vd c, Vd d, const int64_t* idx, int lanes, double* acc) {
    if (lanes < 1) return;
    double* p = acc + 4 * idx[0];
    p[0] += a.v, p[1] += b.v, p[2] += c.v, p[3] += d.v;
}
#endif

/// How many lanes `m` keeps.
inline int count(Md m) {
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_popcount(bits(m));
#else
    unsigned b = bits(m);
    int n = 0;
    for (; b; b &= b - 1) ++n;
    return n;
#endif
}

}  // namespace simd
ALIP_KERNEL_END
