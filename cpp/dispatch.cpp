// The one place where the kernel variant is chosen (see dispatch.hpp).
#include "dispatch.hpp"

#include <cstdlib>
#include <string_view>

namespace alip {

namespace kernel_baseline {
extern const KernelTable table;
}
#if ALIP_DISPATCH_AVX512
namespace kernel_avx512 {
extern const KernelTable table;
}
#endif

namespace {

/// Compiled variants, baseline first, then in order of preference.
const KernelTable* const kTables[] = {
    &kernel_baseline::table,
#if ALIP_DISPATCH_AVX512
    &kernel_avx512::table,
#endif
};

std::string variant_list() {
    std::string out;
    for (const KernelTable* k : kTables) out += (out.empty() ? "" : ", ") + std::string(k->name);
    return out;
}

}  // namespace

bool cpu_has_avx512() {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    // GCC's and Clang's runtimes report an AVX-512 feature only when XCR0 says the OS
    // saves the opmask and ZMM state (cpuid + xgetbv), so this is "usable", not "present".
    static_assert(std::string_view(ALIP_AVX512_FEATURES) ==
                      "avx512f,avx512dq,avx512bw,avx512vl,avx512cd,avx2,avx,fma,bmi,bmi2,popcnt",
                  "the runtime check below must test every feature of ALIP_AVX512_FEATURES");
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("avx") &&
           __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2") &&
           __builtin_cpu_supports("popcnt");
#else
    return false;
#endif
}

std::vector<std::string> kernel_variants() {
    std::vector<std::string> names;
    for (const KernelTable* k : kTables) names.emplace_back(k->name);
    return names;
}

std::string select_kernel_variant(const std::string& requested, bool has_avx512) {
    if (requested.empty() || requested == "auto") {
        const KernelTable* best = nullptr;
        for (const KernelTable* k : kTables)
            if (!k->avx512 || has_avx512) best = k;
        if (best == nullptr)  // a -march=native build (ALIP_NATIVE=ON) on another CPU
            throw InvalidInput(std::string("alip's compiled kernel (") + kTables[0]->name +
                               ") uses AVX-512, which this CPU (or its OS) does not support; it was built with "
                               "ALIP_NATIVE=ON for another machine: reinstall without it");
        return best->name;
    }
    for (const KernelTable* k : kTables) {
        if (requested != k->name) continue;
        if (k->avx512 && !has_avx512)
            throw InvalidInput("ALIP_KERNEL=" + requested +
                               ": this CPU (or its OS) does not support AVX-512 (needs " ALIP_AVX512_FEATURES
                               "); use ALIP_KERNEL=auto or baseline");
        return k->name;
    }
    throw InvalidInput("ALIP_KERNEL='" + requested + "' is not a kernel variant of this build; use auto or one of: " +
                       variant_list());
}

const KernelTable& kernels() {
    static const KernelTable* const selected = [] {
        const char* env = std::getenv("ALIP_KERNEL");
        const std::string name = select_kernel_variant(env ? env : "", cpu_has_avx512());
        for (const KernelTable* k : kTables)
            if (name == k->name) return k;
        return kTables[0];  // unreachable: select_kernel_variant returns a compiled name
    }();
    return *selected;
}

}  // namespace alip
