// The kernels compiled for AVX2 + FMA (ALIP_AVX2_FEATURES, x86-64-v3 CPUs without
// AVX-512: Haswell to Alder Lake, Zen 1-3) by a target pragma around the kernel code
// only: the portable loops, vectorized 4 wide, with glibc's AVX2 exp. dispatch.cpp
// selects it where the CPU and the OS support every one of those features.
#define ALIP_KERNEL_NAME "avx2"
#define ALIP_KERNEL_NS kernel_avx2
#define ALIP_KERNEL_ISA kIsaAvx2
#define ALIP_KERNEL_TARGET_FEATURES ALIP_AVX2_FEATURES
#define ALIP_SIMD_AVX2 1
#include "acsf_variant.hpp"
