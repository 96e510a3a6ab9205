#include "alip/domain.hpp"

#include <cmath>
#include <cstring>
#include <sstream>
#include <vector>

#include "parallel.hpp"

namespace alip {

namespace {
StructureView as_structure(const DomainView& d, int64_t n_atoms) {
    static const double kNoCell[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};  // the kernels read pair vectors only
    StructureView s;
    s.positions = d.positions;
    s.n_atoms = n_atoms;
    s.cell = kNoCell;
    s.species = d.species;
    return s;
}
}  // namespace

void validate_domain(const DomainView& d, int32_t n_species) {
    if (d.n_centres < 0 || d.n_centres > d.n_atoms) {
        std::ostringstream msg;
        msg << "domain has " << d.n_centres << " centres but " << d.n_atoms << " atoms";
        throw InvalidInput(msg.str());
    }
    for (int64_t i = 0; i < d.n_atoms; ++i) {
        for (int a = 0; a < 3; ++a) check_finite(d.positions[3 * i + a], "position of atom", size_t(i));
        if (d.species[i] < 0 || d.species[i] >= n_species) {
            std::ostringstream msg;
            msg << "species index " << d.species[i] << " of atom " << i << " is out of range [0, " << n_species << ")";
            throw InvalidInput(msg.str());
        }
    }
}

NeighborList domain_neighbor_list(const DomainView& d, const int64_t* offsets, const int64_t* atoms, double cutoff,
                                  bool parallel) {
    validate_cutoff(cutoff);
    const int64_t nc = d.n_centres;
    const double rc2 = cutoff * cutoff;
    const double* x = d.positions;
    NeighborList nl;
    nl.n_atoms = d.n_atoms;
    nl.offsets.assign(size_t(d.n_atoms) + 1, 0);
    ExceptionCollector errors;
    // pass 1: count the pairs within the cutoff
#pragma omp parallel for schedule(static) if (parallel && nc >= kMinAtomsPerParallelRegion)
    for (int64_t i = 0; i < nc; ++i) {
        errors.run([&] {
            int64_t count = 0;
            for (int64_t p = offsets[i]; p < offsets[i + 1]; ++p) {
                const int64_t j = atoms[p];
                if (j < 0 || j >= d.n_atoms || j == i) {
                    std::ostringstream msg;
                    msg << "neighbor " << j << " of centre " << i << " is out of range [0, " << d.n_atoms
                        << ") or the centre itself";
                    throw InvalidInput(msg.str());
                }
                const double dx = x[3 * j] - x[3 * i], dy = x[3 * j + 1] - x[3 * i + 1],
                             dz = x[3 * j + 2] - x[3 * i + 2];
                const double r2 = dx * dx + dy * dy + dz * dz;
                if (r2 < kOverlapDistance * kOverlapDistance) {
                    std::ostringstream msg;
                    msg << "atoms " << i << " and " << j << " overlap (distance " << std::sqrt(r2) << " Å)";
                    throw InvalidInput(msg.str());
                }
                if (r2 < rc2) ++count;
            }
            nl.offsets[size_t(i) + 1] = count;
        });
    }
    errors.rethrow();
    for (int64_t i = 0; i < d.n_atoms; ++i) nl.offsets[size_t(i) + 1] += nl.offsets[size_t(i)];
    const int64_t n_pairs = nl.offsets[size_t(nc)];
    nl.neighbor.resize(size_t(n_pairs));
    nl.shift.resize(size_t(3 * n_pairs));
    nl.vector.resize(size_t(3 * n_pairs));
    nl.distance.resize(size_t(n_pairs));
    // pass 2: fill (same order as the candidates)
#pragma omp parallel for schedule(static) if (parallel && nc >= kMinAtomsPerParallelRegion)
    for (int64_t i = 0; i < nc; ++i) {
        int64_t q = nl.offsets[size_t(i)];
        for (int64_t p = offsets[i]; p < offsets[i + 1]; ++p) {
            const int64_t j = atoms[p];
            const double v[3] = {x[3 * j] - x[3 * i], x[3 * j + 1] - x[3 * i + 1], x[3 * j + 2] - x[3 * i + 2]};
            const double r2 = v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
            if (!(r2 < rc2)) continue;
            nl.neighbor[size_t(q)] = j;
            for (int a = 0; a < 3; ++a) {
                nl.vector[size_t(3 * q + a)] = v[a];
                nl.shift[size_t(3 * q + a)] = 0;  // ghosts are images already
            }
            nl.distance[size_t(q)] = std::sqrt(r2);
            ++q;
        }
    }
    return nl;
}

void domain_values(const Acsf& acsf, const DomainView& d, const NeighborList& nl, double* values, bool parallel) {
    if (nl.n_atoms != d.n_atoms) throw InvalidInput("neighbor list and domain have different atom counts");
    if (d.n_centres == 0) return;
    // the core checks that list and structure agree, so the kernel runs over all atoms;
    // ghosts have no pairs (zero rows) and only the centres' rows are copied out
    const int64_t F = acsf.n_features();
    std::vector<double> all(size_t(d.n_atoms * F));
    acsf.values(as_structure(d, d.n_atoms), nl, all.data(), parallel);
    std::memcpy(values, all.data(), size_t(d.n_centres * F) * sizeof(double));
}

void domain_forces_virial(const Acsf& acsf, const DomainView& d, const NeighborList& nl, const double* dE_dG,
                          int64_t n_rhs, double* forces, double* virial, bool parallel) {
    if (nl.n_atoms != d.n_atoms) throw InvalidInput("neighbor list and domain have different atom counts");
    if (n_rhs < 1) throw InvalidInput("at least one right-hand side (dE/dG) is required");
    const int64_t F = acsf.n_features(), nc = d.n_centres, n = d.n_atoms;
    const size_t per_rhs_in = size_t(nc * F);
    for (size_t k = 0; k < size_t(n_rhs) * per_rhs_in; ++k)
        if (!std::isfinite(dE_dG[k])) check_finite(dE_dG[k], "dE/dG entry", k);
    // the kernel visits every atom as a centre; ghost rows are zero and ghosts have no pairs
    std::vector<double> padded(size_t(n_rhs * n * F), 0.0);
    for (int64_t r = 0; r < n_rhs; ++r)
        std::memcpy(&padded[size_t(r * n * F)], dE_dG + r * per_rhs_in, per_rhs_in * sizeof(double));
    VjpRhs rhs;
    rhs.n = n_rhs;
    rhs.dE_dG_stride = n * F;
    rhs.forces_stride = 3 * n;
    rhs.virial_stride = 9;
    acsf.forces_virial(as_structure(d, n), nl, padded.data(), forces, virial, parallel, rhs);
}

}  // namespace alip
