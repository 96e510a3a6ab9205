#include "acsf.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>

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
    auto leg_of = [&](double eta, double c) {
        int l = 0;
        while (l < int(t.leg_etas.size()) && !(t.leg_etas[l] == eta && t.leg_rs[l] == c)) ++l;
        if (l == int(t.leg_etas.size())) t.leg_etas.push_back(eta), t.leg_rs.push_back(c);
        return int32_t(l);
    };
    auto add_angular = [&](std::vector<AngularParam>& params, std::vector<AngularIndex>& index, const char* name) {
        const bool g4 = std::string(name) == "g4";
        for (size_t k = 0; k < params.size(); ++k) {
            AngularParam& p = params[k];
            check_finite(p.eta, name, k);
            check_finite(p.zeta, name, k);
            check_finite(p.lambda, name, k);
            check_finite(p.rs, name, k);
            check_finite(p.rs2, name, k);
            if (p.eta < 0) throw InvalidInput(std::string(name) + " eta must be >= 0");
            if (p.zeta < 1) throw InvalidInput(std::string(name) + " zeta must be >= 1");
            if (std::abs(p.lambda) > 1) throw InvalidInput(std::string(name) + " lambda must be in [-1, 1]");
            if (p.rs < 0) throw InvalidInput(std::string(name) + " rs must be >= 0");
            if (p.rs2 < 0) p.rs2 = p.rs;  // one window for both legs
            if (g4 && p.rs2 != p.rs)
                throw InvalidInput("g4 row " + std::to_string(k) +
                                   ": two windows (rs2 != rs) are defined for G5 only (G4 also shifts r_jk)");
            const double lo = std::min(p.rs, p.rs2), hi = std::max(p.rs, p.rs2);  // the factor is symmetric
            int e = 0;
            while (e < int(t.angular_etas.size()) &&
                   !(t.angular_etas[e] == p.eta && t.leg_rs[t.leg_a[e]] == lo && t.leg_rs[t.leg_b[e]] == hi))
                ++e;
            if (e == int(t.angular_etas.size())) {
                t.angular_etas.push_back(p.eta);
                t.angular_rs.push_back(0.5 * (lo + hi));
                t.angular_half_gap.push_back(0.5 * (lo - hi));
                t.leg_a.push_back(leg_of(p.eta, lo));
                t.leg_b.push_back(leg_of(p.eta, hi));
                t.angular_shifted = t.angular_shifted || hi != 0.0;
                t.angular_two_windows = t.angular_two_windows || lo != hi;
            }
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
            index.push_back(
                {e, z, std::pow(2.0, 1.0 - p.zeta), p.eta, p.eta * t.angular_rs[e], p.eta * t.angular_half_gap[e]});
        }
    };
    add_angular(t.spec.g4, t.g4_index, "g4");
    add_angular(t.spec.g5, t.g5_index, "g5");
    for (const AngularIndex& ix : t.g4_index) t.g4_etas.push_back(ix.eta_value), t.g4_eta_rs.push_back(ix.eta_rs);
    for (const AngularIndex& ix : t.g5_index)
        t.g5_etas.push_back(ix.eta_value), t.g5_eta_rs.push_back(ix.eta_rs),
            t.g5_eta_half_gap.push_back(ix.eta_half_gap);
    for (size_t e = 0; e < t.leg_a.size() && !t.angular_two_windows; ++e)  // the kernels' one-window path
        if (t.leg_a[e] != int32_t(e) || t.leg_b[e] != int32_t(e))
            throw std::logic_error("ACSF tables: legs out of order");
    const int32_t ns = t.spec.n_species;
    t.pair_index.assign(size_t(ns) * ns, 0);
    int32_t q = 0;
    for (int32_t a = 0; a < ns; ++a)
        for (int32_t b = a; b < ns; ++b) t.pair_index[a * ns + b] = t.pair_index[b * ns + a] = q++;
    t.n_angular_per_pair = int64_t(t.spec.g4.size() + t.spec.g5.size());
    t.n_features = t.n_radial_features() + int64_t(q) * t.n_angular_per_pair;
}

namespace {

/// The checks every entry point makes before a kernel reads the arrays.
void check_structure_and_list(const StructureView& s, const NeighborList& nl, int32_t n_species) {
    if (s.positions == nullptr || s.cell == nullptr || s.species == nullptr)
        throw InvalidInput("the structure needs positions, cell and species (a null pointer was given)");
    validate_structure(s, n_species);
    if (nl.n_atoms != s.n_atoms || int64_t(nl.offsets.size()) != s.n_atoms + 1)
        throw InvalidInput("the neighbor list was built for " + std::to_string(nl.n_atoms) +
                           " atoms but the structure has " + std::to_string(s.n_atoms));
    if (nl.offsets.back() != nl.n_pairs() || int64_t(nl.distance.size()) != nl.n_pairs() ||
        int64_t(nl.vector.size()) != 3 * nl.n_pairs())
        throw InvalidInput("the neighbor list's arrays disagree on the number of pairs");
}

void check_output(const void* p, const char* what) {
    if (p == nullptr) throw InvalidInput(std::string(what) + " is a null pointer");
}

}  // namespace

void Acsf::values(const StructureView& s, const NeighborList& nl, double* out, bool parallel) const {
    check_structure_and_list(s, nl, t_.spec.n_species);
    check_output(out, "the values output");
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
    check_structure_and_list(s, nl, t_.spec.n_species);
    if (int64_t(rows.size()) != s.n_atoms + 1 || rows != gradient_rows(nl))
        throw InvalidInput("gradient rows do not match the neighbor list (use Acsf::gradient_rows)");
    for (const void* p : {static_cast<const void*>(out.values), static_cast<const void*>(out.grad),
                          static_cast<const void*>(out.centers), static_cast<const void*>(out.neighbors),
                          static_cast<const void*>(out.strain)})
        check_output(p, "a gradient output");
    kernels().acsf_gradients(t_, s, nl, rows, out, parallel);
}

void Acsf::forces_virial(const StructureView& s, const NeighborList& nl, const double* dE_dG, double* forces,
                         double* virial, bool parallel, VjpRhs rhs) const {
    check_structure_and_list(s, nl, t_.spec.n_species);
    check_output(dE_dG, "dE/dG");
    check_output(forces, "the forces output");
    check_output(virial, "the virial output");
    const int64_t per_rhs = s.n_atoms * t_.n_features;
    if (rhs.n < 1) throw InvalidInput("forces_virial needs at least one right-hand side (rhs.n >= 1)");
    if (rhs.n > 1 && (rhs.dE_dG_stride < per_rhs || rhs.forces_stride < 3 * s.n_atoms || rhs.virial_stride < 9))
        throw InvalidInput(
            "right-hand sides overlap: strides must be at least n_atoms * F (dE/dG), "
            "3 n_atoms (forces) and 9 (virial)");
    for (int64_t r = 0; r < rhs.n; ++r) {
        const double* w = dE_dG + r * rhs.dE_dG_stride;
        for (int64_t k = 0; k < per_rhs; ++k)
            if (!std::isfinite(w[k]))
                throw InvalidInput("dE/dG contains NaN or inf (right-hand side " + std::to_string(r) + ", atom " +
                                   std::to_string(k / t_.n_features) + ", feature " +
                                   std::to_string(k % t_.n_features) + ")");
    }
    kernels().acsf_forces_virial(t_, s, nl, dE_dG, forces, virial, parallel, rhs);
}

}  // namespace alip
