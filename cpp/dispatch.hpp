// Runtime CPU dispatch of the hot loops. The kernels (acsf_kernel.hpp, acsf_values.hpp,
// acsf_variant.hpp) are compiled once per variant, each in its own namespace
// (kernel_baseline.cpp, kernel_avx512.cpp); one table of entry points per variant, and
// kernels() picks one, once, on first use (alip._core calls it at import):
//   * the best variant this CPU and OS can run (AVX-512: cpuid and XCR0 via
//     __builtin_cpu_supports), or
//   * the one named by the environment variable ALIP_KERNEL (baseline, avx512; "auto"
//     or empty: the default), which must be compiled in and runnable here, else
//     InvalidInput (the import fails with the reason).
// A build with one variant (not x86-64, a compiler without the target pragmas, or
// ALIP_NATIVE=ON) has no choice to make.
#pragma once

#include <string>
#include <vector>

#include "acsf.hpp"

/// Every ISA extension the AVX-512 variant may use (kernel_variant.hpp's target pragma);
/// cpu_has_avx512() checks each of them at runtime.
#define ALIP_AVX512_FEATURES "avx512f,avx512dq,avx512bw,avx512vl,avx512cd,avx2,avx,fma,bmi,bmi2,popcnt"

namespace alip {

/// The entry points of one compiled variant.
struct KernelTable {
    const char* name;
    bool avx512;  ///< uses AVX-512 instructions: refused on a CPU without them
    void (*acsf_values)(const detail::AcsfTables& t, const StructureView& s, const NeighborList& nl, double* out,
                        bool parallel);
    void (*acsf_gradients)(const detail::AcsfTables& t, const StructureView& s, const NeighborList& nl,
                           const std::vector<int64_t>& rows, const GradientOutput& out, bool parallel);
    void (*acsf_forces_virial)(const detail::AcsfTables& t, const StructureView& s, const NeighborList& nl,
                               const double* dE_dG, double* forces, double* virial, bool parallel, VjpRhs rhs);
};

/// The selected variant (chosen on the first call; throws InvalidInput for a bad ALIP_KERNEL).
const KernelTable& kernels();

/// Names of the variants compiled into this build, baseline first.
std::vector<std::string> kernel_variants();

/// Whether this CPU (and OS) can run the AVX-512 variant.
bool cpu_has_avx512();

/// The decision itself, without side effects (tests call it with a pretend CPU):
/// the variant for ALIP_KERNEL=`requested` (empty or "auto": the default).
std::string select_kernel_variant(const std::string& requested, bool has_avx512);

}  // namespace alip
