// The kernels compiled with the build's baseline flags: the variant every CPU of the
// architecture runs (x86-64: the default ISA, SSE2). With ALIP_NATIVE=ON, CMake compiles
// this file with -march=native instead and names the variant "native" (the only one).
#ifndef ALIP_KERNEL_NAME
#define ALIP_KERNEL_NAME "baseline"
#endif
#define ALIP_KERNEL_NS kernel_baseline
#include "acsf_variant.hpp"
