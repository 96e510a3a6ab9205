// Configuration of one compiled variant of the kernels (see dispatch.hpp). Included by
// acsf_kernel.hpp, acsf_values.hpp and acsf_variant.hpp; the including TU
// (cpp/kernel_*.cpp) defines first:
//   ALIP_KERNEL_NS      the variant's namespace inside alip (one per TU: no ODR clash)
//   ALIP_KERNEL_NAME    its name in build_info() and ALIP_KERNEL ("baseline", "avx2", ...)
//   ALIP_KERNEL_ISA     what the CPU needs: kIsaBaseline, kIsaAvx2 or kIsaAvx512
//   ALIP_KERNEL_TARGET_FEATURES  (optional) compile the kernel code for these ISA
//                       extensions by a target pragma (ALIP_AVX2_FEATURES, ...)
// The TU itself is compiled with the baseline flags. The pragma covers only the code
// between ALIP_KERNEL_BEGIN and ALIP_KERNEL_END, after every #include: the standard
// library's inline functions and templates stay baseline code, so the copy the linker
// keeps of, e.g., std::vector<double>::resize never holds AVX instructions, whichever TU
// it came from (tests/test_kernel_dispatch.py checks the object). Compiling the whole TU
// with -mavx512f would not guarantee that.
#pragma once

#if !defined(ALIP_KERNEL_NS) || !defined(ALIP_KERNEL_NAME) || !defined(ALIP_KERNEL_ISA)
#error "kernel headers are compiled through a variant TU (cpp/kernel_*.cpp) that defines ALIP_KERNEL_NS"
#endif

#include "dispatch.hpp"  // feature lists, KernelTable

#define ALIP_STRINGIFY(...) #__VA_ARGS__
#define ALIP_PRAGMA(...) _Pragma(ALIP_STRINGIFY(__VA_ARGS__))

#if defined(ALIP_KERNEL_TARGET_FEATURES)
#if defined(__clang__)
#define ALIP_KERNEL_BEGIN                                                                                        \
    ALIP_PRAGMA(clang attribute push(__attribute__((target(ALIP_KERNEL_TARGET_FEATURES))), apply_to = function)) \
    namespace alip {                                                                                             \
    namespace ALIP_KERNEL_NS {
#define ALIP_KERNEL_END \
    }                   \
    }                   \
    ALIP_PRAGMA(clang attribute pop)
#elif defined(__GNUC__)
#define ALIP_KERNEL_BEGIN                                \
    ALIP_PRAGMA(GCC push_options)                        \
    ALIP_PRAGMA(GCC target(ALIP_KERNEL_TARGET_FEATURES)) \
    namespace alip {                                     \
    namespace ALIP_KERNEL_NS {
#define ALIP_KERNEL_END \
    }                   \
    }                   \
    ALIP_PRAGMA(GCC pop_options)
#else
#error "ALIP_KERNEL_TARGET_FEATURES needs GCC or Clang"
#endif
#else
#define ALIP_KERNEL_BEGIN \
    namespace alip {      \
    namespace ALIP_KERNEL_NS {
#define ALIP_KERNEL_END \
    }                   \
    }
#endif

// The SIMD backend of simd.hpp: the variant's TU may set ALIP_SIMD_AVX512 or
// ALIP_SIMD_AVX2 (with the matching target pragma); otherwise the build's own flags
// decide: NEON on aarch64, AVX-512 / AVX2 when the baseline flags target them, else scalar.
#if !defined(ALIP_SIMD_AVX512) && !defined(ALIP_SIMD_AVX2) && !defined(ALIP_SIMD_NEON)
#if defined(__aarch64__) && defined(__ARM_NEON)
#define ALIP_SIMD_NEON 1
#elif defined(__AVX512F__) && defined(__AVX512DQ__)
#define ALIP_SIMD_AVX512 1
#elif defined(__AVX2__) && defined(__FMA__)
#define ALIP_SIMD_AVX2 1
#endif
#endif
#if !defined(ALIP_SIMD_AVX512)
#define ALIP_SIMD_AVX512 0
#endif
#if !defined(ALIP_SIMD_AVX2)
#define ALIP_SIMD_AVX2 0
#endif
#if !defined(ALIP_SIMD_NEON)
#define ALIP_SIMD_NEON 0
#endif
#define ALIP_SIMD_SCALAR (!(ALIP_SIMD_AVX512 || ALIP_SIMD_AVX2 || ALIP_SIMD_NEON))
