// The one place where the kernel variant is chosen (see dispatch.hpp).
#include "dispatch.hpp"

#include <cstdlib>
#include <string_view>

namespace alip {

namespace kernel_baseline {
extern const KernelTable table;
}
#if ALIP_DISPATCH_X86
namespace kernel_avx2 {
extern const KernelTable table;
}
namespace kernel_avx512 {
extern const KernelTable table;
}
#endif

namespace {

/// Compiled variants in increasing order of preference (and of what they need).
const KernelTable* const kTables[] = {
    &kernel_baseline::table,
#if ALIP_DISPATCH_X86
    &kernel_avx2::table,
    &kernel_avx512::table,
#endif
};

const char* const kIsaNames[] = {"baseline", "avx2", "avx512"};
const char* const kIsaFeatures[] = {"", ALIP_AVX2_FEATURES, ALIP_AVX512_FEATURES};

std::string variant_list() {
    std::string out;
    for (const KernelTable* k : kTables) out += (out.empty() ? "" : ", ") + std::string(k->name);
    return out;
}

}  // namespace

int cpu_isa() {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    // GCC's and Clang's runtimes report AVX/AVX2/FMA only when XCR0 says the OS saves the
    // YMM state, and AVX-512 features only when it saves the opmask and ZMM state
    // (cpuid + xgetbv): these are "usable", not merely "present".
    static_assert(
        std::string_view(ALIP_AVX2_FEATURES) == "avx2,avx,fma,bmi,bmi2,popcnt" &&
            std::string_view(ALIP_AVX512_FEATURES) == "avx512f,avx512dq,avx512bw,avx512vl,avx512cd," ALIP_AVX2_FEATURES,
        "the runtime checks below must test every feature of the variants' target lists");
    __builtin_cpu_init();
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("avx") &&
                      __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi") &&
                      __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("popcnt");
    const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                        __builtin_cpu_supports("avx512cd");
    return avx512 ? kIsaAvx512 : avx2 ? kIsaAvx2 : kIsaBaseline;
#else
    return kIsaBaseline;
#endif
}

const KernelTable* find_kernel(const std::string& name) {
    for (const KernelTable* k : kTables)
        if (name == k->name) return k;
    return nullptr;
}

std::vector<std::string> kernel_variants() {
    std::vector<std::string> names;
    for (const KernelTable* k : kTables) names.emplace_back(k->name);
    return names;
}

std::string select_kernel_variant(const std::string& requested, int isa) {
    if (requested.empty() || requested == "auto") {
        const KernelTable* best = kTables[0];
        for (const KernelTable* k : kTables)
            if (k->isa <= isa) best = k;
        return best->name;
    }
    for (const KernelTable* k : kTables) {
        if (requested != k->name) continue;
        if (k->isa > isa)
            throw InvalidInput("ALIP_KERNEL=" + requested + ": this CPU (or its OS) does not support " +
                               kIsaNames[k->isa] + " (needs " + kIsaFeatures[k->isa] +
                               "); use ALIP_KERNEL=auto or a lesser variant");
        return k->name;
    }
    throw InvalidInput("ALIP_KERNEL='" + requested +
                       "' is not a kernel variant of this build; use auto or one of: " + variant_list());
}

const KernelTable& kernels() {
    static const KernelTable* const selected = [] {
        const char* env = std::getenv("ALIP_KERNEL");
        const std::string name = select_kernel_variant(env ? env : "", cpu_isa());
        for (const KernelTable* k : kTables)
            if (name == k->name) return k;
        return kTables[0];  // unreachable: select_kernel_variant returns a compiled name
    }();
    return *selected;
}

}  // namespace alip
