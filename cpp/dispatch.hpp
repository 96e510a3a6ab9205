// Runtime CPU dispatch of the hot loops. The kernels (acsf_kernel.hpp, acsf_values.hpp,
// acsf_variant.hpp) are compiled once per variant, each in its own namespace
// (kernel_baseline.cpp, kernel_avx2.cpp, kernel_avx512.cpp; kernel_variant.hpp); one
// table of entry points per variant, and kernels() picks one, once, on first use
// (alip._core calls it at import):
//   * the best variant this CPU and OS can run (cpuid and XCR0 via __builtin_cpu_supports),
//   * or the one named by the environment variable ALIP_KERNEL (baseline, avx2, avx512;
//     "auto" or empty: the default), which must be compiled in and runnable here, else
//     InvalidInput (the import fails with the reason).
// A build with one variant (not x86-64, or a compiler without the target pragmas) has
// no choice to make.
#pragma once

#include <string>
#include <vector>

#include "acsf.hpp"
#include "include/alip/jacobian.hpp"
#include "include/alip/mlp.hpp"

/// Every ISA extension each variant may use (kernel_variant.hpp's target pragma);
/// cpu_isa() checks each of them at runtime. AVX-512 includes AVX2.
#define ALIP_AVX2_FEATURES "avx2,avx,fma,bmi,bmi2,popcnt"
#define ALIP_AVX512_FEATURES "avx512f,avx512dq,avx512bw,avx512vl,avx512cd,avx2,avx,fma,bmi,bmi2,popcnt"

namespace alip {

/// What a variant needs from the CPU, in increasing order.
enum KernelIsa : int { kIsaBaseline = 0, kIsaAvx2 = 1, kIsaAvx512 = 2 };

/// The entry points of one compiled variant.
struct KernelTable {
    const char* name;
    const char* simd;  ///< the SIMD backend of simd.hpp: avx512, avx2, neon or scalar
    int isa;           ///< KernelIsa: refused on a CPU below it
    void (*acsf_values)(const detail::AcsfTables& t, const StructureView& s, const NeighborList& nl, double* out,
                        bool parallel);
    void (*acsf_gradients)(const detail::AcsfTables& t, const StructureView& s, const NeighborList& nl,
                           const std::vector<int64_t>& rows, const GradientOutput& out, bool parallel);
    void (*acsf_forces_virial)(const detail::AcsfTables& t, const StructureView& s, const NeighborList& nl,
                               const double* dE_dG, double* forces, double* virial, bool parallel, VjpRhs rhs);
    // jacobian.hpp's contraction and its VJP, float and double (inputs validated by jacobian.cpp)
    void (*jacobian_forces_f32)(const PaddedJacobian<float>& J, const int64_t* atoms, int64_t n, const float* dE_dG,
                                int64_t K, float* forces, bool parallel, const StrainJacobian<float>& strain,
                                float* virials);
    void (*jacobian_forces_f64)(const PaddedJacobian<double>& J, const int64_t* atoms, int64_t n, const double* dE_dG,
                                int64_t K, double* forces, bool parallel, const StrainJacobian<double>& strain,
                                double* virials);
    void (*jacobian_vjp_f32)(const PaddedJacobian<float>& J, const int64_t* atoms, int64_t n, const float* grad_forces,
                             int64_t K, float* grad_dE_dG, bool parallel, const StrainJacobian<float>& strain,
                             const float* grad_virials);
    void (*jacobian_vjp_f64)(const PaddedJacobian<double>& J, const int64_t* atoms, int64_t n,
                             const double* grad_forces, int64_t K, double* grad_dE_dG, bool parallel,
                             const StrainJacobian<double>& strain, const double* grad_virials);
    // mlp.hpp's stacked networks and their VJP, float and double (inputs validated by mlp.cpp)
    void (*mlp_f32)(const StackedMlp<float>& net, const float* x, int64_t n, bool x_per_member, float* out, float* grad,
                    bool parallel);
    void (*mlp_f64)(const StackedMlp<double>& net, const double* x, int64_t n, bool x_per_member, double* out,
                    double* grad, bool parallel);
    void (*mlp_vjp_f32)(const StackedMlp<float>& net, const float* x, int64_t n, bool x_per_member, const float* g_out,
                        const float* g_grad, float* const* grad_weights, float* const* grad_biases, bool parallel);
    void (*mlp_vjp_f64)(const StackedMlp<double>& net, const double* x, int64_t n, bool x_per_member,
                        const double* g_out, const double* g_grad, double* const* grad_weights,
                        double* const* grad_biases, bool parallel);
};

/// The selected variant (chosen on the first call; throws InvalidInput for a bad ALIP_KERNEL).
const KernelTable& kernels();

/// The compiled variant called `name`, or nullptr (tests run each variant directly;
/// check its `isa` against cpu_isa() before calling it).
const KernelTable* find_kernel(const std::string& name);

/// Names of the variants compiled into this build, baseline first.
std::vector<std::string> kernel_variants();

/// The best KernelIsa this CPU (and OS) supports.
int cpu_isa();

/// The decision itself, without side effects (tests call it with a pretend CPU): the
/// variant for ALIP_KERNEL=`requested` (empty or "auto": the default) on a CPU of `isa`.
std::string select_kernel_variant(const std::string& requested, int isa);

}  // namespace alip
