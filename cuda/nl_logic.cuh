// The logic of the GPU neighbor search as host+device functions: per-structure
// binning plans (host; cpp/neighbors.cpp's formulas with bins of at least the cutoff; the
// CPU now bins at cutoff/2, which changes the order, not the pairs), per-atom wrapping and
// binning, the per-center cell-list search and the grouping by neighbor species.
// neighbors.cu runs them in kernels; cuda/host_emulation.cpp runs them serially on the
// CPU (tests/core/test_cuda_emulator.py), so the GPU list's logic is tested without a GPU.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>

#include "acsf_math.cuh"  // ALIP_HD
#include "cell_geometry.hpp"  // cpp/: shared with the CPU neighbor list

namespace alip {
namespace cuda {
namespace nl_logic {

/// Per-structure binning parameters (POD, uploaded to the GPU).
struct StructurePlan {
    double h[9];     ///< binning cell: periodic lattice vectors, completed along open axes
    double hinv[9];
    double cell[9];  ///< the structure's cell (pair vectors use it, as on the CPU)
    double lo[3], width[3];
    int32_t nbins[3], reach[3];
    int32_t pbc[3];
    int64_t bin_offset;
    int64_t atom_offset;
};

// ---- host: binning cell and bins ---------------------------------------------------
using geometry::binning_cell;
using geometry::cross;
using geometry::det3;
using geometry::Mat3;
using geometry::norm3;

/// Fills h, hinv, cell, pbc, atom_offset of a plan (before the GPU pass).
inline void plan_cell(StructurePlan& P, const double* cell, const bool* pbc, int64_t atom_offset) {
    const Mat3 h = binning_cell(cell, pbc);
    const Mat3 inv = geometry::inverse3(h);
    for (int q = 0; q < 9; ++q) P.h[q] = h[q], P.hinv[q] = inv[q], P.cell[q] = cell[q];
    for (int a = 0; a < 3; ++a) P.pbc[a] = pbc[a] ? 1 : 0, P.lo[a] = 0, P.width[a] = 1, P.nbins[a] = 1, P.reach[a] = 0;
    P.atom_offset = atom_offset;
    P.bin_offset = 0;
}

/// Bins and reach (after the GPU pass gave the extent [ext_min, ext_max] of the
/// fractional coordinates along open axes). Returns the number of bins, or -1 when
/// the cutoff needs more than 1e6 periodic images along an axis.
inline int64_t plan_bins(StructurePlan& P, int64_t n_atoms, const double* ext_min, const double* ext_max,
                         double cutoff) {
    const double vol = std::abs(det3(P.h));
    double spacing[3], extent[3];
    int64_t nbins[3];
    for (int a = 0; a < 3; ++a) {
        double c[3];
        cross(&P.h[3 * ((a + 1) % 3)], &P.h[3 * ((a + 2) % 3)], c);
        spacing[a] = vol / norm3(c);  // distance between lattice planes along a
        extent[a] = 1.0;
        P.lo[a] = 0.0;
        if (!P.pbc[a]) {
            P.lo[a] = ext_min[a];
            extent[a] = ext_max[a] - ext_min[a];
        }
        const double nb = std::floor(extent[a] * spacing[a] / cutoff);
        nbins[a] = static_cast<int64_t>(std::max(1.0, std::min(nb, 1e6)));
    }
    const int64_t max_bins = std::max<int64_t>(8, 2 * n_atoms);  // sparse systems would waste memory
    while (nbins[0] * nbins[1] * nbins[2] > max_bins) {
        const int a = int(std::max_element(nbins, nbins + 3) - nbins);
        nbins[a] = std::max<int64_t>(1, nbins[a] / 2);
    }
    for (int a = 0; a < 3; ++a) {
        const double ex = P.pbc[a] ? 1.0 : extent[a];
        P.width[a] = ex > 0 ? ex / double(nbins[a]) : 1.0;
        const double width_len = P.width[a] * spacing[a];
        if (P.pbc[a]) {
            const double r = std::ceil(cutoff / width_len);
            if (r > 1e6) return -1;
            P.reach[a] = int32_t(r);
        } else {
            P.reach[a] = ex > 0 ? int32_t(std::min<int64_t>(nbins[a] - 1, int64_t(std::ceil(cutoff / width_len)))) : 0;
        }
        P.nbins[a] = int32_t(nbins[a]);
    }
    return nbins[0] * nbins[1] * nbins[2];
}

// ---- arithmetic as the CPU list does it ------------------------------------------
// Products and sums rounded one by one: nvcc contracts a * b + c into an FMA by default
// (--fmad=true), which rounds differently. The wrapped positions and squared distances
// below must be bit-identical to cpp/neighbors.cpp's (which runs without FMA) so that the
// GPU list holds the same pairs at the cutoff (the operations and their order are those of
// cpp/neighbors.cpp's search; keep them in step), and count_kernel and fill_kernel (two
// inlined copies of search()) must take the same decisions. __dmul_rn/__dadd_rn are never
// contracted.
ALIP_HD double mul_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
    return __dmul_rn(a, b);
#else
    return a * b;
#endif
}
ALIP_HD double add_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
    return __dadd_rn(a, b);
#else
    return a + b;
#endif
}
ALIP_HD double sub_rn(double a, double b) { return add_rn(a, -b); }

// ---- per atom ------------------------------------------------------------------------
ALIP_HD bool finite3(const double* r) {
    // x - x is 0 for finite x, NaN for NaN and inf
    return (r[0] - r[0]) == 0.0 && (r[1] - r[1]) == 0.0 && (r[2] - r[2]) == 0.0;
}

/// Fractional coordinates in the binning cell, wrapped into [0, 1) along periodic axes
/// (wrap = the integer taken off), and the wrapped Cartesian position.
ALIP_HD void prepare_atom(const StructurePlan& P, const double* r, double* frac, int32_t* wrap, double* wrapped) {
    for (int a = 0; a < 3; ++a) {
        double f = add_rn(add_rn(mul_rn(r[0], P.hinv[a]), mul_rn(r[1], P.hinv[3 + a])), mul_rn(r[2], P.hinv[6 + a]));
        int32_t w = 0;
        if (P.pbc[a]) {
            double fl = ::floor(f);
            f -= fl;
            if (f >= 1.0) f -= 1.0, fl += 1.0;
            w = int32_t(fl);
        }
        frac[a] = f;
        wrap[a] = w;
    }
    for (int c = 0; c < 3; ++c) {
        double x = r[c];
        for (int a = 0; a < 3; ++a) x = sub_rn(x, mul_rn(double(wrap[a]), P.h[3 * a + c]));
        wrapped[c] = x;
    }
}

/// Bin of an atom (per axis, clamped) and its global bin key.
ALIP_HD int64_t bin_of(const StructurePlan& P, const double* frac, int32_t* bin3) {
    int64_t b[3];
    for (int a = 0; a < 3; ++a) {
        int64_t x = int64_t(::floor((frac[a] - P.lo[a]) / P.width[a]));
        if (x < 0) x = 0;
        if (x > int64_t(P.nbins[a]) - 1) x = int64_t(P.nbins[a]) - 1;
        b[a] = x;
        bin3[a] = int32_t(x);
    }
    return P.bin_offset + (b[0] * P.nbins[1] + b[1]) * P.nbins[2] + b[2];
}

ALIP_HD int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
    return q;
}

/// Visits every (j, image) strictly within the cutoff of center i (itself at zero shift
/// excluded): emit(j, sx, sy, sz, d2) with the image shift in the binning cell.
template <class Emit>
ALIP_HD void search(int64_t i, const StructurePlan& P, const int32_t* bin3, const double* wrapped,
                    const int64_t* bin_start, const int32_t* bin_atoms, double cutoff2, Emit&& emit) {
    const double ri[3] = {wrapped[3 * i], wrapped[3 * i + 1], wrapped[3 * i + 2]};
    const int64_t nb0 = P.nbins[0], nb1 = P.nbins[1], nb2 = P.nbins[2];
    for (int64_t dx = -P.reach[0]; dx <= P.reach[0]; ++dx) {
        const int64_t tx = bin3[3 * i] + dx;
        int64_t bx = tx, sx = 0;
        if (P.pbc[0]) sx = floor_div(tx, nb0), bx = tx - sx * nb0;
        else if (tx < 0 || tx >= nb0) continue;
        for (int64_t dy = -P.reach[1]; dy <= P.reach[1]; ++dy) {
            const int64_t ty = bin3[3 * i + 1] + dy;
            int64_t by = ty, sy = 0;
            if (P.pbc[1]) sy = floor_div(ty, nb1), by = ty - sy * nb1;
            else if (ty < 0 || ty >= nb1) continue;
            for (int64_t dz = -P.reach[2]; dz <= P.reach[2]; ++dz) {
                const int64_t tz = bin3[3 * i + 2] + dz;
                int64_t bz = tz, sz = 0;
                if (P.pbc[2]) sz = floor_div(tz, nb2), bz = tz - sz * nb2;
                else if (tz < 0 || tz >= nb2) continue;
                // image offset minus the center, then + the neighbor: cpp/neighbors.cpp's order
                double off[3];
                for (int c = 0; c < 3; ++c)
                    off[c] = sub_rn(add_rn(add_rn(mul_rn(double(sx), P.h[c]), mul_rn(double(sy), P.h[3 + c])),
                                           mul_rn(double(sz), P.h[6 + c])),
                                    ri[c]);
                const int64_t b = P.bin_offset + (bx * nb1 + by) * nb2 + bz;
                for (int64_t q = bin_start[b]; q < bin_start[b + 1]; ++q) {
                    const int64_t j = bin_atoms[q];
                    double d[3];
                    for (int c = 0; c < 3; ++c) d[c] = add_rn(wrapped[3 * j + c], off[c]);
                    const double d2 = add_rn(add_rn(mul_rn(d[0], d[0]), mul_rn(d[1], d[1])), mul_rn(d[2], d[2]));
                    if (d2 >= cutoff2) continue;
                    if (j == i && sx == 0 && sy == 0 && sz == 0) continue;
                    emit(j, sx, sy, sz, d2);
                }
            }
        }
    }
}

/// Pair shift in the structure's cell from the image shift in the binning cell.
ALIP_HD void pair_shift(const int32_t* wrap, int64_t i, int64_t j, int64_t sx, int64_t sy, int64_t sz, int32_t* S) {
    S[0] = int32_t(sx - wrap[3 * j] + wrap[3 * i]);
    S[1] = int32_t(sy - wrap[3 * j + 1] + wrap[3 * i + 1]);
    S[2] = int32_t(sz - wrap[3 * j + 2] + wrap[3 * i + 2]);
}

/// Groups the pairs [first, last) of center i by neighbor species (stable) into the
/// final arrays, with vectors positions[j] + S cell - positions[i] and distances.
ALIP_HD void group_center(int64_t i, int32_t n_species, const int32_t* species, const double* positions,
                          const double* cell, int64_t first, int64_t last, const int32_t* tmp_j,
                          const int32_t* tmp_shift, int32_t* seg, int32_t* neighbor, int32_t* shift, double* vector,
                          double* distance) {
    const double ri[3] = {positions[3 * i], positions[3 * i + 1], positions[3 * i + 2]};
    int64_t out = first;
    for (int32_t s = 0; s < n_species; ++s) {
        seg[i * (n_species + 1) + s] = int32_t(out - first);
        for (int64_t p = first; p < last; ++p) {
            const int32_t j = tmp_j[p];
            if (n_species > 1 && species[j] != s) continue;
            const int32_t S[3] = {tmp_shift[3 * p], tmp_shift[3 * p + 1], tmp_shift[3 * p + 2]};
            neighbor[out] = j;
            double d2 = 0;
            for (int c = 0; c < 3; ++c) {
                shift[3 * out + c] = S[c];
                const double v =
                    positions[3 * j + c] - ri[c] + S[0] * cell[c] + S[1] * cell[3 + c] + S[2] * cell[6 + c];
                vector[3 * out + c] = v;
                d2 += v * v;
            }
            distance[out] = ::sqrt(d2);
            ++out;
        }
    }
    seg[i * (n_species + 1) + n_species] = int32_t(out - first);
}

}  // namespace nl_logic
}  // namespace cuda
}  // namespace alip
