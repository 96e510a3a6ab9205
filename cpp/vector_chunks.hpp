// The vector width of a kernel variant and the loop that covers a row of values with
// register tiles of it (jacobian_kernel.hpp's VJP, mlp_kernel.hpp's products): included by
// the kernel headers inside a variant TU, after kernel_variant.hpp's configuration.
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernel_variant.hpp"

ALIP_KERNEL_BEGIN

// bytes of one vector register of this variant
#if ALIP_SIMD_AVX512
constexpr int kVectorBytes = 64;
#elif ALIP_SIMD_AVX2
constexpr int kVectorBytes = 32;
#else
constexpr int kVectorBytes = 16;
#endif

/// chunk(std::integral_constant<int, W>, j0) for chunks [j0, j0 + W) covering [0, width): one
/// vector of T wide, then the rest in chunks of 8, 4, 2 and 1 (each at most once), so that W
/// is a compile-time width for the chunk's register tile.
template <class T, class Chunk>
inline void for_vector_chunks(int64_t width, Chunk&& chunk) {
    constexpr int L = kVectorBytes / int(sizeof(T));
    int64_t j0 = 0;
    for (; j0 + L <= width; j0 += L) chunk(std::integral_constant<int, L>{}, j0);
    if constexpr (L > 8)
        if (j0 + 8 <= width) chunk(std::integral_constant<int, 8>{}, j0), j0 += 8;
    if constexpr (L > 4)
        if (j0 + 4 <= width) chunk(std::integral_constant<int, 4>{}, j0), j0 += 4;
    if constexpr (L > 2)
        if (j0 + 2 <= width) chunk(std::integral_constant<int, 2>{}, j0), j0 += 2;
    if (j0 < width) chunk(std::integral_constant<int, 1>{}, j0);
}

ALIP_KERNEL_END
