// The kernels compiled with the build's baseline flags: the variant every CPU of the
// architecture runs (x86-64: the default ISA, SSE2), and the only one elsewhere.
#define ALIP_KERNEL_NAME "baseline"
#define ALIP_KERNEL_NS kernel_baseline
#define ALIP_KERNEL_ISA kIsaBaseline
#include "acsf_variant.hpp"
