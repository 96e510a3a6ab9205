// Centres fewer than atoms: the domain of one rank of an MD engine (LAMMPS), whose first
// n_centres atoms are its own and the rest ghosts (periodic images, other ranks' atoms).
// Ghosts are neighbors only: they carry no descriptors and no energy, but receive forces,
// which the engine sends back to their owners (LAMMPS's reverse communication).
// Reuses the per-centre kernels and the fused VJP of acsf.hpp unchanged: ghost centres are
// given an empty neighbor list, so they contribute nothing.
#pragma once

#include <cstdint>

#include "acsf.hpp"
#include "neighbors.hpp"

namespace alip {

/// Borrowed pointers to a domain; nothing is owned.
struct DomainView {
    const double* positions = nullptr;  ///< (n_atoms, 3): the n_centres centres first, then the ghosts, Å
    int64_t n_centres = 0;
    int64_t n_atoms = 0;               ///< centres + ghosts
    const int32_t* species = nullptr;  ///< (n_atoms,), indices in [0, n_species)
};

/// Throws InvalidInput for n_centres > n_atoms, non-finite positions or species out of range.
void validate_domain(const DomainView& d, int32_t n_species);

/// Neighbor list of the centres from the engine's candidate lists (which may include a skin):
/// candidates of centre i are atoms[offsets[i] .. offsets[i + 1]) (indices < n_atoms, each at
/// most once, never i itself); those closer than `cutoff` are kept with vector = x_j - x_i.
/// The list spans all n_atoms (ghosts have no pairs), as forces_virial needs. Throws
/// InvalidInput for an index out of range or equal to its centre, and for overlapping atoms.
NeighborList domain_neighbor_list(const DomainView& d, const int64_t* offsets, const int64_t* atoms, double cutoff,
                                  bool parallel);

/// Descriptor values (n_centres, F) of the centres.
void domain_values(const Acsf& acsf, const DomainView& d, const NeighborList& nl, double* values, bool parallel);

/// Forces (n_rhs, n_atoms, 3) = -dE/dr on centres and ghosts and virials (n_rhs, 3, 3) =
/// -dE/deps (sum over the centres' pairs) from dE/dG (n_rhs, n_centres, F); several
/// right-hand sides (committee members) share one pass over the geometry. Outputs are
/// overwritten. Throws InvalidInput for non-finite dE/dG.
void domain_forces_virial(const Acsf& acsf, const DomainView& d, const NeighborList& nl, const double* dE_dG,
                          int64_t n_rhs, double* forces, double* virial, bool parallel);

}  // namespace alip
