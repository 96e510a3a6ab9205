// Host-side layout of the descriptor spec for the kernels (shared by acsf.cu and the
// CPU emulation in host_emulation.cpp): G4/G5 parameters grouped by (eta, rs), the
// unordered species-pair index, the feature counts of cpp/acsf.hpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <utility>
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
        t.items = items_ptr;
        t.pair_index = pair_index_ptr;
        return t;
    }
};

/// Assumes a valid spec (alip::Acsf's constructor checks it).
inline HostTables build_tables(const AcsfSpec& spec) {
    HostTables T;
    for (const RadialParam& p : spec.g2) T.g2.push_back(p.eta), T.g2.push_back(p.rs);
    auto add_family = [&](const std::vector<AngularParam>& params, int32_t feature_base) {
        std::vector<std::pair<double, double>> windows;  // distinct (eta, rs)
        for (const AngularParam& p : params)
            if (std::find(windows.begin(), windows.end(), std::make_pair(p.eta, p.rs)) == windows.end())
                windows.emplace_back(p.eta, p.rs);
        for (const auto& [eta, rs] : windows) {
            acsf_math::EtaGroup g{eta, rs, int32_t(T.items.size()), 0};
            for (size_t k = 0; k < params.size(); ++k) {
                const AngularParam& p = params[k];
                if (p.eta != eta || p.rs != rs) continue;
                const bool is_int = p.zeta == std::floor(p.zeta) && p.zeta <= 64;
                T.items.push_back({p.zeta, p.lambda, std::pow(2.0, 1.0 - p.zeta), is_int ? int32_t(p.zeta) : -1,
                                   feature_base + int32_t(k)});
            }
            g.end = int32_t(T.items.size());
            T.groups.push_back(g);
        }
        return int32_t(windows.size());
    };
    T.n_groups4 = add_family(spec.g4, 0);
    T.n_groups5 = add_family(spec.g5, int32_t(spec.g4.size()));
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
