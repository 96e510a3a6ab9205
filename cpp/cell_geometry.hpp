// 3x3 cell geometry shared by the CPU neighbor list and the GPU binning plans
// (cuda/nl_logic.cuh): vectors, determinant, inverse and the binning cell.
#pragma once

#include <array>
#include <cmath>

namespace alip {
namespace geometry {

using Mat3 = std::array<double, 9>;  ///< row-major, rows are vectors

inline void cross(const double* u, const double* v, double* out) {
    out[0] = u[1] * v[2] - u[2] * v[1];
    out[1] = u[2] * v[0] - u[0] * v[2];
    out[2] = u[0] * v[1] - u[1] * v[0];
}
inline double dot(const double* u, const double* v) { return u[0] * v[0] + u[1] * v[1] + u[2] * v[2]; }
inline double norm3(const double* u) { return std::sqrt(dot(u, u)); }
inline void normalize(double* u) {
    const double n = norm3(u);
    u[0] /= n, u[1] /= n, u[2] /= n;
}
inline double det3(const double* h) {
    return h[0] * (h[4] * h[8] - h[5] * h[7]) - h[1] * (h[3] * h[8] - h[5] * h[6]) + h[2] * (h[3] * h[7] - h[4] * h[6]);
}
inline Mat3 inverse3(const Mat3& h) {
    const double d = det3(h.data());
    return {(h[4] * h[8] - h[5] * h[7]) / d, (h[2] * h[7] - h[1] * h[8]) / d, (h[1] * h[5] - h[2] * h[4]) / d,
            (h[5] * h[6] - h[3] * h[8]) / d, (h[0] * h[8] - h[2] * h[6]) / d, (h[2] * h[3] - h[0] * h[5]) / d,
            (h[3] * h[7] - h[4] * h[6]) / d, (h[1] * h[6] - h[0] * h[7]) / d, (h[0] * h[4] - h[1] * h[3]) / d};
}

/// Binning cell: the periodic lattice vectors, completed by unit vectors orthogonal to
/// them along open axes (the user's cell is irrelevant there).
inline Mat3 binning_cell(const double* cell, const bool* pbc) {
    Mat3 h{};
    const int n_periodic = int(pbc[0]) + int(pbc[1]) + int(pbc[2]);
    if (n_periodic == 0) return {1, 0, 0, 0, 1, 0, 0, 0, 1};
    for (int a = 0; a < 3; ++a)
        if (pbc[a])
            for (int k = 0; k < 3; ++k) h[3 * a + k] = cell[3 * a + k];
    if (n_periodic == 3) return h;
    if (n_periodic == 2) {
        const int missing = !pbc[0] ? 0 : (!pbc[1] ? 1 : 2);
        cross(&h[3 * ((missing + 1) % 3)], &h[3 * ((missing + 2) % 3)], &h[3 * missing]);
        normalize(&h[3 * missing]);
        return h;
    }
    // one periodic axis: two unit vectors orthogonal to it and to each other
    const int p = pbc[0] ? 0 : (pbc[1] ? 1 : 2);
    double u[3] = {h[3 * p], h[3 * p + 1], h[3 * p + 2]};
    normalize(u);
    double trial[3] = {1, 0, 0};
    if (std::abs(u[0]) > 0.9) trial[0] = 0, trial[1] = 1;
    double w1[3], w2[3];
    cross(u, trial, w1);
    normalize(w1);
    cross(u, w1, w2);
    normalize(w2);
    const int a1 = (p + 1) % 3, a2 = (p + 2) % 3;
    for (int k = 0; k < 3; ++k) h[3 * a1 + k] = w1[k], h[3 * a2 + k] = w2[k];
    return h;
}

}  // namespace geometry
}  // namespace alip
