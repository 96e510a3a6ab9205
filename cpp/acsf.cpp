#include "acsf.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "dispatch.hpp"

namespace alip {

Acsf::Acsf(AcsfSpec spec) {
    detail::AcsfTables& t = t_;
    t.spec = std::move(spec);
    if (t.spec.n_species < 1) throw InvalidInput("at least one species is required");
    validate_cutoff(t.spec.cutoff);
    if (t.spec.g2.empty() && t.spec.g4.empty() && t.spec.g5.empty())
        throw InvalidInput("no symmetry functions given (g2, g4 and g5 are all empty)");
    for (size_t k = 0; k < t.spec.g2.size(); ++k) {
        check_finite(t.spec.g2[k].eta, "g2", k);
        check_finite(t.spec.g2[k].rs, "g2", k);
        if (t.spec.g2[k].eta < 0) throw InvalidInput("g2 eta must be >= 0");
    }
    using AngularIndex = detail::AcsfTables::AngularIndex;
    auto add_angular = [&](const std::vector<AngularParam>& params, std::vector<AngularIndex>& index,
                           const char* name) {
        for (size_t k = 0; k < params.size(); ++k) {
            const AngularParam& p = params[k];
            check_finite(p.eta, name, k);
            check_finite(p.zeta, name, k);
            check_finite(p.lambda, name, k);
            if (p.eta < 0) throw InvalidInput(std::string(name) + " eta must be >= 0");
            if (p.zeta < 1) throw InvalidInput(std::string(name) + " zeta must be >= 1");
            if (std::abs(p.lambda) > 1) throw InvalidInput(std::string(name) + " lambda must be in [-1, 1]");
            int e = int(std::find(t.angular_etas.begin(), t.angular_etas.end(), p.eta) - t.angular_etas.begin());
            if (e == int(t.angular_etas.size())) t.angular_etas.push_back(p.eta);
            int z = 0;
            while (z < int(t.zeta_lambdas.size()) &&
                   !(t.zeta_lambdas[z].zeta == p.zeta && t.zeta_lambdas[z].lambda == p.lambda))
                ++z;
            if (z == int(t.zeta_lambdas.size())) {
                const bool is_int = p.zeta == std::floor(p.zeta) && p.zeta <= 64;
                int l = int(std::find(t.lambdas.begin(), t.lambdas.end(), p.lambda) - t.lambdas.begin());
                if (l == int(t.lambdas.size())) t.lambdas.push_back(p.lambda);
                const int iz = is_int ? int(p.zeta) : -1;
                t.zeta_lambdas.push_back({p.zeta, p.lambda, iz, l});
                while (iz >= 1 && (1 << t.ladder_depth) <= iz) ++t.ladder_depth;
            }
            index.push_back({e, z, std::pow(2.0, 1.0 - p.zeta), p.eta});
        }
    };
    add_angular(t.spec.g4, t.g4_index, "g4");
    add_angular(t.spec.g5, t.g5_index, "g5");
    for (const AngularParam& p : t.spec.g4) t.g4_etas.push_back(p.eta);
    for (const AngularParam& p : t.spec.g5) t.g5_etas.push_back(p.eta);
    const int32_t ns = t.spec.n_species;
    t.pair_index.assign(size_t(ns) * ns, 0);
    int32_t q = 0;
    for (int32_t a = 0; a < ns; ++a)
        for (int32_t b = a; b < ns; ++b) t.pair_index[a * ns + b] = t.pair_index[b * ns + a] = q++;
    t.n_angular_per_pair = int64_t(t.spec.g4.size() + t.spec.g5.size());
    t.n_features = t.n_radial_features() + int64_t(q) * t.n_angular_per_pair;
}


void Acsf::values(const StructureView& s, const NeighborList& nl, double* out, bool parallel) const {
    kernels().acsf_values(t_, s, nl, out, parallel);
}

std::vector<int64_t> Acsf::gradient_rows(const NeighborList& nl) const {
    std::vector<int64_t> rows(nl.n_atoms + 1, 0);
    for (int64_t i = 0; i < nl.n_atoms; ++i) {
        int64_t count = 1;  // self
        for (int64_t p = nl.offsets[i]; p < nl.offsets[i + 1]; ++p) {
            const int64_t j = nl.neighbor[p];
            if (j != i && (p == nl.offsets[i] || nl.neighbor[p - 1] != j)) ++count;
        }
        rows[i + 1] = rows[i] + count;
    }
    return rows;
}

void Acsf::gradients(const StructureView& s, const NeighborList& nl, const std::vector<int64_t>& rows,
                     const GradientOutput& out, bool parallel) const {
    kernels().acsf_gradients(t_, s, nl, rows, out, parallel);
}

void Acsf::forces_virial(const StructureView& s, const NeighborList& nl, const double* dE_dG, double* forces,
                         double* virial, bool parallel, VjpRhs rhs) const {
    kernels().acsf_forces_virial(t_, s, nl, dE_dG, forces, virial, parallel, rhs);
}

}  // namespace alip
