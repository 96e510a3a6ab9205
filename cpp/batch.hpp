// Many structures in one call: OpenMP over structures for pools of small cells,
// over atoms inside each structure when there are few large ones.
#pragma once

#include <cstdint>
#include <vector>

#include "acsf.hpp"
#include "neighbors.hpp"

namespace alip {

/// Borrowed arrays describing n_structures concatenated structures.
struct Batch {
    const double* positions = nullptr;  ///< (N, 3)
    const int32_t* species = nullptr;   ///< (N,)
    const int64_t* offsets = nullptr;   ///< (n_structures + 1,), offsets[0] = 0
    const double* cells = nullptr;      ///< (n_structures, 3, 3)
    const uint8_t* pbc = nullptr;       ///< (n_structures, 3)
    int64_t n_structures = 0;

    int64_t n_atoms() const { return offsets[n_structures]; }
    StructureView structure(int64_t k) const;
};

/// Validates every structure; the message names the structure index.
void validate_batch(const Batch& batch, int32_t n_species, double cutoff);

/// values (N, F)
void batch_values(const Acsf& acsf, const Batch& batch, double* out);

/// Neighbor lists and gradient row layout of a batch, computed before the
/// gradient arrays are allocated (so they can be written in place).
struct GradientPlan {
    std::vector<NeighborList> lists;
    std::vector<std::vector<int64_t>> rows;  ///< per structure, local row offsets
    std::vector<int64_t> row_start;          ///< (n_structures + 1,) global row offsets
    int64_t n_rows() const { return row_start.back(); }
};
GradientPlan plan_gradients(const Acsf& acsf, const Batch& batch);

/// Fills values (N, F), grad (n_rows, 3, F), centers/neighbors (n_rows,) with global
/// atom indices, and strain (N, 3, 3, F).
void batch_gradients(const Acsf& acsf, const Batch& batch, const GradientPlan& plan, double* values, double* grad,
                     int64_t* centers, int64_t* neighbors, double* strain);

/// forces (K, N, 3) and virials (K, n_structures, 3, 3) from dE/dG (K, N, F): the K
/// right-hand sides (committee members) share one neighbor list and geometry.
void batch_forces_virial(const Acsf& acsf, const Batch& batch, const double* dE_dG, double* forces, double* virials,
                         int64_t n_rhs = 1);

/// Full neighbor lists of a batch, one per structure.
std::vector<NeighborList> batch_neighbor_lists(const Batch& batch, double cutoff);

}  // namespace alip
