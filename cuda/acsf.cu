// ACSF kernels on the GPU: values, fused VJP (forces and virial from dE/dG) and JVP
// (the backward of forces/virial with respect to dE/dG, for training on forces), with
// the conventions and feature order of cpp/acsf.hpp.
//
// Work decomposition: one warp per center atom (grid-stride over centers).
// - values / JVP: the warp's lanes take the triplets (n1 < n2) of one species-pair block
//   in a flat order, so every lane adds to the same features; each lane accumulates
//   its own column of a per-warp shared-memory table (features x 32 lanes), reduced
//   once per block. Species blocks follow the neighbor list's grouping by species.
// - VJP: the first neighbor n1 of a triplet is uniform across the warp and lanes take
//   the second one; dE/dv of n1 is reduced over the warp once per n1, dE/dv of n2 goes
//   to the lane's own slot of a per-pair buffer. Then lanes take the pairs: forces by
//   atomics on the neighbor (and one per center), the virial per center, reduced per
//   structure in a second kernel.
#include <algorithm>
#include <cmath>
#include <sstream>
#include <vector>

#include "common.cuh"

namespace alip {
namespace cuda {

// Named (not anonymous) so that AcsfKernels::Impl may hold these types without
// -Wsubobject-linkage warnings; nothing outside this file uses them.
namespace acsf_kernels {

using detail::Buffer;

constexpr int kWarp = 32;
constexpr int kAccStride = kWarp + 1;  ///< shared accumulator row (padded against bank conflicts)
constexpr double kPi = 3.14159265358979323846;

struct AngularItem {
    double zeta, lambda, prefactor;  ///< prefactor = 2^(1 - zeta)
    int32_t izeta;                   ///< zeta when a small integer (<= 64), else -1
    int32_t feature;                 ///< offset in the species-pair block (G4: k, G5: n_g4 + k)
};

struct EtaGroup {
    double eta;
    int32_t begin, end;  ///< items of this eta
};

/// Device view of the descriptor spec (tables grouped by eta so that an exponential
/// is computed once per distinct eta and triplet).
struct Tables {
    int32_t ns = 1, ng2 = 0, n_g4 = 0, n_g5 = 0, n_ang = 0, n_radial = 0;
    int64_t F = 0;
    int32_t polynomial = 0;
    double rc = 0;
    const double* g2 = nullptr;  ///< (ng2, 2): eta, rs
    const EtaGroup* groups4 = nullptr;
    const EtaGroup* groups5 = nullptr;
    int32_t n_groups4 = 0, n_groups5 = 0;
    const AngularItem* items = nullptr;
    const int32_t* pair_index = nullptr;  ///< (ns, ns)
};

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
    T *dx, *dy, *dz;  ///< JVP: the pair's tangent  u_j - u_i + v U
};

// ---- math helpers ------------------------------------------------------------------
__device__ inline double dexp(double x) { return exp(x); }
__device__ inline float dexp(float x) { return expf(x); }
__device__ inline double dsqrt(double x) { return sqrt(x); }
__device__ inline float dsqrt(float x) { return sqrtf(x); }
__device__ inline double dpow(double x, double y) { return pow(x, y); }
__device__ inline float dpow(float x, float y) { return powf(x, y); }
__device__ inline void dsincos(double x, double* s, double* c) { sincos(x, s, c); }
__device__ inline void dsincos(float x, float* s, float* c) { sincosf(x, s, c); }

template <class T>
__device__ inline void cutoff_fn(int polynomial, T rc, T r, T& f, T& df) {
    if (!(r < rc)) {
        f = T(0), df = T(0);
        return;
    }
    if (!polynomial) {
        const T a = T(kPi) / rc;
        T s, c;
        dsincos(a * r, &s, &c);
        f = T(0.5) * (c + T(1));
        df = T(-0.5) * a * s;
    } else {
        const T x = r / rc, x2 = x * x;
        f = T(1) + x2 * x * (T(-10) + x * (T(15) - T(6) * x));
        df = x2 * (T(-30) + x * (T(60) - T(30) * x)) / rc;
    }
}

template <class T>
__device__ inline T powi(T b, int n) {
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
__device__ inline void angular_power(const AngularItem& it, T cosv, T& P, T& dP) {
    const T lam = T(it.lambda), zeta = T(it.zeta);
    const T b = fmax(T(0), T(1) + lam * cosv);
    T q;
    if (it.izeta >= 1) q = powi(b, it.izeta - 1);
    else q = b > T(0) ? dpow(b, zeta - T(1)) : (zeta == T(1) ? T(1) : T(0));
    P = q * b;
    dP = zeta * lam * q;
}

template <class T>
__device__ inline T warp_sum(T x) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

/// Maps a flat index t to (a, b) with 0 <= a < b < K (row-major upper triangle).
__device__ inline void triangle_index(int64_t t, int64_t K, int64_t& a, int64_t& b) {
    const double k2 = double(2 * K - 1);
    int64_t r = int64_t((k2 - sqrt(k2 * k2 - 8.0 * double(t))) * 0.5);
    if (r < 0) r = 0;
    auto start = [K](int64_t row) { return row * (2 * K - row - 1) / 2; };
    while (r > 0 && start(r) > t) --r;
    while (start(r + 1) <= t) ++r;
    a = r;
    b = r + 1 + (t - start(r));
}

// ---- per-pair data -----------------------------------------------------------------
template <class T>
__global__ void pair_kernel(Tables tab, ListView L, PairData<T> P, const T* displacement, const T* strain,
                            bool tangent) {
    const int lane = threadIdx.x & (kWarp - 1);
    const int64_t warps = int64_t(gridDim.x) * (blockDim.x / kWarp);
    for (int64_t i = blockIdx.x * int64_t(blockDim.x / kWarp) + threadIdx.x / kWarp; i < L.n_atoms; i += warps) {
        const int64_t first = L.center_offset[i], last = L.center_offset[i + 1];
        T ui[3] = {T(0), T(0), T(0)};
        if (tangent && displacement)
            for (int c = 0; c < 3; ++c) ui[c] = displacement[3 * i + c];
        const T* U = (tangent && strain) ? strain + 9 * int64_t(L.structure[i]) : nullptr;
        for (int64_t p = first + lane; p < last; p += kWarp) {
            const T v[3] = {T(L.vector[3 * p]), T(L.vector[3 * p + 1]), T(L.vector[3 * p + 2])};
            const T r = dsqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
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
}

// ---- values and JVP ----------------------------------------------------------------
/// Adds the G4 (or G5) terms of one triplet to the lane's accumulator column.
/// kJvp: the directional derivative along the pair tangents (Dc = dcos, DF = dFc,
/// Dr = d(sum of squared distances in the exponent)).
template <class T, bool kJvp>
__device__ inline void angular_terms(const Tables& tab, const EtaGroup* groups, int32_t n_groups, T cosv, T rsum,
                                     T Fc, T Dc, T DF, T Dr, T* acc, int lane) {
    for (int32_t g = 0; g < n_groups; ++g) {
        const EtaGroup grp = groups[g];
        const T eta = T(grp.eta);
        const T E = dexp(-eta * rsum);
        for (int32_t q = grp.begin; q < grp.end; ++q) {
            const AngularItem it = tab.items[q];
            T P, dP;
            angular_power(it, cosv, P, dP);
            T c;
            if (kJvp) c = T(it.prefactor) * E * (dP * Fc * Dc + P * DF - eta * P * Fc * Dr);
            else c = T(it.prefactor) * E * P * Fc;
            acc[it.feature * kAccStride + lane] += c;
        }
    }
}

/// Writes the column sums of the first n rows of the warp's table to g[0..n) and clears it.
template <class T>
__device__ inline void flush(T* acc, int n, T* g, int lane) {
    __syncwarp();
    for (int k = lane; k < n; k += kWarp) {
        T s = T(0);
        for (int l = 0; l < kWarp; ++l) s += acc[k * kAccStride + l];
        g[k] = s;
    }
    __syncwarp();
    for (int k = 0; k < n; ++k) acc[k * kAccStride + lane] = T(0);
    __syncwarp();
}

template <class T, bool kJvp>
__global__ void forward_kernel(Tables tab, ListView L, PairData<T> P, T* out) {
    extern __shared__ unsigned char smem_raw[];
    const int lane = threadIdx.x & (kWarp - 1), warp = threadIdx.x / kWarp;
    const int n_acc = max(max(tab.ng2, tab.n_ang), 1);
    T* acc = reinterpret_cast<T*>(smem_raw) + size_t(warp) * n_acc * kAccStride;
    for (int k = 0; k < n_acc; ++k) acc[k * kAccStride + lane] = T(0);
    __syncwarp();
    const int32_t ns = tab.ns;
    const int64_t warps = int64_t(gridDim.x) * (blockDim.x / kWarp);
    for (int64_t i = blockIdx.x * int64_t(blockDim.x / kWarp) + warp; i < L.n_atoms; i += warps) {
        const int64_t first = L.center_offset[i];
        const int32_t* seg = L.seg + i * (ns + 1);
        T* g = out + i * tab.F;

        // G2, one block per neighbor species
        for (int32_t s = 0; s < ns && tab.ng2 > 0; ++s) {
            for (int64_t p = first + seg[s] + lane; p < first + seg[s + 1]; p += kWarp) {
                const T r = P.r[p], fc = P.fc[p];
                T dfc_r = T(0), fc_r = T(0), dot = T(0);
                if (kJvp) {
                    const T inv_r = T(1) / r;
                    dfc_r = P.dfc[p] * inv_r;
                    fc_r = fc * inv_r;
                    dot = T(L.vector[3 * p]) * P.dx[p] + T(L.vector[3 * p + 1]) * P.dy[p] +
                          T(L.vector[3 * p + 2]) * P.dz[p];
                }
                for (int32_t k = 0; k < tab.ng2; ++k) {
                    const T eta = T(tab.g2[2 * k]), dr = r - T(tab.g2[2 * k + 1]);
                    const T e = dexp(-eta * dr * dr);
                    acc[k * kAccStride + lane] += kJvp ? e * (dfc_r - T(2) * eta * dr * fc_r) * dot : e * fc;
                }
            }
            flush(acc, tab.ng2, g + int64_t(s) * tab.ng2, lane);
        }
        if (tab.n_ang == 0) continue;

        // G4 / G5, one block per unordered species pair
        for (int32_t s1 = 0; s1 < ns; ++s1) {
            for (int32_t s2 = s1; s2 < ns; ++s2) {
                const int64_t lo1 = first + seg[s1], lo2 = first + seg[s2];
                const int64_t K1 = seg[s1 + 1] - seg[s1], K2 = seg[s2 + 1] - seg[s2];
                const bool same = s1 == s2;
                const int64_t count = same ? K1 * (K1 - 1) / 2 : K1 * K2;
                for (int64_t t = lane; t < count; t += kWarp) {
                    int64_t a, b;
                    if (same) triangle_index(t, K1, a, b);
                    else a = t / K2, b = t % K2;
                    const int64_t n1 = lo1 + a, n2 = lo2 + b;
                    const T x1 = T(L.vector[3 * n1]), y1 = T(L.vector[3 * n1 + 1]), z1 = T(L.vector[3 * n1 + 2]);
                    const T x2 = T(L.vector[3 * n2]), y2 = T(L.vector[3 * n2 + 1]), z2 = T(L.vector[3 * n2 + 2]);
                    const T r1 = P.r[n1], r2 = P.r[n2], fc1 = P.fc[n1], fc2 = P.fc[n2];
                    const T inv1 = T(1) / r1, inv2 = T(1) / r2;
                    const T cosv = fmin(T(1), fmax(T(-1), (x1 * x2 + y1 * y2 + z1 * z2) * inv1 * inv2));
                    const T rsum5 = r1 * r1 + r2 * r2;
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
                    T* acc_pair = acc;
                    if (tab.n_g4 > 0) {
                        const T ddx = x2 - x1, ddy = y2 - y1, ddz = z2 - z1;
                        const T r12sq = ddx * ddx + ddy * ddy + ddz * ddz;
                        if (r12sq < T(tab.rc) * T(tab.rc)) {
                            const T r12 = dsqrt(r12sq);
                            T fc12, dfc12;
                            cutoff_fn(tab.polynomial, T(tab.rc), r12, fc12, dfc12);
                            const T Fc = fc1 * fc2 * fc12;
                            T DF = T(0), Dr = T(0);
                            if (kJvp) {
                                const T d12c = fc1 * fc2 * dfc12 / r12;
                                const T dF1 = dfc1 * fc2 * fc12 * inv1 + d12c;
                                const T dF2 = fc1 * dfc2 * fc12 * inv2 + d12c;
                                DF = dF1 * d11 - d12c * d12 + dF2 * d22;
                                Dr = T(4) * d11 - T(2) * d12 + T(4) * d22;
                            }
                            angular_terms<T, kJvp>(tab, tab.groups4, tab.n_groups4, cosv, rsum5 + r12sq, Fc, Dc, DF,
                                                   Dr, acc_pair, lane);
                        }
                    }
                    if (tab.n_g5 > 0) {
                        const T Fc = fc1 * fc2;
                        T DF = T(0), Dr = T(0);
                        if (kJvp) {
                            DF = dfc1 * fc2 * inv1 * d11 + fc1 * dfc2 * inv2 * d22;
                            Dr = T(2) * d11 + T(2) * d22;
                        }
                        angular_terms<T, kJvp>(tab, tab.groups5, tab.n_groups5, cosv, rsum5, Fc, Dc, DF, Dr,
                                               acc_pair, lane);
                    }
                }
                flush(acc, tab.n_ang, g + tab.n_radial + int64_t(tab.pair_index[s1 * ns + s2]) * tab.n_ang, lane);
            }
        }
    }
}

// ---- fused VJP -----------------------------------------------------------------------
/// Sums over one family's parameters of w_f * prefactor * E * (dP, P, eta P).
template <class T>
__device__ inline void vjp_sums(const Tables& tab, const EtaGroup* groups, int32_t n_groups, const T* w, T cosv,
                                T rsum, T& U, T& V, T& H) {
    for (int32_t g = 0; g < n_groups; ++g) {
        const EtaGroup grp = groups[g];
        const T eta = T(grp.eta);
        const T E = dexp(-eta * rsum);
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
        U += E * u;
        V += E * v;
        H += eta * E * v;
    }
}

/// acc4 (n_pairs, 4) receives dE/dv_p = coef_p v_p + (ex, ey, ez)_p, then forces and the
/// per-atom virial are assembled.
template <class T>
__global__ void vjp_kernel(Tables tab, ListView L, PairData<T> P, const T* dE_dG, T* acc4, T* forces,
                           T* virial_atom) {
    const int lane = threadIdx.x & (kWarp - 1);
    const int32_t ns = tab.ns;
    const int64_t warps = int64_t(gridDim.x) * (blockDim.x / kWarp);
    for (int64_t i = blockIdx.x * int64_t(blockDim.x / kWarp) + threadIdx.x / kWarp; i < L.n_atoms; i += warps) {
        const int64_t first = L.center_offset[i], last = L.center_offset[i + 1];
        const int32_t* seg = L.seg + i * (ns + 1);
        const T* w = dE_dG + i * tab.F;

        // G2: lanes own pairs
        for (int32_t s = 0; s < ns && tab.ng2 > 0; ++s) {
            const T* ws = w + int64_t(s) * tab.ng2;
            for (int64_t p = first + seg[s] + lane; p < first + seg[s + 1]; p += kWarp) {
                const T r = P.r[p], fc = P.fc[p], dfc = P.dfc[p];
                T c = T(0);
                for (int32_t k = 0; k < tab.ng2; ++k) {
                    const T eta = T(tab.g2[2 * k]), dr = r - T(tab.g2[2 * k + 1]);
                    c += ws[k] * dexp(-eta * dr * dr) * (dfc - T(2) * eta * dr * fc);
                }
                acc4[4 * p] += c / r;
            }
        }
        __syncwarp();

        // G4 / G5: n1 uniform over the warp, lanes over n2
        for (int32_t s1 = 0; s1 < ns && tab.n_ang > 0; ++s1) {
            for (int32_t s2 = s1; s2 < ns; ++s2) {
                const T* wb = w + tab.n_radial + int64_t(tab.pair_index[s1 * ns + s2]) * tab.n_ang;
                const int64_t lo1 = first + seg[s1], lo2 = first + seg[s2];
                const int64_t K1 = seg[s1 + 1] - seg[s1], K2 = seg[s2 + 1] - seg[s2];
                const bool same = s1 == s2;
                for (int64_t a = 0; a < K1; ++a) {
                    const int64_t n1 = lo1 + a;
                    const T x1 = T(L.vector[3 * n1]), y1 = T(L.vector[3 * n1 + 1]), z1 = T(L.vector[3 * n1 + 2]);
                    const T r1 = P.r[n1], fc1 = P.fc[n1], dfc1 = P.dfc[n1], inv1 = T(1) / r1;
                    T c1 = T(0), e1x = T(0), e1y = T(0), e1z = T(0);
                    for (int64_t b = (same ? a + 1 : 0) + lane; b < K2; b += kWarp) {
                        const int64_t n2 = lo2 + b;
                        const T x2 = T(L.vector[3 * n2]), y2 = T(L.vector[3 * n2 + 1]), z2 = T(L.vector[3 * n2 + 2]);
                        const T r2 = P.r[n2], fc2 = P.fc[n2], dfc2 = P.dfc[n2], inv2 = T(1) / r2;
                        const T cosv = fmin(T(1), fmax(T(-1), (x1 * x2 + y1 * y2 + z1 * z2) * inv1 * inv2));
                        const T rsum5 = r1 * r1 + r2 * r2;
                        T sa1 = T(0), sb = T(0), sa2 = T(0);
                        if (tab.n_g4 > 0) {
                            const T ddx = x2 - x1, ddy = y2 - y1, ddz = z2 - z1;
                            const T r12sq = ddx * ddx + ddy * ddy + ddz * ddz;
                            if (r12sq < T(tab.rc) * T(tab.rc)) {
                                const T r12 = dsqrt(r12sq);
                                T fc12, dfc12;
                                cutoff_fn(tab.polynomial, T(tab.rc), r12, fc12, dfc12);
                                const T Fc = fc1 * fc2 * fc12;
                                const T d12c = fc1 * fc2 * dfc12 / r12;
                                const T dF1 = dfc1 * fc2 * fc12 * inv1 + d12c;
                                const T dF2 = fc1 * dfc2 * fc12 * inv2 + d12c;
                                T U = T(0), V = T(0), H = T(0);
                                vjp_sums(tab, tab.groups4, tab.n_groups4, wb, cosv, rsum5 + r12sq, U, V, H);
                                sa1 += -Fc * cosv * inv1 * inv1 * U + V * dF1 - T(4) * Fc * H;
                                sb += Fc * inv1 * inv2 * U + T(2) * Fc * H - V * d12c;
                                sa2 += -Fc * cosv * inv2 * inv2 * U + V * dF2 - T(4) * Fc * H;
                            }
                        }
                        if (tab.n_g5 > 0) {
                            const T Fc = fc1 * fc2;
                            T U = T(0), V = T(0), H = T(0);
                            vjp_sums(tab, tab.groups5, tab.n_groups5, wb, cosv, rsum5, U, V, H);
                            sa1 += -Fc * cosv * inv1 * inv1 * U + V * dfc1 * fc2 * inv1 - T(2) * Fc * H;
                            sb += Fc * inv1 * inv2 * U;
                            sa2 += -Fc * cosv * inv2 * inv2 * U + V * fc1 * dfc2 * inv2 - T(2) * Fc * H;
                        }
                        c1 += sa1;
                        e1x += sb * x2;
                        e1y += sb * y2;
                        e1z += sb * z2;
                        T* a2 = acc4 + 4 * n2;  // this lane's own n2 in this step
                        a2[0] += sa2;
                        a2[1] += sb * x1;
                        a2[2] += sb * y1;
                        a2[3] += sb * z1;
                    }
                    c1 = warp_sum(c1);
                    e1x = warp_sum(e1x);
                    e1y = warp_sum(e1y);
                    e1z = warp_sum(e1z);
                    if (lane == 0) {
                        T* a1 = acc4 + 4 * n1;
                        a1[0] += c1;
                        a1[1] += e1x;
                        a1[2] += e1y;
                        a1[3] += e1z;
                    }
                    __syncwarp();
                }
            }
        }
        __syncwarp();

        // forces and virial: F_j -= g_p, F_i += g_p, W -= v_p (x) g_p
        T fi[3] = {T(0), T(0), T(0)}, vir[9];
#pragma unroll
        for (int q = 0; q < 9; ++q) vir[q] = T(0);
        for (int64_t p = first + lane; p < last; p += kWarp) {
            const T v[3] = {T(L.vector[3 * p]), T(L.vector[3 * p + 1]), T(L.vector[3 * p + 2])};
            const T* a = acc4 + 4 * p;
            const T gv[3] = {a[0] * v[0] + a[1], a[0] * v[1] + a[2], a[0] * v[2] + a[3]};
            const int64_t j = L.neighbor[p];
#pragma unroll
            for (int c = 0; c < 3; ++c) {
                atomicAdd(forces + 3 * j + c, -gv[c]);
                fi[c] += gv[c];
            }
#pragma unroll
            for (int x = 0; x < 3; ++x)
#pragma unroll
                for (int y = 0; y < 3; ++y) vir[3 * x + y] -= v[x] * gv[y];
        }
#pragma unroll
        for (int c = 0; c < 3; ++c) fi[c] = warp_sum(fi[c]);
#pragma unroll
        for (int q = 0; q < 9; ++q) vir[q] = warp_sum(vir[q]);
        if (lane == 0) {
            for (int c = 0; c < 3; ++c) atomicAdd(forces + 3 * i + c, fi[c]);
            for (int q = 0; q < 9; ++q) virial_atom[9 * i + q] = vir[q];
        }
    }
}

/// virials[k] = sum of virial_atom over the atoms of structure k (one block per structure).
template <class T>
__global__ void reduce_virial_kernel(const T* virial_atom, const int64_t* offsets, int64_t n_structures, T* virials) {
    __shared__ T part[9][256];
    for (int64_t k = blockIdx.x; k < n_structures; k += gridDim.x) {
        T s[9];
        for (int q = 0; q < 9; ++q) s[q] = T(0);
        for (int64_t i = offsets[k] + threadIdx.x; i < offsets[k + 1]; i += blockDim.x)
            for (int q = 0; q < 9; ++q) s[q] += virial_atom[9 * i + q];
        for (int q = 0; q < 9; ++q) part[q][threadIdx.x] = s[q];
        __syncthreads();
        for (int width = blockDim.x / 2; width > 0; width /= 2) {
            if (int(threadIdx.x) < width)
                for (int q = 0; q < 9; ++q) part[q][threadIdx.x] += part[q][threadIdx.x + width];
            __syncthreads();
        }
        if (threadIdx.x < 9) virials[9 * k + threadIdx.x] = part[threadIdx.x][0];
        __syncthreads();
    }
}

}  // namespace acsf_kernels

using namespace acsf_kernels;

// ---- host side -------------------------------------------------------------------------
struct AcsfKernels::Impl {
    int device = 0;
    AcsfSpec spec;
    int64_t n_features = 0;
    int32_t n_radial = 0;
    Buffer<double> g2;
    Buffer<EtaGroup> groups;  // g4 groups, then g5 groups
    Buffer<AngularItem> items;
    Buffer<int32_t> pair_index;
    int32_t n_groups4 = 0, n_groups5 = 0;
    int max_shared = 48 * 1024;  ///< opt-in shared memory per block on the device

    Tables tables() const {
        Tables t;
        t.ns = spec.n_species;
        t.ng2 = int32_t(spec.g2.size());
        t.n_g4 = int32_t(spec.g4.size());
        t.n_g5 = int32_t(spec.g5.size());
        t.n_ang = t.n_g4 + t.n_g5;
        t.n_radial = n_radial;
        t.F = n_features;
        t.polynomial = spec.cutoff_function == CutoffFunction::Polynomial ? 1 : 0;
        t.rc = spec.cutoff;
        t.g2 = g2.get();
        t.groups4 = groups.get();
        t.groups5 = groups.get() + n_groups4;
        t.n_groups4 = n_groups4;
        t.n_groups5 = n_groups5;
        t.items = items.get();
        t.pair_index = pair_index.get();
        return t;
    }

    void check_list(const NeighborList& nl) const {
        if (nl.device() != device) {
            std::ostringstream msg;
            msg << "the neighbor list is on GPU " << nl.device() << ", the descriptor tables on GPU " << device;
            throw InvalidInput(msg.str());
        }
        if (nl.n_species() != spec.n_species) throw InvalidInput("the neighbor list was built for another species count");
        if (nl.cutoff() != spec.cutoff) throw InvalidInput("the neighbor list was built with another cutoff");
    }

    ListView view(const NeighborList& nl) const {
        const NeighborList::Impl& L = nl.impl();
        return ListView{L.center_offset.get(), L.seg.get(), L.neighbor.get(), L.vector.get(), L.structure.get(),
                        L.n_atoms};
    }
};

namespace {

/// Blocks of `warps` warps for one warp per center, at most a few waves of the device.
int center_grid(int64_t n_atoms, int warps) {
    int64_t blocks = (n_atoms + warps - 1) / warps;
    return int(std::max<int64_t>(1, std::min<int64_t>(blocks, int64_t(1) << 20)));
}

template <class T>
struct PairScratch {
    Buffer<T> r, fc, dfc, dx, dy, dz;
    PairScratch(int64_t n_pairs, bool tangent, cudaStream_t s)
        : r(size_t(n_pairs), s), fc(size_t(n_pairs), s), dfc(size_t(n_pairs), s) {
        if (tangent) {
            dx = Buffer<T>(size_t(n_pairs), s);
            dy = Buffer<T>(size_t(n_pairs), s);
            dz = Buffer<T>(size_t(n_pairs), s);
        }
    }
    PairData<T> data() const { return {r.get(), fc.get(), dfc.get(), dx.get(), dy.get(), dz.get()}; }
};

constexpr int kPairWarps = 8;
constexpr int kVjpWarps = 4;

template <class T>
void run_forward(const AcsfKernels::Impl& K, const NeighborList& nl, const T* displacement, const T* strain, T* out,
                 bool jvp, cudaStream_t stream) {
    const NeighborList::Impl& L = nl.impl();
    const Tables tab = K.tables();
    const ListView lv = K.view(nl);
    PairScratch<T> scratch(L.n_pairs, jvp, stream);
    const PairData<T> pd = scratch.data();
    pair_kernel<T><<<center_grid(L.n_atoms, kPairWarps), kPairWarps * kWarp, 0, stream>>>(tab, lv, pd, displacement,
                                                                                          strain, jvp);
    ALIP_CUDA_LAUNCH_CHECK();
    // shared accumulators: (warps, max(ng2, n_ang), 33) of T
    const int n_acc = std::max({tab.ng2, tab.n_ang, 1});
    const size_t per_warp = size_t(n_acc) * kAccStride * sizeof(T);
    int warps = 4;
    while (warps > 1 && size_t(warps) * per_warp > size_t(K.max_shared)) warps /= 2;
    const size_t bytes = size_t(warps) * per_warp;
    if (bytes > size_t(K.max_shared)) {
        std::ostringstream msg;
        msg << "too many symmetry functions for the GPU path: " << n_acc << " per block need " << bytes
            << " bytes of shared memory, the device allows " << K.max_shared;
        throw InvalidInput(msg.str());
    }
    auto kernel = jvp ? forward_kernel<T, true> : forward_kernel<T, false>;
    if (bytes > 48 * 1024)
        ALIP_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
    kernel<<<center_grid(L.n_atoms, warps), warps * kWarp, bytes, stream>>>(tab, lv, pd, out);
    ALIP_CUDA_LAUNCH_CHECK();
    L.record_use(stream);
}

template <class T>
void run_vjp(const AcsfKernels::Impl& K, const NeighborList& nl, const T* dE_dG, T* forces, T* virials,
             cudaStream_t stream) {
    const NeighborList::Impl& L = nl.impl();
    const Tables tab = K.tables();
    const ListView lv = K.view(nl);
    PairScratch<T> scratch(L.n_pairs, false, stream);
    const PairData<T> pd = scratch.data();
    Buffer<T> acc4(size_t(4 * L.n_pairs), stream), virial_atom(size_t(9 * L.n_atoms), stream);
    acc4.zero(stream);
    ALIP_CUDA_CHECK(cudaMemsetAsync(forces, 0, size_t(3 * L.n_atoms) * sizeof(T), stream));
    pair_kernel<T><<<center_grid(L.n_atoms, kPairWarps), kPairWarps * kWarp, 0, stream>>>(tab, lv, pd, nullptr,
                                                                                          nullptr, false);
    ALIP_CUDA_LAUNCH_CHECK();
    vjp_kernel<T><<<center_grid(L.n_atoms, kVjpWarps), kVjpWarps * kWarp, 0, stream>>>(tab, lv, pd, dE_dG,
                                                                                      acc4.get(), forces,
                                                                                      virial_atom.get());
    ALIP_CUDA_LAUNCH_CHECK();
    const int blocks = int(std::min<int64_t>(L.n_structures, 65535));
    reduce_virial_kernel<T><<<blocks, 256, 0, stream>>>(virial_atom.get(), L.atom_offsets.get(), L.n_structures,
                                                         virials);
    ALIP_CUDA_LAUNCH_CHECK();
    L.record_use(stream);
}

}  // namespace

AcsfKernels::AcsfKernels(const AcsfSpec& spec, int device) : impl_(std::make_unique<Impl>()) {
    const Acsf validated(spec);  // the CPU path's parameter checks (throws InvalidInput)
    Impl& K = *impl_;
    int count = 0;
    ALIP_CUDA_CHECK(cudaGetDeviceCount(&count));
    if (device < 0) ALIP_CUDA_CHECK(cudaGetDevice(&device));
    if (device >= count) {
        std::ostringstream msg;
        msg << "no CUDA device " << device << " (" << count << " visible)";
        throw InvalidInput(msg.str());
    }
    detail::DeviceGuard guard(device);
    K.device = device;
    K.spec = spec;
    K.n_features = validated.n_features();
    K.n_radial = int32_t(validated.n_radial_features());
    ALIP_CUDA_CHECK(cudaDeviceGetAttribute(&K.max_shared, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));

    std::vector<double> g2;
    for (const RadialParam& p : spec.g2) g2.push_back(p.eta), g2.push_back(p.rs);
    std::vector<EtaGroup> groups;
    std::vector<AngularItem> items;
    auto add_family = [&](const std::vector<AngularParam>& params, int32_t feature_base) {
        std::vector<double> etas;
        for (const AngularParam& p : params)
            if (std::find(etas.begin(), etas.end(), p.eta) == etas.end()) etas.push_back(p.eta);
        for (double eta : etas) {
            EtaGroup g{eta, int32_t(items.size()), 0};
            for (size_t k = 0; k < params.size(); ++k) {
                const AngularParam& p = params[k];
                if (p.eta != eta) continue;
                const bool is_int = p.zeta == std::floor(p.zeta) && p.zeta <= 64;
                items.push_back({p.zeta, p.lambda, std::pow(2.0, 1.0 - p.zeta), is_int ? int32_t(p.zeta) : -1,
                                 feature_base + int32_t(k)});
            }
            g.end = int32_t(items.size());
            groups.push_back(g);
        }
        return int32_t(etas.size());
    };
    K.n_groups4 = add_family(spec.g4, 0);
    K.n_groups5 = add_family(spec.g5, int32_t(spec.g4.size()));
    const int32_t ns = spec.n_species;
    std::vector<int32_t> pair_index(size_t(ns) * ns, 0);
    int32_t q = 0;
    for (int32_t a = 0; a < ns; ++a)
        for (int32_t b = a; b < ns; ++b) pair_index[size_t(a) * ns + b] = pair_index[size_t(b) * ns + a] = q++;

    cudaStream_t stream = nullptr;
    K.g2 = detail::to_device(g2, stream);
    K.groups = detail::to_device(groups, stream);
    K.items = detail::to_device(items, stream);
    K.pair_index = detail::to_device(pair_index, stream);
    ALIP_CUDA_CHECK(cudaStreamSynchronize(stream));
}

AcsfKernels::~AcsfKernels() {
    if (impl_) {
        detail::DeviceGuard guard(impl_->device);
        impl_.reset();
    }
}

int AcsfKernels::device() const { return impl_->device; }
int64_t AcsfKernels::n_features() const { return impl_->n_features; }

void AcsfKernels::values(const NeighborList& nl, Dtype dtype, void* out, void* stream) const {
    impl_->check_list(nl);
    detail::DeviceGuard guard(impl_->device);
    detail::check_on_device(out, impl_->device, "out");
    if (!out) throw InvalidInput("out is required");
    auto s = static_cast<cudaStream_t>(stream);
    if (dtype == Dtype::Float64) run_forward<double>(*impl_, nl, nullptr, nullptr, static_cast<double*>(out), false, s);
    else run_forward<float>(*impl_, nl, nullptr, nullptr, static_cast<float*>(out), false, s);
}

void AcsfKernels::forces_virial(const NeighborList& nl, Dtype dtype, const void* dE_dG, void* forces, void* virials,
                                void* stream) const {
    impl_->check_list(nl);
    detail::DeviceGuard guard(impl_->device);
    detail::check_on_device(dE_dG, impl_->device, "dE_dG");
    detail::check_on_device(forces, impl_->device, "forces");
    detail::check_on_device(virials, impl_->device, "virials");
    if (!dE_dG || !forces || !virials) throw InvalidInput("dE_dG, forces and virials are required");
    auto s = static_cast<cudaStream_t>(stream);
    if (dtype == Dtype::Float64)
        run_vjp<double>(*impl_, nl, static_cast<const double*>(dE_dG), static_cast<double*>(forces),
                        static_cast<double*>(virials), s);
    else
        run_vjp<float>(*impl_, nl, static_cast<const float*>(dE_dG), static_cast<float*>(forces),
                       static_cast<float*>(virials), s);
}

void AcsfKernels::jvp(const NeighborList& nl, Dtype dtype, const void* displacement, const void* strain, void* out,
                      void* stream) const {
    impl_->check_list(nl);
    detail::DeviceGuard guard(impl_->device);
    detail::check_on_device(displacement, impl_->device, "displacement");
    detail::check_on_device(strain, impl_->device, "strain");
    detail::check_on_device(out, impl_->device, "out");
    if (!out) throw InvalidInput("out is required");
    auto s = static_cast<cudaStream_t>(stream);
    if (dtype == Dtype::Float64)
        run_forward<double>(*impl_, nl, static_cast<const double*>(displacement), static_cast<const double*>(strain),
                            static_cast<double*>(out), true, s);
    else
        run_forward<float>(*impl_, nl, static_cast<const float*>(displacement), static_cast<const float*>(strain),
                           static_cast<float*>(out), true, s);
}

}  // namespace cuda
}  // namespace alip
