// The arithmetic and the per-lane work of the ACSF kernels, as host+device functions.
// acsf.cu wraps them in kernels (one warp per center, lane = threadIdx.x % 32, warp
// reductions); cuda/host_emulation.cpp runs the very same functions lane by lane on
// the CPU, which is how the kernels' arithmetic, index mappings and loop bounds are
// tested on machines without a GPU (tests/core/test_cuda_emulator.py).
//
// Plain C++17 when not compiled by nvcc (ALIP_HD expands to `inline`).
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define ALIP_HD __host__ __device__ __forceinline__
#else
#define ALIP_HD inline
#endif

namespace alip {
namespace cuda {
namespace acsf_math {

constexpr int kWarp = 32;
constexpr double kPi = 3.14159265358979323846;

struct AngularItem {
    double zeta, lambda, prefactor;  ///< prefactor = 2^(1 - zeta)
    int32_t izeta;                   ///< zeta when a small integer (<= 64), else -1
    int32_t feature;                 ///< offset in the species-pair block (G4: k, G5: n_g4 + k)
};

/// The functions sharing a radial factor. One window (lo == hi): both legs' window
/// exp(-eta (r - rs)^2), rs = lo (0: DScribe's G4/G5). Two windows (G5 only, lo < hi):
/// E = 1/2 (a1 b2 + b1 a2) with a = exp(-eta (r - lo)^2), b = exp(-eta (r - hi)^2), and
/// dE/dr1 = -2 eta (r1 - rs) E + 2 eta half_gap A, dE/dr2 = -2 eta (r2 - rs) E - 2 eta half_gap A,
/// A = 1/2 (a1 b2 - b1 a2), rs = (lo + hi) / 2, half_gap = (lo - hi) / 2.
struct EtaGroup {
    double eta;
    double rs;           ///< the windows' centre (lo + hi) / 2: the shift itself for one window
    double half_gap;     ///< (lo - hi) / 2 (0: one window)
    double lo, hi;       ///< the two windows, lo <= hi (both rs for one window)
    int32_t two;         ///< 1: two windows (lo < hi)
    int32_t begin, end;  ///< items of this (eta, lo, hi)
};

/// The descriptor spec, grouped by (eta, lo, hi) so that an exponential is computed once
/// per distinct radial factor and triplet (two for two windows). Pointers are device
/// pointers in kernels, host pointers in the emulation.
struct Tables {
    int32_t ns = 1, ng2 = 0, n_g4 = 0, n_g5 = 0, n_ang = 0, n_radial = 0;
    int64_t F = 0;
    int32_t polynomial = 0;
    double rc = 0;
    const double* g2 = nullptr;  ///< (ng2, 2): eta, rs
    const EtaGroup* groups4 = nullptr;
    const EtaGroup* groups5 = nullptr;
    int32_t n_groups4 = 0, n_groups5 = 0;
    int32_t two_windows5 = 0;  ///< whether any G5 group has two windows
    const AngularItem* items = nullptr;
    const int32_t* pair_index = nullptr;  ///< (ns, ns) -> unordered pair index
};

/// A neighbor list as the kernels read it (see NeighborList::Impl).
struct ListView {
    const int64_t* center_offset;
    const int32_t* seg;
    const int32_t* neighbor;
    const double* vector;
    const int32_t* structure;
    int64_t n_atoms;
};

/// Per-pair quantities of one call, in the compute type.
template <class T>
struct PairData {
    T *r, *fc, *dfc;
    T *dx, *dy, *dz;  ///< JVP only: the pair's tangent u_j - u_i + v U
};

// ---- math --------------------------------------------------------------------------
ALIP_HD double m_exp(double x) { return ::exp(x); }
ALIP_HD float m_exp(float x) { return ::expf(x); }
ALIP_HD double m_sqrt(double x) { return ::sqrt(x); }
ALIP_HD float m_sqrt(float x) { return ::sqrtf(x); }
ALIP_HD double m_pow(double x, double y) { return ::pow(x, y); }
ALIP_HD float m_pow(float x, float y) { return ::powf(x, y); }
ALIP_HD void m_sincos(double x, double* s, double* c) {
#if defined(__CUDA_ARCH__)
    ::sincos(x, s, c);
#else
    *s = std::sin(x), *c = std::cos(x);
#endif
}
ALIP_HD void m_sincos(float x, float* s, float* c) {
#if defined(__CUDA_ARCH__)
    ::sincosf(x, s, c);
#else
    *s = std::sin(x), *c = std::cos(x);
#endif
}
template <class T>
ALIP_HD T m_max(T a, T b) {
    return a > b ? a : b;
}
template <class T>
ALIP_HD T m_min(T a, T b) {
    return a < b ? a : b;
}

/// f_c(r) and its derivative (cosine or polynomial), zero at and beyond rc.
template <class T>
ALIP_HD void cutoff_fn(int polynomial, T rc, T r, T& f, T& df) {
    if (!(r < rc)) {
        f = T(0), df = T(0);
        return;
    }
    if (!polynomial) {
        const T a = T(kPi) / rc;
        T s, c;
        m_sincos(a * r, &s, &c);
        f = T(0.5) * (c + T(1));
        df = T(-0.5) * a * s;
    } else {
        const T x = r / rc, x2 = x * x;
        f = T(1) + x2 * x * (T(-10) + x * (T(15) - T(6) * x));
        df = x2 * (T(-30) + x * (T(60) - T(30) * x)) / rc;
    }
}

template <class T>
ALIP_HD T powi(T b, int n) {
    T result = T(1);
    while (n > 0) {
        if (n & 1) result *= b;
        b *= b;
        n >>= 1;
    }
    return result;
}

/// P = (1 + lambda cos)^zeta (base clipped at 0, as on the CPU) and dP/dcos.
template <class T>
ALIP_HD void angular_power(const AngularItem& it, T cosv, T& P, T& dP) {
    const T lam = T(it.lambda), zeta = T(it.zeta);
    const T b = m_max(T(0), T(1) + lam * cosv);
    T q;
    if (it.izeta >= 1) q = powi(b, it.izeta - 1);
    else q = b > T(0) ? m_pow(b, zeta - T(1)) : (zeta == T(1) ? T(1) : T(0));
    P = q * b;
    dP = zeta * lam * q;
}

/// Maps a flat index t to (a, b) with 0 <= a < b < K (row-major upper triangle).
ALIP_HD void triangle_index(int64_t t, int64_t K, int64_t& a, int64_t& b) {
    const double k2 = double(2 * K - 1);
    const double disc = k2 * k2 - 8.0 * double(t);
    int64_t r = int64_t((k2 - ::sqrt(disc > 0 ? disc : 0.0)) * 0.5);
    if (r < 0) r = 0;
    while (r > 0 && r * (2 * K - r - 1) / 2 > t) --r;
    while ((r + 1) * (2 * K - r - 2) / 2 <= t) ++r;
    a = r;
    b = r + 1 + (t - r * (2 * K - r - 1) / 2);
}

// ---- per-pair data -------------------------------------------------------------------
/// r, f_c, f_c' of the pairs of center i taken by `lane`, and for the JVP the pair
/// tangents u_j - u_i + v U (U: strain of the structure of i).
template <class T>
ALIP_HD void pair_lane(const Tables& tab, const ListView& L, const PairData<T>& P, int64_t i, int lane,
                       const T* displacement, const T* strain, bool tangent) {
    const int64_t first = L.center_offset[i], last = L.center_offset[i + 1];
    T ui[3] = {T(0), T(0), T(0)};
    if (tangent && displacement)
        for (int c = 0; c < 3; ++c) ui[c] = displacement[3 * i + c];
    const T* U = (tangent && strain) ? strain + 9 * int64_t(L.structure[i]) : nullptr;
    for (int64_t p = first + lane; p < last; p += kWarp) {
        const T v[3] = {T(L.vector[3 * p]), T(L.vector[3 * p + 1]), T(L.vector[3 * p + 2])};
        const T r = m_sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
        T f, df;
        cutoff_fn(tab.polynomial, T(tab.rc), r, f, df);
        P.r[p] = r;
        P.fc[p] = f;
        P.dfc[p] = df;
        if (tangent) {
            T d[3] = {T(0), T(0), T(0)};
            if (displacement) {
                const int64_t j = L.neighbor[p];
                for (int c = 0; c < 3; ++c) d[c] = displacement[3 * j + c] - ui[c];
            }
            if (U)
                for (int b = 0; b < 3; ++b) d[b] += v[0] * U[b] + v[1] * U[3 + b] + v[2] * U[6 + b];
            P.dx[p] = d[0];
            P.dy[p] = d[1];
            P.dz[p] = d[2];
        }
    }
}

// ---- values and JVP: lanes accumulate their own column ---------------------------------
/// G2 of neighbor species s, the pairs taken by `lane`: col[k * stride] += term k.
/// kJvp: directional derivative along the pair tangents instead of the value.
template <class T, bool kJvp>
ALIP_HD void g2_lane(const Tables& tab, const ListView& L, const PairData<T>& P, int64_t i, int32_t s, int lane,
                     T* col, int stride) {
    const int64_t first = L.center_offset[i];
    const int32_t* seg = L.seg + i * (tab.ns + 1);
    for (int64_t p = first + seg[s] + lane; p < first + seg[s + 1]; p += kWarp) {
        const T r = P.r[p], fc = P.fc[p];
        T dfc_r = T(0), fc_r = T(0), dot = T(0);
        if (kJvp) {
            const T inv_r = T(1) / r;
            dfc_r = P.dfc[p] * inv_r;
            fc_r = fc * inv_r;
            dot = T(L.vector[3 * p]) * P.dx[p] + T(L.vector[3 * p + 1]) * P.dy[p] + T(L.vector[3 * p + 2]) * P.dz[p];
        }
        for (int32_t k = 0; k < tab.ng2; ++k) {
            const T eta = T(tab.g2[2 * k]), dr = r - T(tab.g2[2 * k + 1]);
            const T e = m_exp(-eta * dr * dr);
            col[k * stride] += kJvp ? e * (dfc_r - T(2) * eta * dr * fc_r) * dot : e * fc;
        }
    }
}

/// The legs of a triplet in the exponent, sum (r - rs)^2 over r1, r2 (and r12 for G4):
/// rs = 0 takes the sum of squares as the kernels had it; a shift takes the squares of the
/// differences (expanding them would cancel in float32).
template <class T>
struct Legs {
    T rsum, r1, r2, r12;  ///< sum r^2, the legs; r12 < 0: no third leg (G5)
    ALIP_HD T exponent(T rs) const {
        if (rs == T(0)) return rsum;
        const T a = r1 - rs, b = r2 - rs, c = r12 - rs;
        return a * a + b * b + (r12 < T(0) ? T(0) : c * c);
    }
};

/// The radial factor E of a group for the legs of a triplet (G5 legs when grp.two) and, for
/// two windows, its antisymmetric part A (0 for one window).
template <class T>
ALIP_HD T radial_factor(const EtaGroup& grp, T eta, const Legs<T>& legs, T& A) {
    if (!grp.two) {
        A = T(0);
        return m_exp(-eta * legs.exponent(T(grp.rs)));
    }
    const T lo = T(grp.lo), hi = T(grp.hi);
    const T p1 = legs.r1 - lo, q2 = legs.r2 - hi, q1 = legs.r1 - hi, p2 = legs.r2 - lo;
    const T e1 = m_exp(-eta * (p1 * p1 + q2 * q2)), e2 = m_exp(-eta * (q1 * q1 + p2 * p2));  // a1 b2, b1 a2
    A = T(0.5) * (e1 - e2);
    return T(0.5) * (e1 + e2);
}

/// One family's (G4 or G5) terms of one triplet. kJvp: Dc = dcos, DF = dFc, Dr = the
/// derivative of the sum of squared distances in the exponent along the tangents and Ds
/// that of the sum of the distances times 2 (a shift rs makes it Dr - rs Ds); Dd = 2 (dr1 -
/// dr2) (G5; two windows add eta half_gap A Dd to dE = -eta E (Dr - rs Ds)).
template <class T, bool kJvp>
ALIP_HD void angular_terms(const Tables& tab, const EtaGroup* groups, int32_t n_groups, T cosv, const Legs<T>& legs,
                           T Fc, T Dc, T DF, T Dr, T Ds, T Dd, T* col, int stride) {
    for (int32_t g = 0; g < n_groups; ++g) {
        const EtaGroup grp = groups[g];
        const T eta = T(grp.eta), rs = T(grp.rs);
        T A;
        const T E = radial_factor(grp, eta, legs, A);
        const T Drs = Dr - rs * Ds;
        const T Dgap = kJvp && grp.two ? eta * T(grp.half_gap) * A * Dd : T(0);
        for (int32_t q = grp.begin; q < grp.end; ++q) {
            const AngularItem it = tab.items[q];
            T P, dP;
            angular_power(it, cosv, P, dP);
            T c;
            if (kJvp) {
                c = T(it.prefactor) * E * (dP * Fc * Dc + P * DF - eta * P * Fc * Drs);
                if (grp.two) c += T(it.prefactor) * P * Fc * Dgap;
            } else {
                c = T(it.prefactor) * E * P * Fc;
            }
            col[it.feature * stride] += c;
        }
    }
}

/// G4/G5 of the species pair (s1 <= s2): the triplets t = lane, lane + 32, ... of the
/// block in flat order (upper triangle when s1 == s2, rectangle otherwise).
template <class T, bool kJvp>
ALIP_HD void angular_lane(const Tables& tab, const ListView& L, const PairData<T>& P, int64_t i, int32_t s1,
                          int32_t s2, int lane, T* col, int stride) {
    const int64_t first = L.center_offset[i];
    const int32_t* seg = L.seg + i * (tab.ns + 1);
    const int64_t lo1 = first + seg[s1], lo2 = first + seg[s2];
    const int64_t K1 = seg[s1 + 1] - seg[s1], K2 = seg[s2 + 1] - seg[s2];
    const bool same = s1 == s2;
    const int64_t count = same ? K1 * (K1 - 1) / 2 : K1 * K2;
    const T rc = T(tab.rc);
    for (int64_t t = lane; t < count; t += kWarp) {
        int64_t a, b;
        if (same) triangle_index(t, K1, a, b);
        else a = t / K2, b = t % K2;
        const int64_t n1 = lo1 + a, n2 = lo2 + b;
        const T x1 = T(L.vector[3 * n1]), y1 = T(L.vector[3 * n1 + 1]), z1 = T(L.vector[3 * n1 + 2]);
        const T x2 = T(L.vector[3 * n2]), y2 = T(L.vector[3 * n2 + 1]), z2 = T(L.vector[3 * n2 + 2]);
        const T r1 = P.r[n1], r2 = P.r[n2], fc1 = P.fc[n1], fc2 = P.fc[n2];
        const T inv1 = T(1) / r1, inv2 = T(1) / r2;
        const T cosv = m_min(T(1), m_max(T(-1), (x1 * x2 + y1 * y2 + z1 * z2) * inv1 * inv2));
        const T rsum5 = r1 * r1 + r2 * r2;
        const Legs<T> legs5{rsum5, r1, r2, T(-1)};
        T d11 = T(0), d12 = T(0), d22 = T(0), Dc = T(0), dfc1 = T(0), dfc2 = T(0);
        if (kJvp) {
            const T u1x = P.dx[n1], u1y = P.dy[n1], u1z = P.dz[n1];
            const T u2x = P.dx[n2], u2y = P.dy[n2], u2z = P.dz[n2];
            d11 = x1 * u1x + y1 * u1y + z1 * u1z;
            d22 = x2 * u2x + y2 * u2y + z2 * u2z;
            d12 = x2 * u1x + y2 * u1y + z2 * u1z + x1 * u2x + y1 * u2y + z1 * u2z;
            Dc = d12 * inv1 * inv2 - cosv * (d11 * inv1 * inv1 + d22 * inv2 * inv2);
            dfc1 = P.dfc[n1];
            dfc2 = P.dfc[n2];
        }
        if (tab.n_g4 > 0) {
            const T ddx = x2 - x1, ddy = y2 - y1, ddz = z2 - z1;
            const T r12sq = ddx * ddx + ddy * ddy + ddz * ddz;
            if (r12sq < rc * rc) {  // the third side inside the cutoff (else f_c(r12) = 0)
                const T r12 = m_sqrt(r12sq);
                T fc12, dfc12;
                cutoff_fn(tab.polynomial, rc, r12, fc12, dfc12);
                const T Fc = fc1 * fc2 * fc12;
                T DF = T(0), Dr = T(0), Ds = T(0);
                if (kJvp) {
                    const T d12c = fc1 * fc2 * dfc12 / r12;
                    const T dF1 = dfc1 * fc2 * fc12 * inv1 + d12c;
                    const T dF2 = fc1 * dfc2 * fc12 * inv2 + d12c;
                    DF = dF1 * d11 - d12c * d12 + dF2 * d22;
                    Dr = T(4) * d11 - T(2) * d12 + T(4) * d22;
                    Ds = T(2) * (d11 * inv1 + d22 * inv2 + (d11 + d22 - d12) / r12);
                }
                const Legs<T> legs4{rsum5 + r12sq, r1, r2, r12};
                angular_terms<T, kJvp>(tab, tab.groups4, tab.n_groups4, cosv, legs4, Fc, Dc, DF, Dr, Ds, T(0), col,
                                       stride);
            }
        }
        if (tab.n_g5 > 0) {
            const T Fc = fc1 * fc2;
            T DF = T(0), Dr = T(0), Ds = T(0), Dd = T(0);
            if (kJvp) {
                DF = dfc1 * fc2 * inv1 * d11 + fc1 * dfc2 * inv2 * d22;
                Dr = T(2) * d11 + T(2) * d22;
                Ds = T(2) * (d11 * inv1 + d22 * inv2);
                if (tab.two_windows5) Dd = T(2) * (d11 * inv1 - d22 * inv2);
            }
            angular_terms<T, kJvp>(tab, tab.groups5, tab.n_groups5, cosv, legs5, Fc, Dc, DF, Dr, Ds, Dd, col, stride);
        }
    }
}

// ---- fused VJP ---------------------------------------------------------------------
/// dE/dv_p = coef_p v_p + e_p is accumulated in acc4[4 p .. 4 p + 3] = (coef, ex, ey, ez).

/// G2 of neighbor species s: the lane's own pairs.
template <class T>
ALIP_HD void g2_vjp_lane(const Tables& tab, const ListView& L, const PairData<T>& P, const T* w, int64_t i,
                         int32_t s, int lane, T* acc4) {
    const int64_t first = L.center_offset[i];
    const int32_t* seg = L.seg + i * (tab.ns + 1);
    const T* ws = w + int64_t(s) * tab.ng2;
    for (int64_t p = first + seg[s] + lane; p < first + seg[s + 1]; p += kWarp) {
        const T r = P.r[p], fc = P.fc[p], dfc = P.dfc[p];
        T c = T(0);
        for (int32_t k = 0; k < tab.ng2; ++k) {
            const T eta = T(tab.g2[2 * k]), dr = r - T(tab.g2[2 * k + 1]);
            c += ws[k] * m_exp(-eta * dr * dr) * (dfc - T(2) * eta * dr * fc);
        }
        acc4[4 * p] += c / r;
    }
}

/// Sums over one family's parameters of w_f * prefactor * E * (dP, P, eta P, eta rs P) and,
/// for two windows, of w_f * prefactor * eta half_gap A P (H3).
template <class T>
ALIP_HD void vjp_sums(const Tables& tab, const EtaGroup* groups, int32_t n_groups, const T* w, T cosv,
                      const Legs<T>& legs, T& U, T& V, T& H, T& H2, T& H3) {
    for (int32_t g = 0; g < n_groups; ++g) {
        const EtaGroup grp = groups[g];
        const T eta = T(grp.eta), rs = T(grp.rs);
        T u = T(0), v = T(0);
        for (int32_t q = grp.begin; q < grp.end; ++q) {
            const AngularItem it = tab.items[q];
            const T wp = w[it.feature] * T(it.prefactor);
            if (wp == T(0)) continue;
            T P, dP;
            angular_power(it, cosv, P, dP);
            u += wp * dP;
            v += wp * P;
        }
        if (u == T(0) && v == T(0)) continue;
        T A;
        const T E = radial_factor(grp, eta, legs, A);
        U += E * u;
        V += E * v;
        H += eta * E * v;
        H2 += eta * rs * E * v;
        if (grp.two) H3 += eta * T(grp.half_gap) * A * v;
    }
}

/// Row a (first neighbor n1, uniform over the warp) of the species pair (s1 <= s2): the
/// lane takes the second neighbors b = start + lane, + 32, ...; writes their dE/dv to
/// acc4 (each n2 belongs to one lane in a row) and returns the lane's part of n1's in
/// out[0..3] (to be summed over the warp).
template <class T>
ALIP_HD void vjp_row_lane(const Tables& tab, const ListView& L, const PairData<T>& P, const T* w, int64_t i,
                          int32_t s1, int32_t s2, int64_t a, int lane, T* acc4, T out[4]) {
    const int64_t first = L.center_offset[i];
    const int32_t* seg = L.seg + i * (tab.ns + 1);
    const T* wb = w + tab.n_radial + int64_t(tab.pair_index[s1 * tab.ns + s2]) * tab.n_ang;
    const int64_t lo1 = first + seg[s1], lo2 = first + seg[s2];
    const int64_t K2 = seg[s2 + 1] - seg[s2];
    const bool same = s1 == s2;
    const T rc = T(tab.rc);
    const int64_t n1 = lo1 + a;
    const T x1 = T(L.vector[3 * n1]), y1 = T(L.vector[3 * n1 + 1]), z1 = T(L.vector[3 * n1 + 2]);
    const T r1 = P.r[n1], fc1 = P.fc[n1], dfc1 = P.dfc[n1], inv1 = T(1) / r1;
    T c1 = T(0), e1x = T(0), e1y = T(0), e1z = T(0);
    for (int64_t b = (same ? a + 1 : 0) + lane; b < K2; b += kWarp) {
        const int64_t n2 = lo2 + b;
        const T x2 = T(L.vector[3 * n2]), y2 = T(L.vector[3 * n2 + 1]), z2 = T(L.vector[3 * n2 + 2]);
        const T r2 = P.r[n2], fc2 = P.fc[n2], dfc2 = P.dfc[n2], inv2 = T(1) / r2;
        const T cosv = m_min(T(1), m_max(T(-1), (x1 * x2 + y1 * y2 + z1 * z2) * inv1 * inv2));
        const T rsum5 = r1 * r1 + r2 * r2;
        T sa1 = T(0), sb = T(0), sa2 = T(0);
        // a shift adds + 2 eta rs / r per leg to each -2 eta of the unshifted derivative (H2 = sum eta rs E V,
        // rs the windows' centre); two windows add +- 2 eta half_gap A / r (H3 = sum eta half_gap A V)
        if (tab.n_g4 > 0) {
            const T ddx = x2 - x1, ddy = y2 - y1, ddz = z2 - z1;
            const T r12sq = ddx * ddx + ddy * ddy + ddz * ddz;
            if (r12sq < rc * rc) {
                const T r12 = m_sqrt(r12sq);
                T fc12, dfc12;
                cutoff_fn(tab.polynomial, rc, r12, fc12, dfc12);
                const T Fc = fc1 * fc2 * fc12;
                const T d12c = fc1 * fc2 * dfc12 / r12;
                const T dF1 = dfc1 * fc2 * fc12 * inv1 + d12c;
                const T dF2 = fc1 * dfc2 * fc12 * inv2 + d12c;
                T U = T(0), V = T(0), H = T(0), H2 = T(0), H3 = T(0);  // H3 stays 0 (G4: one window)
                const T inv12 = T(1) / r12;
                vjp_sums(tab, tab.groups4, tab.n_groups4, wb, cosv, Legs<T>{rsum5 + r12sq, r1, r2, r12}, U, V, H, H2,
                         H3);
                sa1 += -Fc * cosv * inv1 * inv1 * U + V * dF1 - T(4) * Fc * H + T(2) * Fc * H2 * (inv1 + inv12);
                sb += Fc * inv1 * inv2 * U + T(2) * Fc * H - V * d12c - T(2) * Fc * H2 * inv12;
                sa2 += -Fc * cosv * inv2 * inv2 * U + V * dF2 - T(4) * Fc * H + T(2) * Fc * H2 * (inv2 + inv12);
            }
        }
        if (tab.n_g5 > 0) {
            const T Fc = fc1 * fc2;
            T U = T(0), V = T(0), H = T(0), H2 = T(0), H3 = T(0);
            vjp_sums(tab, tab.groups5, tab.n_groups5, wb, cosv, Legs<T>{rsum5, r1, r2, T(-1)}, U, V, H, H2, H3);
            sa1 += -Fc * cosv * inv1 * inv1 * U + V * dfc1 * fc2 * inv1 - T(2) * Fc * H + T(2) * Fc * H2 * inv1;
            sb += Fc * inv1 * inv2 * U;
            sa2 += -Fc * cosv * inv2 * inv2 * U + V * fc1 * dfc2 * inv2 - T(2) * Fc * H + T(2) * Fc * H2 * inv2;
            if (tab.two_windows5) {  // two windows: + 2 eta half_gap A / r1 on leg 1, - ... / r2 on leg 2
                sa1 += T(2) * Fc * H3 * inv1;
                sa2 -= T(2) * Fc * H3 * inv2;
            }
        }
        c1 += sa1;
        e1x += sb * x2;
        e1y += sb * y2;
        e1z += sb * z2;
        T* a2 = acc4 + 4 * n2;
        a2[0] += sa2;
        a2[1] += sb * x1;
        a2[2] += sb * y1;
        a2[3] += sb * z1;
    }
    out[0] = c1, out[1] = e1x, out[2] = e1y, out[3] = e1z;
}

/// Forces and virial from dE/dv of the lane's pairs of center i: add_force(j, c, -g_c)
/// for each neighbor, and the lane's parts of F_i (fi) and of the virial
/// W -= v (x) g (vir), to be summed over the warp.
template <class T, class AddForce>
ALIP_HD void assemble_lane(const ListView& L, const T* acc4, int64_t i, int lane, AddForce&& add_force, T fi[3],
                           T vir[9]) {
    for (int c = 0; c < 3; ++c) fi[c] = T(0);
    for (int q = 0; q < 9; ++q) vir[q] = T(0);
    for (int64_t p = L.center_offset[i] + lane; p < L.center_offset[i + 1]; p += kWarp) {
        const T v[3] = {T(L.vector[3 * p]), T(L.vector[3 * p + 1]), T(L.vector[3 * p + 2])};
        const T* a = acc4 + 4 * p;
        const T g[3] = {a[0] * v[0] + a[1], a[0] * v[1] + a[2], a[0] * v[2] + a[3]};
        const int64_t j = L.neighbor[p];
        for (int c = 0; c < 3; ++c) {
            add_force(j, c, -g[c]);
            fi[c] += g[c];
        }
        for (int x = 0; x < 3; ++x)
            for (int y = 0; y < 3; ++y) vir[3 * x + y] -= v[x] * g[y];
    }
}

}  // namespace acsf_math
}  // namespace cuda
}  // namespace alip
