// A read-only view of one atomic structure, and the input checks shared by all kernels.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace alip {

/// Thrown for input that cannot be featurized (bindings turn it into ValueError).
struct InvalidInput : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

/// Borrowed pointers to one structure; nothing is owned.
struct StructureView {
    const double* positions = nullptr;  ///< (n_atoms, 3), row-major, Å
    int64_t n_atoms = 0;
    const double* cell = nullptr;  ///< (3, 3), rows are the lattice vectors, Å
    std::array<bool, 3> pbc{false, false, false};
    const int32_t* species = nullptr;  ///< (n_atoms,), indices in [0, n_species)
};

/// Throws InvalidInput for an empty structure, non-finite positions or cell,
/// species out of range, or a degenerate / left-handed cell along periodic axes.
void validate_structure(const StructureView& s, int32_t n_species);

/// Throws InvalidInput naming `what` and `index` unless x is finite. Lives in a file
/// compiled without -ffast-math, so the check is never optimized away.
void check_finite(double x, const char* what, size_t index);

/// Throws InvalidInput unless cutoff is finite and > 0.
void validate_cutoff(double cutoff);

}  // namespace alip
