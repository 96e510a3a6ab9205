// Cell-list neighbor search on the GPU for a batch of structures: periodic along any
// subset of axes, triclinic cells, cutoffs larger than the cell (several images, an
// atom's own images included). Binning as cpp/neighbors.cpp did with bins of at least the
// cutoff (the CPU list now uses cutoff/2: a different order, the same pairs); the
// wrapped positions and d^2 are rounded as the CPU list rounds them (nl_logic.cuh), so
// that the two lists hold the same pairs, also at the cutoff.
//
// Steps: (host) validate cells, binning cell per structure -> (GPU, per atom) checks,
// fractional coordinates, wraps, extents along open axes -> (host) bins and reach ->
// (GPU) bin keys, stable radix sort of atoms by bin -> (GPU, per center) count pairs ->
// scan -> (GPU, per center) write pairs -> (GPU, per center) group by neighbor species,
// compute vectors and distances from the original positions and cell.
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <sstream>

#include "common.cuh"
#include "nl_logic.cuh"
#include "structure.hpp"

namespace alip {
namespace cuda {

namespace {

using detail::Buffer;
using namespace nl_logic;

/// First error found on the GPU (codes below); -1: none.
struct ErrorRecord {
    unsigned long long bad_position;  ///< min global atom index with a non-finite position
    unsigned long long bad_species;   ///< min global atom index with species out of range
    int overlap_set;
    int fill_mismatch;  ///< 1: fill_kernel found a different pair count than count_kernel (a bug)
    int64_t overlap_i, overlap_j;
    double overlap_d;
};

constexpr unsigned long long kNone = ~0ull;

/// Prefixes "structure k: " in batches of several structures (as cpp/batch.cpp does).
[[noreturn]] void throw_in_structure(int64_t n_structures, int64_t k, const std::string& what) {
    if (n_structures == 1) throw InvalidInput(what);
    std::ostringstream msg;
    msg << "structure " << k << ": " << what;
    throw InvalidInput(msg.str());
}

// ---- device helpers ----------------------------------------------------------------
__device__ inline unsigned long long order_key(double x) {
    const unsigned long long u = static_cast<unsigned long long>(__double_as_longlong(x));
    return (u >> 63) ? ~u : (u | 0x8000000000000000ull);
}
inline double from_order_key(unsigned long long k) {
    const unsigned long long u = (k >> 63) ? (k & 0x7fffffffffffffffull) : ~k;
    double x;
    static_assert(sizeof(x) == sizeof(u), "");
    std::memcpy(&x, &u, sizeof(x));
    return x;
}

__global__ void structure_index_kernel(const int64_t* offsets, int64_t n_structures, int64_t n_atoms,
                                       int32_t* structure) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n_atoms; i += int64_t(gridDim.x) * blockDim.x) {
        int64_t lo = 0, hi = n_structures;  // last k with offsets[k] <= i
        while (hi - lo > 1) {
            const int64_t mid = (lo + hi) / 2;
            if (offsets[mid] <= i) lo = mid;
            else hi = mid;
        }
        structure[i] = int32_t(lo);
    }
}

/// Checks, fractional coordinates in the binning cell, wraps along periodic axes,
/// wrapped Cartesian positions, and the extent of open axes (as order keys).
__global__ void prepare_kernel(const double* positions, const int32_t* species, int32_t n_species, int64_t n_atoms,
                               const int32_t* structure, const StructurePlan* plans, double* frac, int32_t* wrap,
                               double* wrapped, unsigned long long* extent, ErrorRecord* err) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n_atoms; i += int64_t(gridDim.x) * blockDim.x) {
        const double r[3] = {positions[3 * i], positions[3 * i + 1], positions[3 * i + 2]};
        if (!finite3(r)) {
            atomicMin(&err->bad_position, static_cast<unsigned long long>(i));
            continue;
        }
        if (species[i] < 0 || species[i] >= n_species) atomicMin(&err->bad_species, static_cast<unsigned long long>(i));
        const int32_t k = structure[i];
        const StructurePlan& P = plans[k];
        prepare_atom(P, r, frac + 3 * i, wrap + 3 * i, wrapped + 3 * i);
        for (int a = 0; a < 3; ++a) {
            if (P.pbc[a]) continue;
            atomicMin(&extent[6 * k + 2 * a], order_key(frac[3 * i + a]));
            atomicMax(&extent[6 * k + 2 * a + 1], order_key(frac[3 * i + a]));
        }
    }
}

__global__ void bin_kernel(const double* frac, int64_t n_atoms, const int32_t* structure, const StructurePlan* plans,
                           int32_t* bin3, unsigned long long* key, int32_t* atom, int64_t* bin_count) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n_atoms; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t g = bin_of(plans[structure[i]], frac + 3 * i, bin3 + 3 * i);
        key[i] = static_cast<unsigned long long>(g);
        atom[i] = int32_t(i);
        atomicAdd(reinterpret_cast<unsigned long long*>(&bin_count[g]), 1ull);
    }
}

__global__ void count_kernel(int64_t n_atoms, const int32_t* structure, const StructurePlan* plans,
                             const int32_t* bin3, const double* wrapped, const int64_t* bin_start,
                             const int32_t* bin_atoms, double cutoff2, double overlap2, int64_t* count,
                             ErrorRecord* err) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n_atoms; i += int64_t(gridDim.x) * blockDim.x) {
        int64_t c = 0;
        search(i, plans[structure[i]], bin3, wrapped, bin_start, bin_atoms, cutoff2,
               [&](int64_t j, int64_t, int64_t, int64_t, double d2) {
                   ++c;
                   if (d2 < overlap2 && atomicCAS(&err->overlap_set, 0, 1) == 0) {
                       err->overlap_i = i;
                       err->overlap_j = j;
                       err->overlap_d = sqrt(d2);
                   }
               });
        count[i] = c;
    }
}

__global__ void fill_kernel(int64_t n_atoms, const int32_t* structure, const StructurePlan* plans, const int32_t* bin3,
                            const double* wrapped, const int32_t* wrap, const int64_t* bin_start,
                            const int32_t* bin_atoms, double cutoff2, const int64_t* center_offset, int32_t* tmp_j,
                            int32_t* tmp_shift, ErrorRecord* err) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n_atoms; i += int64_t(gridDim.x) * blockDim.x) {
        int64_t p = center_offset[i];
        const int64_t end = center_offset[i + 1];
        // count_kernel sized [center_offset[i], end); never write past it, even if this
        // search found more pairs (it runs the same code, so it should not)
        search(i, plans[structure[i]], bin3, wrapped, bin_start, bin_atoms, cutoff2,
               [&](int64_t j, int64_t sx, int64_t sy, int64_t sz, double) {
                   if (p < end) {
                       tmp_j[p] = int32_t(j);
                       pair_shift(wrap, i, j, sx, sy, sz, tmp_shift + 3 * p);
                   }
                   ++p;
               });
        if (p != end) atomicExch(&err->fill_mismatch, 1);
        for (; p < end; ++p) {  // keep group_kernel in bounds until the host raises
            tmp_j[p] = int32_t(i);
            for (int c = 0; c < 3; ++c) tmp_shift[3 * p + c] = 0;
        }
    }
}

/// Groups each center's pairs by neighbor species (stable) and computes the pair
/// vectors from the original positions and the structure's cell.
__global__ void group_kernel(int64_t n_atoms, int32_t n_species, const int32_t* species, const double* positions,
                             const int32_t* structure, const StructurePlan* plans, const int64_t* center_offset,
                             const int32_t* tmp_j, const int32_t* tmp_shift, int32_t* seg, int32_t* neighbor,
                             int32_t* shift, double* vector, double* distance) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n_atoms; i += int64_t(gridDim.x) * blockDim.x)
        group_center(i, n_species, species, positions, plans[structure[i]].cell, center_offset[i],
                     center_offset[i + 1], tmp_j, tmp_shift, seg, neighbor, shift, vector, distance);
}

__global__ void copy_pairs_kernel(int64_t n_atoms, const int64_t* center_offset, const int32_t* neighbor,
                                  const int32_t* shift, const double* vector, const double* distance, int64_t* out_i,
                                  int64_t* out_j, int64_t* out_shift, double* out_vector, double* out_distance) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n_atoms; i += int64_t(gridDim.x) * blockDim.x) {
        for (int64_t p = center_offset[i]; p < center_offset[i + 1]; ++p) {
            if (out_i) out_i[p] = i;
            if (out_j) out_j[p] = neighbor[p];
            for (int c = 0; c < 3; ++c) {
                if (out_shift) out_shift[3 * p + c] = shift[3 * p + c];
                if (out_vector) out_vector[3 * p + c] = vector[3 * p + c];
            }
            if (out_distance) out_distance[p] = distance[p];
        }
    }
}

template <class T>
void exclusive_scan(const T* in, T* out, int64_t n, cudaStream_t stream) {
    size_t bytes = 0;
    ALIP_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(nullptr, bytes, in, out, n, stream));
    Buffer<unsigned char> tmp(std::max<size_t>(bytes, 1), stream);
    ALIP_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(tmp.get(), bytes, in, out, n, stream));
}

constexpr int kBlock = 256;

}  // namespace

// ---- NeighborList --------------------------------------------------------------------
NeighborList::NeighborList(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
NeighborList::~NeighborList() = default;
int NeighborList::device() const { return impl_->device; }
int64_t NeighborList::n_atoms() const { return impl_->n_atoms; }
int64_t NeighborList::n_structures() const { return impl_->n_structures; }
int64_t NeighborList::n_pairs() const { return impl_->n_pairs; }
int32_t NeighborList::n_species() const { return impl_->n_species; }
double NeighborList::cutoff() const { return impl_->cutoff; }

void NeighborList::copy_pairs(int64_t* i, int64_t* j, int64_t* shift, double* vector, double* distance,
                              void* stream_ptr) const {
    const Impl& L = *impl_;
    detail::DeviceGuard guard(L.device);
    const char* names[5] = {"i", "j", "shift", "vector", "distance"};
    const void* ptrs[5] = {i, j, shift, vector, distance};
    for (int k = 0; k < 5; ++k) detail::check_on_device(ptrs[k], L.device, names[k]);
    auto stream = static_cast<cudaStream_t>(stream_ptr);
    if (L.n_pairs == 0) return;
    copy_pairs_kernel<<<detail::grid_for(L.n_atoms, kBlock), kBlock, 0, stream>>>(
        L.n_atoms, L.center_offset.get(), L.neighbor.get(), L.shift.get(), L.vector.get(), L.distance.get(), i, j,
        shift, vector, distance);
    ALIP_CUDA_LAUNCH_CHECK();
    L.record_use(stream);
}

std::unique_ptr<NeighborList> build_neighbor_list(const DeviceBatch& batch, double cutoff, int32_t n_species,
                                                  void* stream_ptr) {
    validate_cutoff(cutoff);
    if (n_species < 1) throw InvalidInput("at least one species is required");
    if (batch.n_structures < 1) throw InvalidInput("no structures given");
    if (batch.n_atoms < 1) throw InvalidInput("structure has no atoms");
    if (batch.n_atoms >= (int64_t(1) << 31)) throw InvalidInput("the GPU path takes at most 2^31 - 1 atoms per call");
    const int device = detail::device_of(batch.positions, "positions");
    detail::check_on_device(batch.species, device, "species");
    detail::check_on_device(batch.offsets, device, "offsets");
    detail::check_on_device(batch.cells, device, "cells");
    detail::check_on_device(batch.pbc, device, "pbc");
    if (!batch.species || !batch.offsets || !batch.cells || !batch.pbc)
        throw InvalidInput("species, offsets, cells and pbc are required");
    detail::DeviceGuard guard(device);
    auto stream = static_cast<cudaStream_t>(stream_ptr);
    const int64_t S = batch.n_structures, N = batch.n_atoms;

    // ---- host: offsets, cells, pbc; validation; binning cells ------------------------
    auto impl = std::make_unique<NeighborList::Impl>();
    impl->device = device;
    impl->n_atoms = N;
    impl->n_structures = S;
    impl->n_species = n_species;
    impl->cutoff = cutoff;
    impl->host_offsets = detail::to_host(batch.offsets, size_t(S + 1), stream);
    const std::vector<double> cells = detail::to_host(batch.cells, size_t(9 * S), stream);
    const std::vector<uint8_t> pbc = detail::to_host(batch.pbc, size_t(3 * S), stream);
    const std::vector<int64_t>& off = impl->host_offsets;
    if (off[0] != 0) throw InvalidInput("offsets must start at 0");
    if (off[S] != N) {
        std::ostringstream msg;
        msg << "offsets end at " << off[S] << " but positions hold " << N << " atoms";
        throw InvalidInput(msg.str());
    }
    std::vector<StructurePlan> plans(static_cast<size_t>(S));
    for (int64_t k = 0; k < S; ++k) {
        if (off[k + 1] < off[k]) throw InvalidInput("offsets must be non-decreasing");
        if (off[k + 1] == off[k]) throw_in_structure(S, k, "structure has no atoms");
        const double origin[3] = {0, 0, 0};
        StructureView view;  // the cell checks of the CPU path, on a one-atom stand-in
        view.positions = origin;
        view.n_atoms = 1;
        view.cell = &cells[9 * k];
        view.pbc = {pbc[3 * k] != 0, pbc[3 * k + 1] != 0, pbc[3 * k + 2] != 0};
        try {
            validate_structure(view, n_species);
        } catch (const InvalidInput& e) {
            throw_in_structure(S, k, e.what());
        }
        const bool pb[3] = {view.pbc[0], view.pbc[1], view.pbc[2]};
        plan_cell(plans[size_t(k)], &cells[9 * k], pb, off[k]);
    }

    Buffer<StructurePlan> d_plans = detail::to_device(plans, stream);
    Buffer<int32_t> structure(size_t(N), stream);
    structure_index_kernel<<<detail::grid_for(N, kBlock), kBlock, 0, stream>>>(batch.offsets, S, N, structure.get());
    ALIP_CUDA_LAUNCH_CHECK();

    // ---- GPU: checks, fractional coordinates, extents along open axes ---------------
    Buffer<double> frac(size_t(3 * N), stream), wrapped(size_t(3 * N), stream);
    Buffer<int32_t> wrap(size_t(3 * N), stream);
    std::vector<unsigned long long> extent_init(size_t(6 * S));
    for (int64_t k = 0; k < 6 * S; ++k) extent_init[size_t(k)] = (k % 2 == 0) ? kNone : 0ull;
    Buffer<unsigned long long> extent = detail::to_device(extent_init, stream);
    ErrorRecord err_init{kNone, kNone, 0, 0, -1, -1, 0.0};
    Buffer<ErrorRecord> err = detail::to_device(std::vector<ErrorRecord>{err_init}, stream);
    prepare_kernel<<<detail::grid_for(N, kBlock), kBlock, 0, stream>>>(
        batch.positions, batch.species, n_species, N, structure.get(), d_plans.get(), frac.get(), wrap.get(),
        wrapped.get(), extent.get(), err.get());
    ALIP_CUDA_LAUNCH_CHECK();
    const std::vector<unsigned long long> ext = detail::to_host(extent.get(), size_t(6 * S), stream);
    ErrorRecord e = detail::to_host(err.get(), 1, stream)[0];
    auto structure_of = [&](int64_t i) {
        return int64_t(std::upper_bound(off.begin(), off.end(), i) - off.begin()) - 1;
    };
    if (e.bad_position != kNone) {
        const int64_t i = int64_t(e.bad_position), k = structure_of(i);
        std::ostringstream msg;
        msg << "position of atom " << (i - off[k]) << " is not finite (NaN or inf)";
        throw_in_structure(S, k, msg.str());
    }
    if (e.bad_species != kNone) {
        const int64_t i = int64_t(e.bad_species), k = structure_of(i);
        const int32_t sp = detail::to_host(batch.species + i, 1, stream)[0];  // on the caller's stream
        std::ostringstream msg;
        msg << "species index " << sp << " of atom " << (i - off[k]) << " is out of range [0, " << n_species << ")";
        throw_in_structure(S, k, msg.str());
    }

    // ---- host: bins and reach (cpp/neighbors.cpp) ------------------------------------
    int64_t total_bins = 0;
    for (int64_t k = 0; k < S; ++k) {
        StructurePlan& P = plans[size_t(k)];
        double ext_min[3] = {0, 0, 0}, ext_max[3] = {0, 0, 0};
        for (int a = 0; a < 3; ++a) {
            if (P.pbc[a]) continue;
            ext_min[a] = from_order_key(ext[size_t(6 * k + 2 * a)]);
            ext_max[a] = from_order_key(ext[size_t(6 * k + 2 * a + 1)]);
        }
        P.bin_offset = total_bins;
        const int64_t n_bins = plan_bins(P, off[k + 1] - off[k], ext_min, ext_max, cutoff);
        if (n_bins < 0)
            throw_in_structure(S, k, "cutoff is too large compared to the periodic cell (more than 1e6 images)");
        total_bins += n_bins;
    }
    d_plans = detail::to_device(plans, stream);

    // ---- GPU: bin atoms (stable by atom index within a bin) ------------------------
    Buffer<int32_t> bin3(size_t(3 * N), stream), atom_in(size_t(N), stream), bin_atoms(size_t(N), stream);
    Buffer<unsigned long long> key_in(size_t(N), stream), key_out(size_t(N), stream);
    Buffer<int64_t> bin_count(size_t(total_bins + 1), stream), bin_start(size_t(total_bins + 1), stream);
    bin_count.zero(stream);
    bin_kernel<<<detail::grid_for(N, kBlock), kBlock, 0, stream>>>(frac.get(), N, structure.get(), d_plans.get(),
                                                                   bin3.get(), key_in.get(), atom_in.get(),
                                                                   bin_count.get());
    ALIP_CUDA_LAUNCH_CHECK();
    {
        int end_bit = 1;
        while (end_bit < 64 && (uint64_t(1) << end_bit) <= uint64_t(total_bins)) ++end_bit;
        size_t bytes = 0;
        ALIP_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, bytes, key_in.get(), key_out.get(), atom_in.get(),
                                                        bin_atoms.get(), N, 0, end_bit, stream));
        Buffer<unsigned char> tmp(std::max<size_t>(bytes, 1), stream);
        ALIP_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(tmp.get(), bytes, key_in.get(), key_out.get(), atom_in.get(),
                                                        bin_atoms.get(), N, 0, end_bit, stream));
    }
    exclusive_scan(bin_count.get(), bin_start.get(), total_bins + 1, stream);

    // ---- GPU: count, scan, fill --------------------------------------------------------
    const double cutoff2 = cutoff * cutoff, overlap2 = kOverlapDistance * kOverlapDistance;
    Buffer<int64_t> count(size_t(N + 1), stream);
    impl->center_offset = Buffer<int64_t>(size_t(N + 1), stream);
    count.zero(stream);
    count_kernel<<<detail::grid_for(N, kBlock), kBlock, 0, stream>>>(N, structure.get(), d_plans.get(), bin3.get(),
                                                                     wrapped.get(), bin_start.get(), bin_atoms.get(),
                                                                     cutoff2, overlap2, count.get(), err.get());
    ALIP_CUDA_LAUNCH_CHECK();
    exclusive_scan(count.get(), impl->center_offset.get(), N + 1, stream);
    int64_t n_pairs = 0;
    ALIP_CUDA_CHECK(cudaMemcpyAsync(&n_pairs, impl->center_offset.get() + N, sizeof(n_pairs), cudaMemcpyDeviceToHost,
                                    stream));
    e = detail::to_host(err.get(), 1, stream)[0];  // synchronizes
    if (e.overlap_set) {
        const int64_t k = structure_of(e.overlap_i);
        std::ostringstream msg;
        msg << "atoms " << (e.overlap_i - off[k]) << " and " << (e.overlap_j - off[k]) << " overlap (distance "
            << e.overlap_d << " Å < " << kOverlapDistance << " Å)";
        throw_in_structure(S, k, msg.str());
    }
    impl->n_pairs = n_pairs;

    Buffer<int32_t> tmp_j(size_t(n_pairs), stream), tmp_shift(size_t(3 * n_pairs), stream);
    impl->seg = Buffer<int32_t>(size_t(N * (n_species + 1)), stream);
    impl->neighbor = Buffer<int32_t>(size_t(n_pairs), stream);
    impl->shift = Buffer<int32_t>(size_t(3 * n_pairs), stream);
    impl->vector = Buffer<double>(size_t(3 * n_pairs), stream);
    impl->distance = Buffer<double>(size_t(n_pairs), stream);
    if (n_pairs > 0) {
        fill_kernel<<<detail::grid_for(N, kBlock), kBlock, 0, stream>>>(
            N, structure.get(), d_plans.get(), bin3.get(), wrapped.get(), wrap.get(), bin_start.get(), bin_atoms.get(),
            cutoff2, impl->center_offset.get(), tmp_j.get(), tmp_shift.get(), err.get());
        ALIP_CUDA_LAUNCH_CHECK();
    }
    group_kernel<<<detail::grid_for(N, kBlock), kBlock, 0, stream>>>(
        N, n_species, batch.species, batch.positions, structure.get(), d_plans.get(), impl->center_offset.get(),
        tmp_j.get(), tmp_shift.get(), impl->seg.get(), impl->neighbor.get(), impl->shift.get(), impl->vector.get(),
        impl->distance.get());
    ALIP_CUDA_LAUNCH_CHECK();
    impl->structure = std::move(structure);
    impl->atom_offsets = detail::to_device(off, stream);
    // The list is complete before it is returned (it may be used on other streams):
    // reading the error record back synchronizes the stream.
    e = detail::to_host(err.get(), 1, stream)[0];
    if (e.fill_mismatch)
        throw std::runtime_error("internal error in alip's GPU neighbor list: the fill pass found a different number "
                                 "of pairs than the count pass");
    return std::make_unique<NeighborList>(std::move(impl));
}

}  // namespace cuda
}  // namespace alip
