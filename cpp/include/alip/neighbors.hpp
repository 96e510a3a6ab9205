// Cell-list neighbor search: periodic in any subset of axes, triclinic cells,
// cutoffs larger than the cell (several images, an atom's own images included).
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "structure.hpp"

namespace alip {

/// std::allocator whose resize() leaves new elements of trivial types uninitialized:
/// the neighbor list's arrays are sized serially and then filled in parallel.
template <class T>
struct UninitializedAllocator : std::allocator<T> {
    template <class U>
    struct rebind {
        using other = UninitializedAllocator<U>;
    };
    UninitializedAllocator() = default;
    template <class U>
    UninitializedAllocator(const UninitializedAllocator<U>&) noexcept {}
    template <class U>
    void construct(U* p) noexcept {
        ::new (static_cast<void*>(p)) U;
    }
    template <class U, class... Args>
    void construct(U* p, Args&&... args) {
        ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
    }
};
template <class T>
using FillLaterVector = std::vector<T, UninitializedAllocator<T>>;

/// Full neighbor list (i -> j and j -> i) in compressed rows over centers.
/// For pair p of center i: vector[p] = positions[j] + shift[p] @ cell - positions[i].
/// Within a center, pairs are sorted by (j, shift) when built with `sorted`.
struct NeighborList {
    int64_t n_atoms = 0;
    std::vector<int64_t> offsets;       ///< (n_atoms + 1,)
    FillLaterVector<int64_t> neighbor;  ///< (n_pairs,) atom index j
    FillLaterVector<int32_t> shift;     ///< (n_pairs, 3) integer cell shifts
    FillLaterVector<double> vector;     ///< (n_pairs, 3) r_ij
    FillLaterVector<double> distance;   ///< (n_pairs,)

    int64_t n_pairs() const { return static_cast<int64_t>(neighbor.size()); }
};

/// Atoms closer than this are rejected as overlapping (Å).
constexpr double kOverlapDistance = 1e-6;

/// Builds the full neighbor list of `s` within `cutoff` (strictly less than).
/// `parallel` lets the search use OpenMP threads over centers; `sorted` orders each
/// center's pairs by (j, shift) (needed for per-neighbor gradient rows, not for values).
/// Throws InvalidInput for overlapping atoms (distance < kOverlapDistance).
NeighborList build_neighbor_list(const StructureView& s, double cutoff, bool parallel, bool sorted = true);

/// The same into `out`, reusing the capacity of its arrays (and of this thread's search
/// buffers): a caller that builds lists repeatedly (the values / forces calls) touches
/// memory it already has instead of fresh pages each time.
void build_neighbor_list(const StructureView& s, double cutoff, bool parallel, bool sorted, NeighborList& out);

}  // namespace alip
