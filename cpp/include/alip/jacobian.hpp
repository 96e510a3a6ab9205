// Forces from stored descriptor Jacobians: F = −Jᵀ dE/dG for K right-hand sides (the
// members of a committee) and its vector–Jacobian product, the contraction every
// training step runs. The Jacobians are stored once, padded per center atom, and a batch
// of whole structures reads its centers' rows where they are (no gathered copy).
#pragma once

#include <cstdint>

namespace alip {

/// Borrowed descriptor Jacobians of n_all atoms, padded per center atom.
/// rows (n_all, max_rows, 3, n_features): row r of center c is dG_c / dr_j with
/// j = targets[c * max_rows + r]; targets (n_all, max_rows) holds the atom j (an index in
/// [0, n_all)) or n_all for a padding row, and a center's padding rows come after its rows.
template <class T>
struct PaddedJacobian {
    const T* rows = nullptr;
    const int64_t* targets = nullptr;
    int64_t n_all = 0, max_rows = 0, n_features = 0;
};

/// Borrowed strain derivatives of the same atoms' descriptors, for virials (optional).
/// rows (n_all, 3, 3, n_features): dG_c / dε_xy in the Jacobian's numbering; structure (n,):
/// each batch atom's structure, in [0, n_structures). rows nullptr: no virials.
template <class T>
struct StrainJacobian {
    const T* rows = nullptr;
    const int64_t* structure = nullptr;
    int64_t n_structures = 0;
};

/// A batch of n atoms of whole structures: atoms[a] is the index in the Jacobian of local
/// atom a, each structure's atoms consecutive in both numberings, so that a target j of
/// center atoms[a] is local atom a + j − atoms[a] (InvalidInput when that leaves [0, n)).
///
/// forces (K, n, 3) = −Σ_r J[atoms[a], r]ᵀ dE_dG[k, a] summed onto each row's target,
/// from dE_dG (K, n, F). With `strain` also virials (K, n_structures, 3, 3) = −Σ_{a in s}
/// strain.rows[atoms[a]] · dE_dG[k, a] (= −∂E_k/∂ε), in the same pass over the centers.
/// OpenMP over centers when `parallel` and the batch is large enough.
void jacobian_forces(const PaddedJacobian<float>& J, const int64_t* atoms, int64_t n, const float* dE_dG, int64_t K,
                     float* forces, bool parallel = true, const StrainJacobian<float>& strain = {},
                     float* virials = nullptr);
void jacobian_forces(const PaddedJacobian<double>& J, const int64_t* atoms, int64_t n, const double* dE_dG, int64_t K,
                     double* forces, bool parallel = true, const StrainJacobian<double>& strain = {},
                     double* virials = nullptr);

/// The vector–Jacobian product of jacobian_forces: grad_dE_dG (K, n, F) = −Σ_r J[atoms[a], r]
/// · grad_forces[k, target] from grad_forces (K, n, 3), with `strain` plus −strain.rows[atoms[a]]
/// · grad_virials[k, structure[a]] from grad_virials (K, n_structures, 3, 3).
void jacobian_forces_vjp(const PaddedJacobian<float>& J, const int64_t* atoms, int64_t n, const float* grad_forces,
                         int64_t K, float* grad_dE_dG, bool parallel = true, const StrainJacobian<float>& strain = {},
                         const float* grad_virials = nullptr);
void jacobian_forces_vjp(const PaddedJacobian<double>& J, const int64_t* atoms, int64_t n, const double* grad_forces,
                         int64_t K, double* grad_dE_dG, bool parallel = true, const StrainJacobian<double>& strain = {},
                         const double* grad_virials = nullptr);

}  // namespace alip
