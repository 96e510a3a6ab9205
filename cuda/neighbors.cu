// Cell-list neighbor search on the GPU for a batch of structures: periodic along any
// subset of axes, triclinic cells, cutoffs larger than the cell (several images, an
// atom's own images included). The binning follows cpp/neighbors.cpp (same bins, same
// reach), so that the two lists hold the same pairs.
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
#include "structure.hpp"

namespace alip {
namespace cuda {

namespace {

using detail::Buffer;

/// Per-structure binning parameters (POD, uploaded to the GPU).
struct StructurePlan {
    double h[9];     ///< binning cell: periodic lattice vectors, completed along open axes
    double hinv[9];
    double cell[9];  ///< the structure's cell (pair vectors use it, as on the CPU)
    double lo[3], width[3];
    int32_t nbins[3], reach[3];
    int32_t pbc[3];
    int64_t bin_offset;
    int64_t atom_offset;
};

/// First error found on the GPU (codes below); -1: none.
struct ErrorRecord {
    unsigned long long bad_position;  ///< min global atom index with a non-finite position
    unsigned long long bad_species;   ///< min global atom index with species out of range
    int overlap_set;
    int64_t overlap_i, overlap_j;
    double overlap_d;
};

constexpr unsigned long long kNone = ~0ull;

// ---- host helpers (same formulas as cpp/neighbors.cpp) -------------------------------
using Mat3 = std::array<double, 9>;

void cross(const double* u, const double* v, double* out) {
    out[0] = u[1] * v[2] - u[2] * v[1];
    out[1] = u[2] * v[0] - u[0] * v[2];
    out[2] = u[0] * v[1] - u[1] * v[0];
}
double dot3(const double* u, const double* v) { return u[0] * v[0] + u[1] * v[1] + u[2] * v[2]; }
double norm3(const double* u) { return std::sqrt(dot3(u, u)); }
void normalize(double* u) {
    const double n = norm3(u);
    u[0] /= n, u[1] /= n, u[2] /= n;
}
double det3(const Mat3& h) {
    return h[0] * (h[4] * h[8] - h[5] * h[7]) - h[1] * (h[3] * h[8] - h[5] * h[6]) +
           h[2] * (h[3] * h[7] - h[4] * h[6]);
}
Mat3 inverse3(const Mat3& h) {
    const double d = det3(h);
    return {(h[4] * h[8] - h[5] * h[7]) / d, (h[2] * h[7] - h[1] * h[8]) / d, (h[1] * h[5] - h[2] * h[4]) / d,
            (h[5] * h[6] - h[3] * h[8]) / d, (h[0] * h[8] - h[2] * h[6]) / d, (h[2] * h[3] - h[0] * h[5]) / d,
            (h[3] * h[7] - h[4] * h[6]) / d, (h[1] * h[6] - h[0] * h[7]) / d, (h[0] * h[4] - h[1] * h[3]) / d};
}

Mat3 binning_cell(const double* cell, const bool* pbc) {
    Mat3 h{};
    const int n_periodic = int(pbc[0]) + int(pbc[1]) + int(pbc[2]);
    if (n_periodic == 0) return {1, 0, 0, 0, 1, 0, 0, 0, 1};
    for (int a = 0; a < 3; ++a)
        if (pbc[a])
            for (int k = 0; k < 3; ++k) h[3 * a + k] = cell[3 * a + k];
    if (n_periodic == 3) return h;
    if (n_periodic == 2) {
        const int missing = !pbc[0] ? 0 : (!pbc[1] ? 1 : 2);
        cross(&h[3 * ((missing + 1) % 3)], &h[3 * ((missing + 2) % 3)], &h[3 * missing]);
        normalize(&h[3 * missing]);
        return h;
    }
    const int p = pbc[0] ? 0 : (pbc[1] ? 1 : 2);
    double u[3] = {h[3 * p], h[3 * p + 1], h[3 * p + 2]};
    normalize(u);
    double trial[3] = {1, 0, 0};
    if (std::abs(u[0]) > 0.9) trial[0] = 0, trial[1] = 1;
    double w1[3], w2[3];
    cross(u, trial, w1);
    normalize(w1);
    cross(u, w1, w2);
    normalize(w2);
    const int a1 = (p + 1) % 3, a2 = (p + 2) % 3;
    for (int k = 0; k < 3; ++k) h[3 * a1 + k] = w1[k], h[3 * a2 + k] = w2[k];
    return h;
}

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

__device__ inline int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
    return q;
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
        if (!(isfinite(r[0]) && isfinite(r[1]) && isfinite(r[2]))) {
            atomicMin(&err->bad_position, static_cast<unsigned long long>(i));
            continue;
        }
        if (species[i] < 0 || species[i] >= n_species) atomicMin(&err->bad_species, static_cast<unsigned long long>(i));
        const int32_t k = structure[i];
        const StructurePlan& P = plans[k];
        for (int a = 0; a < 3; ++a) {
            double f = r[0] * P.hinv[a] + r[1] * P.hinv[3 + a] + r[2] * P.hinv[6 + a];
            int32_t w = 0;
            if (P.pbc[a]) {
                double fl = floor(f);
                f -= fl;
                if (f >= 1.0) f -= 1.0, fl += 1.0;
                w = int32_t(fl);
            } else {
                atomicMin(&extent[6 * k + 2 * a], order_key(f));
                atomicMax(&extent[6 * k + 2 * a + 1], order_key(f));
            }
            frac[3 * i + a] = f;
            wrap[3 * i + a] = w;
        }
        for (int c = 0; c < 3; ++c) {
            double x = r[c];
            for (int a = 0; a < 3; ++a) x -= double(wrap[3 * i + a]) * P.h[3 * a + c];
            wrapped[3 * i + c] = x;
        }
    }
}

__global__ void bin_kernel(const double* frac, int64_t n_atoms, const int32_t* structure, const StructurePlan* plans,
                           int32_t* bin3, unsigned long long* key, int32_t* atom, int64_t* bin_count) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n_atoms; i += int64_t(gridDim.x) * blockDim.x) {
        const StructurePlan& P = plans[structure[i]];
        int64_t b[3];
        for (int a = 0; a < 3; ++a) {
            int64_t x = int64_t(floor((frac[3 * i + a] - P.lo[a]) / P.width[a]));
            if (x < 0) x = 0;
            if (x > int64_t(P.nbins[a]) - 1) x = int64_t(P.nbins[a]) - 1;
            b[a] = x;
            bin3[3 * i + a] = int32_t(b[a]);
        }
        const int64_t g = P.bin_offset + (b[0] * P.nbins[1] + b[1]) * P.nbins[2] + b[2];
        key[i] = static_cast<unsigned long long>(g);
        atom[i] = int32_t(i);
        atomicAdd(reinterpret_cast<unsigned long long*>(&bin_count[g]), 1ull);
    }
}

/// Visits every (j, image) within the cutoff of center i; `emit(j, sx, sy, sz, d2)`.
template <class Emit>
__device__ inline void search(int64_t i, const StructurePlan& P, const int32_t* bin3, const double* wrapped,
                              const int64_t* bin_start, const int32_t* bin_atoms, double cutoff2, Emit&& emit) {
    const double ri[3] = {wrapped[3 * i], wrapped[3 * i + 1], wrapped[3 * i + 2]};
    const int64_t nb0 = P.nbins[0], nb1 = P.nbins[1], nb2 = P.nbins[2];
    for (int64_t dx = -P.reach[0]; dx <= P.reach[0]; ++dx) {
        const int64_t tx = bin3[3 * i] + dx;
        int64_t bx = tx, sx = 0;
        if (P.pbc[0]) sx = floor_div(tx, nb0), bx = tx - sx * nb0;
        else if (tx < 0 || tx >= nb0) continue;
        for (int64_t dy = -P.reach[1]; dy <= P.reach[1]; ++dy) {
            const int64_t ty = bin3[3 * i + 1] + dy;
            int64_t by = ty, sy = 0;
            if (P.pbc[1]) sy = floor_div(ty, nb1), by = ty - sy * nb1;
            else if (ty < 0 || ty >= nb1) continue;
            for (int64_t dz = -P.reach[2]; dz <= P.reach[2]; ++dz) {
                const int64_t tz = bin3[3 * i + 2] + dz;
                int64_t bz = tz, sz = 0;
                if (P.pbc[2]) sz = floor_div(tz, nb2), bz = tz - sz * nb2;
                else if (tz < 0 || tz >= nb2) continue;
                const double off[3] = {sx * P.h[0] + sy * P.h[3] + sz * P.h[6], sx * P.h[1] + sy * P.h[4] + sz * P.h[7],
                                       sx * P.h[2] + sy * P.h[5] + sz * P.h[8]};
                const int64_t b = P.bin_offset + (bx * nb1 + by) * nb2 + bz;
                for (int64_t q = bin_start[b]; q < bin_start[b + 1]; ++q) {
                    const int64_t j = bin_atoms[q];
                    const double d[3] = {wrapped[3 * j] + off[0] - ri[0], wrapped[3 * j + 1] + off[1] - ri[1],
                                         wrapped[3 * j + 2] + off[2] - ri[2]};
                    const double d2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
                    if (d2 >= cutoff2) continue;
                    if (j == i && sx == 0 && sy == 0 && sz == 0) continue;
                    emit(j, sx, sy, sz, d2);
                }
            }
        }
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
                            int32_t* tmp_shift) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n_atoms; i += int64_t(gridDim.x) * blockDim.x) {
        int64_t p = center_offset[i];
        search(i, plans[structure[i]], bin3, wrapped, bin_start, bin_atoms, cutoff2,
               [&](int64_t j, int64_t sx, int64_t sy, int64_t sz, double) {
                   tmp_j[p] = int32_t(j);
                   tmp_shift[3 * p] = int32_t(sx - wrap[3 * j] + wrap[3 * i]);
                   tmp_shift[3 * p + 1] = int32_t(sy - wrap[3 * j + 1] + wrap[3 * i + 1]);
                   tmp_shift[3 * p + 2] = int32_t(sz - wrap[3 * j + 2] + wrap[3 * i + 2]);
                   ++p;
               });
    }
}

/// Groups each center's pairs by neighbor species (stable) and computes the pair
/// vectors from the original positions and the structure's cell.
__global__ void group_kernel(int64_t n_atoms, int32_t n_species, const int32_t* species, const double* positions,
                             const int32_t* structure, const StructurePlan* plans, const int64_t* center_offset,
                             const int32_t* tmp_j, const int32_t* tmp_shift, int32_t* seg, int32_t* neighbor,
                             int32_t* shift, double* vector, double* distance) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n_atoms; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t first = center_offset[i], last = center_offset[i + 1];
        const double* cell = plans[structure[i]].cell;
        const double ri[3] = {positions[3 * i], positions[3 * i + 1], positions[3 * i + 2]};
        int64_t out = first;
        for (int32_t s = 0; s < n_species; ++s) {
            seg[i * (n_species + 1) + s] = int32_t(out - first);
            for (int64_t p = first; p < last; ++p) {
                const int32_t j = tmp_j[p];
                if (n_species > 1 && species[j] != s) continue;
                const int32_t S[3] = {tmp_shift[3 * p], tmp_shift[3 * p + 1], tmp_shift[3 * p + 2]};
                neighbor[out] = j;
                double d2 = 0;
                for (int c = 0; c < 3; ++c) {
                    shift[3 * out + c] = S[c];
                    const double v = positions[3 * j + c] - ri[c] + S[0] * cell[c] + S[1] * cell[3 + c] + S[2] * cell[6 + c];
                    vector[3 * out + c] = v;
                    d2 += v * v;
                }
                distance[out] = sqrt(d2);
                ++out;
            }
        }
        seg[i * (n_species + 1) + n_species] = int32_t(out - first);
    }
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
        StructurePlan& P = plans[size_t(k)];
        const bool pb[3] = {view.pbc[0], view.pbc[1], view.pbc[2]};
        const Mat3 h = binning_cell(&cells[9 * k], pb);
        const Mat3 hinv = inverse3(h);
        for (int q = 0; q < 9; ++q) P.h[q] = h[q], P.hinv[q] = hinv[q], P.cell[q] = cells[9 * k + q];
        for (int a = 0; a < 3; ++a) P.pbc[a] = pb[a] ? 1 : 0;
        P.atom_offset = off[k];
        P.bin_offset = 0;
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
    ErrorRecord err_init{kNone, kNone, 0, -1, -1, 0.0};
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
        int32_t sp = 0;
        ALIP_CUDA_CHECK(cudaMemcpy(&sp, batch.species + i, sizeof(sp), cudaMemcpyDeviceToHost));
        std::ostringstream msg;
        msg << "species index " << sp << " of atom " << (i - off[k]) << " is out of range [0, " << n_species << ")";
        throw_in_structure(S, k, msg.str());
    }

    // ---- host: bins and reach (cpp/neighbors.cpp) ------------------------------------
    int64_t total_bins = 0;
    for (int64_t k = 0; k < S; ++k) {
        StructurePlan& P = plans[size_t(k)];
        const int64_t n = off[k + 1] - off[k];
        const Mat3 h = [&] {
            Mat3 m;
            for (int q = 0; q < 9; ++q) m[q] = P.h[q];
            return m;
        }();
        const double vol = std::abs(det3(h));
        double spacing[3], extent_a[3];
        int64_t nbins[3];
        for (int a = 0; a < 3; ++a) {
            double c[3];
            cross(&h[3 * ((a + 1) % 3)], &h[3 * ((a + 2) % 3)], c);
            spacing[a] = vol / norm3(c);
            extent_a[a] = 1.0;
            P.lo[a] = 0.0;
            if (!P.pbc[a]) {
                const double mn = from_order_key(ext[size_t(6 * k + 2 * a)]);
                const double mx = from_order_key(ext[size_t(6 * k + 2 * a + 1)]);
                P.lo[a] = mn;
                extent_a[a] = mx - mn;
            }
            const double nb = std::floor(extent_a[a] * spacing[a] / cutoff);
            nbins[a] = static_cast<int64_t>(std::max(1.0, std::min(nb, 1e6)));
        }
        const int64_t max_bins = std::max<int64_t>(8, 2 * n);
        while (nbins[0] * nbins[1] * nbins[2] > max_bins) {
            const int a = int(std::max_element(nbins, nbins + 3) - nbins);
            nbins[a] = std::max<int64_t>(1, nbins[a] / 2);
        }
        for (int a = 0; a < 3; ++a) {
            const double ex = P.pbc[a] ? 1.0 : extent_a[a];
            P.width[a] = ex > 0 ? ex / double(nbins[a]) : 1.0;
            const double width_len = P.width[a] * spacing[a];
            if (P.pbc[a]) {
                const double r = std::ceil(cutoff / width_len);
                if (r > 1e6)
                    throw_in_structure(S, k, "cutoff is too large compared to the periodic cell (more than 1e6 images)");
                P.reach[a] = int32_t(r);
            } else {
                P.reach[a] = ex > 0 ? int32_t(std::min<int64_t>(nbins[a] - 1, int64_t(std::ceil(cutoff / width_len)))) : 0;
            }
            P.nbins[a] = int32_t(nbins[a]);
        }
        P.bin_offset = total_bins;
        total_bins += nbins[0] * nbins[1] * nbins[2];
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
            cutoff2, impl->center_offset.get(), tmp_j.get(), tmp_shift.get());
        ALIP_CUDA_LAUNCH_CHECK();
    }
    group_kernel<<<detail::grid_for(N, kBlock), kBlock, 0, stream>>>(
        N, n_species, batch.species, batch.positions, structure.get(), d_plans.get(), impl->center_offset.get(),
        tmp_j.get(), tmp_shift.get(), impl->seg.get(), impl->neighbor.get(), impl->shift.get(), impl->vector.get(),
        impl->distance.get());
    ALIP_CUDA_LAUNCH_CHECK();
    impl->structure = std::move(structure);
    impl->atom_offsets = detail::to_device(off, stream);
    // The list is complete before it is returned (it may be used on other streams).
    ALIP_CUDA_CHECK(cudaStreamSynchronize(stream));
    return std::make_unique<NeighborList>(std::move(impl));
}

}  // namespace cuda
}  // namespace alip
