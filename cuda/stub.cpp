// Compiled instead of cuda/*.cu when alip is built without CUDA (ALIP_CUDA=OFF, the
// default): the GPU entry points exist and raise a clear error (Python: RuntimeError).
#include <stdexcept>

#include "acsf_cuda.hpp"

namespace alip {
namespace cuda {

namespace {
[[noreturn]] void no_cuda() {
    throw std::runtime_error(
        "alip was built without CUDA: the GPU path is not available. Rebuild with nvcc on PATH: "
        "pip install . -C cmake.define.ALIP_CUDA=ON (see README, 'CUDA')");
}
}  // namespace

bool compiled() { return false; }
int device_count() { return 0; }
std::string describe() { return "built without CUDA"; }

struct NeighborList::Impl {};
NeighborList::NeighborList(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
NeighborList::~NeighborList() = default;
int NeighborList::device() const { no_cuda(); }
int64_t NeighborList::n_atoms() const { no_cuda(); }
int64_t NeighborList::n_structures() const { no_cuda(); }
int64_t NeighborList::n_pairs() const { no_cuda(); }
int32_t NeighborList::n_species() const { no_cuda(); }
double NeighborList::cutoff() const { no_cuda(); }
void NeighborList::copy_pairs(int64_t*, int64_t*, int64_t*, double*, double*, void*) const { no_cuda(); }

std::unique_ptr<NeighborList> build_neighbor_list(const DeviceBatch&, double, int32_t, void*) { no_cuda(); }

struct AcsfKernels::Impl {};
AcsfKernels::AcsfKernels(const AcsfSpec&, int) { no_cuda(); }
AcsfKernels::~AcsfKernels() = default;
int AcsfKernels::device() const { no_cuda(); }
int64_t AcsfKernels::n_features() const { no_cuda(); }
void AcsfKernels::values(const NeighborList&, Dtype, void*, void*) const { no_cuda(); }
void AcsfKernels::forces_virial(const NeighborList&, Dtype, const void*, void*, void*, void*) const { no_cuda(); }
void AcsfKernels::jvp(const NeighborList&, Dtype, const void*, const void*, void*, void*) const { no_cuda(); }

}  // namespace cuda
}  // namespace alip
