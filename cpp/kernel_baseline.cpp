// The kernels compiled with the build's baseline flags: the variant every CPU of the
// architecture runs, and the only one elsewhere. Its simd.hpp backend follows those
// flags: scalar on x86-64 (SSE2), NEON on aarch64.
#define ALIP_KERNEL_NAME "baseline"
#define ALIP_KERNEL_NS kernel_baseline
#define ALIP_KERNEL_ISA kIsaBaseline
#include "acsf_variant.hpp"
