// Cell-list neighbor search: periodic in any subset of axes, triclinic cells,
// cutoffs larger than the cell (several images, an atom's own images included).
#pragma once

#include <cstdint>
#include <vector>

#include "structure.hpp"

namespace alip {

/// Full neighbor list (i -> j and j -> i) in compressed rows over centers.
/// For pair p of center i: vector[p] = positions[j] + shift[p] @ cell - positions[i].
/// Within a center, pairs are sorted by (j, shift) when built with `sorted`.
struct NeighborList {
    int64_t n_atoms = 0;
    std::vector<int64_t> offsets;   ///< (n_atoms + 1,)
    std::vector<int64_t> neighbor;  ///< (n_pairs,) atom index j
    std::vector<int32_t> shift;     ///< (n_pairs, 3) integer cell shifts
    std::vector<double> vector;     ///< (n_pairs, 3) r_ij
    std::vector<double> distance;   ///< (n_pairs,)

    int64_t n_pairs() const { return static_cast<int64_t>(neighbor.size()); }
};

/// Atoms closer than this are rejected as overlapping (Å).
constexpr double kOverlapDistance = 1e-6;

/// Builds the full neighbor list of `s` within `cutoff` (strictly less than).
/// `parallel` lets the search use OpenMP threads over centers; `sorted` orders each
/// center's pairs by (j, shift) (needed for per-neighbor gradient rows, not for values).
/// Throws InvalidInput for overlapping atoms (distance < kOverlapDistance).
NeighborList build_neighbor_list(const StructureView& s, double cutoff, bool parallel, bool sorted = true);

}  // namespace alip
