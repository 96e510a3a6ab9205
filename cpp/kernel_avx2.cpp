// The kernels compiled for AVX2 + FMA (ALIP_AVX2_FEATURES, x86-64-v3 CPUs without
// AVX-512: Haswell to Alder Lake, Zen 1-3) by a target pragma around the kernel code
// only, over the AVX2 backend of simd.hpp (4 doubles; compress by a permutation table).
// dispatch.cpp selects it where the CPU and the OS support every one of those features.
#define ALIP_KERNEL_NAME "avx2"
#define ALIP_KERNEL_NS kernel_avx2
#define ALIP_KERNEL_ISA kIsaAvx2
#define ALIP_KERNEL_TARGET_FEATURES ALIP_AVX2_FEATURES
#define ALIP_SIMD_AVX2 1
#include "acsf_variant.hpp"
