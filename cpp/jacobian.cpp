// jacobian.hpp's entry points: validate, then run the selected kernel variant.
#include "include/alip/jacobian.hpp"

#include <string>

#include "dispatch.hpp"
#include "structure.hpp"

namespace alip {
namespace {

/// InvalidInput unless J, atoms and the batch fit together: every atom and target in
/// range, and every target of a center inside the batch (whole structures, consecutive).
template <class T>
void validate(const PaddedJacobian<T>& J, const int64_t* atoms, int64_t n, const T* in, const T* out, int64_t K) {
    if (J.n_all < 0 || J.max_rows < 0 || J.n_features < 1 || n < 0 || K < 1)
        throw InvalidInput("jacobian_forces: n_all, max_rows, n >= 0 and n_features, K >= 1 required");
    if ((n > 0 && (atoms == nullptr || in == nullptr || out == nullptr)) ||
        (J.n_all * J.max_rows > 0 && (J.rows == nullptr || J.targets == nullptr)))
        throw InvalidInput("jacobian_forces: null pointer");
    for (int64_t a = 0; a < n; ++a) {
        const int64_t c = atoms[a];
        if (c < 0 || c >= J.n_all)
            throw InvalidInput("jacobian_forces: atom " + std::to_string(a) + " is Jacobian row " + std::to_string(c) +
                               ", outside [0, " + std::to_string(J.n_all) + ")");
        const int64_t* t = J.targets + c * J.max_rows;
        bool padding = false;
        for (int64_t r = 0; r < J.max_rows; ++r) {
            if (t[r] == J.n_all) {
                padding = true;
                continue;
            }
            const int64_t local = a + t[r] - c;
            if (padding || t[r] < 0 || t[r] > J.n_all || local < 0 || local >= n)
                throw InvalidInput("jacobian_forces: row " + std::to_string(r) + " of center " + std::to_string(c) +
                                   (padding ? " follows a padding row"
                                            : " moves atom " + std::to_string(t[r]) +
                                                  ", outside the batch (whole structures, their atoms consecutive)"));
        }
    }
}

/// InvalidInput unless the strain term fits the batch: every atom's structure in range
/// and its output (virials or their gradient) given.
template <class T>
void validate_strain(const StrainJacobian<T>& strain, int64_t n, const T* virials) {
    if (strain.rows == nullptr) return;
    if (strain.n_structures < 0 || (n > 0 && strain.structure == nullptr) ||
        (strain.n_structures > 0 && virials == nullptr))
        throw InvalidInput("jacobian_forces: strain rows need the atoms' structures and virials");
    for (int64_t a = 0; a < n; ++a)
        if (strain.structure[a] < 0 || strain.structure[a] >= strain.n_structures)
            throw InvalidInput("jacobian_forces: atom " + std::to_string(a) + " is in structure " +
                               std::to_string(strain.structure[a]) + ", outside [0, " +
                               std::to_string(strain.n_structures) + ")");
}

}  // namespace

void jacobian_forces(const PaddedJacobian<float>& J, const int64_t* atoms, int64_t n, const float* dE_dG, int64_t K,
                     float* forces, bool parallel, const StrainJacobian<float>& strain, float* virials) {
    validate(J, atoms, n, dE_dG, forces, K);
    validate_strain(strain, n, static_cast<const float*>(virials));
    kernels().jacobian_forces_f32(J, atoms, n, dE_dG, K, forces, parallel, strain, virials);
}

void jacobian_forces(const PaddedJacobian<double>& J, const int64_t* atoms, int64_t n, const double* dE_dG, int64_t K,
                     double* forces, bool parallel, const StrainJacobian<double>& strain, double* virials) {
    validate(J, atoms, n, dE_dG, forces, K);
    validate_strain(strain, n, static_cast<const double*>(virials));
    kernels().jacobian_forces_f64(J, atoms, n, dE_dG, K, forces, parallel, strain, virials);
}

void jacobian_forces_vjp(const PaddedJacobian<float>& J, const int64_t* atoms, int64_t n, const float* grad_forces,
                         int64_t K, float* grad_dE_dG, bool parallel, const StrainJacobian<float>& strain,
                         const float* grad_virials) {
    validate(J, atoms, n, grad_forces, grad_dE_dG, K);
    validate_strain(strain, n, grad_virials);
    kernels().jacobian_vjp_f32(J, atoms, n, grad_forces, K, grad_dE_dG, parallel, strain, grad_virials);
}

void jacobian_forces_vjp(const PaddedJacobian<double>& J, const int64_t* atoms, int64_t n, const double* grad_forces,
                         int64_t K, double* grad_dE_dG, bool parallel, const StrainJacobian<double>& strain,
                         const double* grad_virials) {
    validate(J, atoms, n, grad_forces, grad_dE_dG, K);
    validate_strain(strain, n, grad_virials);
    kernels().jacobian_vjp_f64(J, atoms, n, grad_forces, K, grad_dE_dG, parallel, strain, grad_virials);
}

}  // namespace alip
