// The kernels compiled for AVX-512 (ALIP_AVX512_FEATURES) by a target pragma around the
// kernel code only, over the AVX-512 backend of simd.hpp (8 doubles); dispatch.cpp
// selects it where the CPU and the OS support every one of those features.
#define ALIP_KERNEL_NAME "avx512"
#define ALIP_KERNEL_NS kernel_avx512
#define ALIP_KERNEL_ISA kIsaAvx512
#define ALIP_KERNEL_TARGET_FEATURES ALIP_AVX512_FEATURES
#define ALIP_SIMD_AVX512 1
#include "acsf_variant.hpp"
