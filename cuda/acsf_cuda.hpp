// GPU kernels with the contract of cpp/: a cell-list neighbor list and the ACSF
// G2 / G4 / G5 values, the fused vector–Jacobian product (forces and virial from
// dE/dG) and the Jacobian–vector product (what training on forces needs: the
// backward of forces and virial with respect to dE/dG).
//
// Plain C++: no CUDA, pybind11 or torch headers, so that the bindings include it in
// every build. Builds with ALIP_CUDA=ON compile cuda/*.cu; the others compile
// cuda/stub.cpp, where every entry point throws "alip was built without CUDA".
//
// Every pointer is a device pointer on one GPU (the device that holds `positions`);
// `stream` is a cudaStream_t passed as void* (nullptr: the legacy default stream).
// Shapes and conventions are those of cpp/batch.hpp and docs/descriptor_api.md:
// row-major arrays, row-vector cells, feature order of cpp/acsf.hpp.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "acsf.hpp"

namespace alip {
namespace cuda {

/// True in builds with ALIP_CUDA=ON.
bool compiled();

/// Number of CUDA devices the runtime sees; 0 without CUDA, without a driver, or
/// without a GPU (never throws).
int device_count();

/// One line: CUDA runtime and driver versions and the compiled architectures
/// ("built without CUDA" in the stub).
std::string describe();

/// Scalar type of the descriptor arrays (values, dE/dG, forces, ...). Positions and
/// cells are always float64; the neighbor search runs in float64.
enum class Dtype : int { Float32 = 0, Float64 = 1 };

/// Borrowed device arrays of n_structures concatenated structures (cpp/batch.hpp).
struct DeviceBatch {
    const double* positions = nullptr;  ///< (N, 3)
    const int32_t* species = nullptr;   ///< (N,) indices in [0, n_species)
    const int64_t* offsets = nullptr;   ///< (n_structures + 1,), offsets[0] = 0, offsets[S] = N
    const double* cells = nullptr;      ///< (n_structures, 3, 3), rows are lattice vectors
    const uint8_t* pbc = nullptr;       ///< (n_structures, 3)
    int64_t n_structures = 0;
    int64_t n_atoms = 0;                ///< N; checked against offsets[n_structures]
};

/// A full neighbor list of a batch, resident on the GPU (cell list: every structure is
/// binned on the GPU, so there is no separate O(N^2) path; cells smaller than the
/// cutoff use one bin and enough periodic images). Within a center, pairs are grouped
/// by neighbor species (ascending), in bin order inside a species: the same pairs as
/// the CPU list (sorted by (j, shift) there), not the same order.
class NeighborList {
public:
    struct Impl;
    explicit NeighborList(std::unique_ptr<Impl> impl);
    ~NeighborList();
    NeighborList(const NeighborList&) = delete;
    NeighborList& operator=(const NeighborList&) = delete;

    int device() const;
    int64_t n_atoms() const;
    int64_t n_structures() const;
    int64_t n_pairs() const;
    int32_t n_species() const;
    double cutoff() const;

    /// Copies the pairs out: i, j (global atom indices), shift (n_pairs, 3) integer cell
    /// shifts, vector (n_pairs, 3) = positions[j] + shift @ cell - positions[i] and
    /// distance (n_pairs,). Device pointers; any may be nullptr.
    void copy_pairs(int64_t* i, int64_t* j, int64_t* shift, double* vector, double* distance, void* stream) const;

    const Impl& impl() const { return *impl_; }

private:
    std::unique_ptr<Impl> impl_;
};

/// Validates the batch (the errors of the CPU path, as alip::InvalidInput: non-finite
/// positions or cells, species out of range, degenerate periodic cells, empty
/// structures, overlapping atoms, too many images) and builds its neighbor list within
/// `cutoff` (strictly less than). Synchronizes `stream` (sizes are read back).
std::unique_ptr<NeighborList> build_neighbor_list(const DeviceBatch& batch, double cutoff, int32_t n_species,
                                                  void* stream);

/// The descriptor spec uploaded to one GPU.
class AcsfKernels {
public:
    /// `device` < 0: the current device.
    AcsfKernels(const AcsfSpec& spec, int device);
    ~AcsfKernels();
    AcsfKernels(const AcsfKernels&) = delete;
    AcsfKernels& operator=(const AcsfKernels&) = delete;

    int device() const;
    int64_t n_features() const;

    /// values (N, F) into `out`.
    void values(const NeighborList& nl, Dtype dtype, void* out, void* stream) const;

    /// Fused VJP: forces (N, 3) = -dE/dr and virials (S, 3, 3) = -dE/deps given
    /// dE_dG (N, F); no Jacobian is stored. Outputs are overwritten.
    void forces_virial(const NeighborList& nl, Dtype dtype, const void* dE_dG, void* forces, void* virials,
                       void* stream) const;

    /// JVP: out (N, F) = sum_j dG_i/dr_j . displacement_j + sum_ab dG_i/deps_ab strain_ab
    /// (strain of the structure of i). displacement (N, 3) and strain (S, 3, 3) may each be
    /// nullptr (zero). It is the adjoint of forces_virial: the backward of (forces, virial)
    /// with respect to dE_dG, given their upstream gradients (u, U), is -jvp(u, U).
    void jvp(const NeighborList& nl, Dtype dtype, const void* displacement, const void* strain, void* out,
             void* stream) const;

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace cuda
}  // namespace alip
