// Dense layers and activations of the committee's MLPs on blocks of atoms, double precision.
// Compiled in its own TU with -ffast-math (vector tanh/exp from glibc's libmvec) and, on
// x86-64 with GCC, one clone per ISA (AVX-512, AVX2, baseline) picked at load time.
#pragma once

#include <cstdint>

namespace alip_lammps {

enum class Activation { Tanh, Silu, Softplus, Celu };

/// z (nb, no; row stride ldz) = x (nb, ni; row stride ldx) @ W (ni, no) + b (no)
void dense_forward(const double* x, int64_t ldx, const double* W, const double* b, int ni, int no, int64_t nb,
                   double* z, int64_t ldz);

/// z <- act(z) and d = act'(z) for nb rows of no entries (row stride ld); torch's definitions
/// (softplus: beta 1, threshold 20; celu: alpha 1).
void activate(Activation a, double* z, double* d, int no, int64_t nb, int64_t ld);

/// out (nb, ni; stride ld) = (g * d) (nb, no; stride ld) @ W^T, W (ni, no); d may be null (all ones)
void dense_backward(const double* g, const double* d, const double* W, int ni, int no, int64_t nb, double* out,
                    int64_t ld);

}  // namespace alip_lammps
