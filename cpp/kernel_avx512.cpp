// The kernels compiled for AVX-512 (ALIP_AVX512_FEATURES in kernel_variant.hpp) by a
// target pragma around the kernel code only; dispatch.cpp selects it where the CPU and
// the OS support every one of those features. Built on x86-64 when the compiler has it.
#define ALIP_KERNEL_NAME "avx512"
#define ALIP_KERNEL_NS kernel_avx512
#define ALIP_KERNEL_AVX512_TARGET 1
#include "acsf_variant.hpp"
