// Host-side layout of the descriptor spec for the kernels (shared by acsf.cu and the
// CPU emulation in host_emulation.cpp): G4/G5 parameters grouped by radial factor
// (eta, rs, rs2) with rs <= rs2, the unordered species-pair index, the feature counts of
// cpp/acsf.hpp.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "acsf.hpp"
#include "acsf_math.cuh"

namespace alip {
namespace cuda {

struct HostTables {
    std::vector<double> g2;                   ///< (ng2, 2): eta, rs
    std::vector<acsf_math::EtaGroup> groups;  ///< G4 groups, then G5 groups
    std::vector<acsf_math::AngularItem> items;
    std::vector<int32_t> pair_index;  ///< (ns, ns)
    int32_t n_groups4 = 0, n_groups5 = 0;
    int32_t two_windows5 = 0;  ///< whether any G5 group has two windows
    int32_t n_radial = 0;
    int64_t n_features = 0;

    /// Device (or host) view; the pointers are those of the arrays given.
    acsf_math::Tables view(const AcsfSpec& spec, const double* g2_ptr, const acsf_math::EtaGroup* groups_ptr,
                           const acsf_math::AngularItem* items_ptr, const int32_t* pair_index_ptr) const {
        acsf_math::Tables t;
        t.ns = spec.n_species;
        t.ng2 = int32_t(spec.g2.size());
        t.n_g4 = int32_t(spec.g4.size());
        t.n_g5 = int32_t(spec.g5.size());
        t.n_ang = t.n_g4 + t.n_g5;
        t.n_radial = n_radial;
        t.F = n_features;
        t.polynomial = spec.cutoff_function == CutoffFunction::Polynomial ? 1 : 0;
        t.rc = spec.cutoff;
        t.g2 = g2_ptr;
        t.groups4 = groups_ptr;
        t.groups5 = groups_ptr + n_groups4;
        t.n_groups4 = n_groups4;
        t.n_groups5 = n_groups5;
        t.two_windows5 = two_windows5;
        t.items = items_ptr;
        t.pair_index = pair_index_ptr;
        return t;
    }
};

/// Assumes a valid spec (alip::Acsf's constructor checks it). rs2 < 0 is rs (one window);
/// (rs, rs2) and (rs2, rs) are the same function, so a group is keyed by (eta, lo, hi).
inline HostTables build_tables(const AcsfSpec& spec) {
    HostTables T;
    for (const RadialParam& p : spec.g2) T.g2.push_back(p.eta), T.g2.push_back(p.rs);
    auto key = [](const AngularParam& p) {
        const double rs2 = p.rs2 < 0 ? p.rs : p.rs2;
        return std::array<double, 3>{p.eta, std::min(p.rs, rs2), std::max(p.rs, rs2)};
    };
    auto add_family = [&](const std::vector<AngularParam>& params, int32_t feature_base, bool g4) {
        std::vector<std::array<double, 3>> windows;  // distinct (eta, lo, hi)
        for (const AngularParam& p : params) {
            const std::array<double, 3> k = key(p);
            if (g4 && k[1] != k[2]) throw std::logic_error("g4 with two windows (rs2 != rs) reached the CUDA tables");
            if (std::find(windows.begin(), windows.end(), k) == windows.end()) windows.push_back(k);
        }
        for (const std::array<double, 3>& w : windows) {
            const double eta = w[0], lo = w[1], hi = w[2];
            const int32_t two = lo != hi ? 1 : 0;
            // one window: rs = lo exactly (the unshifted/shifted kernels' arithmetic is unchanged)
            acsf_math::EtaGroup g{eta, two ? 0.5 * (lo + hi) : lo, two ? 0.5 * (lo - hi) : 0.0, lo, hi, two,
                                  int32_t(T.items.size()), 0};
            for (size_t k = 0; k < params.size(); ++k) {
                const AngularParam& p = params[k];
                if (key(p) != w) continue;
                const bool is_int = p.zeta == std::floor(p.zeta) && p.zeta <= 64;
                T.items.push_back({p.zeta, p.lambda, std::pow(2.0, 1.0 - p.zeta), is_int ? int32_t(p.zeta) : -1,
                                   feature_base + int32_t(k)});
            }
            g.end = int32_t(T.items.size());
            T.groups.push_back(g);
            if (!g4 && two) T.two_windows5 = 1;
        }
        return int32_t(windows.size());
    };
    T.n_groups4 = add_family(spec.g4, 0, true);
    T.n_groups5 = add_family(spec.g5, int32_t(spec.g4.size()), false);
    const int32_t ns = spec.n_species;
    T.pair_index.assign(size_t(ns) * ns, 0);
    int32_t q = 0;
    for (int32_t a = 0; a < ns; ++a)
        for (int32_t b = a; b < ns; ++b) T.pair_index[size_t(a) * ns + b] = T.pair_index[size_t(b) * ns + a] = q++;
    T.n_radial = ns * int32_t(spec.g2.size());
    T.n_features = int64_t(T.n_radial) + int64_t(q) * int64_t(spec.g4.size() + spec.g5.size());
    return T;
}

}  // namespace cuda
}  // namespace alip
