// Runtime plumbing of the CUDA build: errors, device and pointer checks, allocation,
// build description, neighbor-list lifetime.
#include <sstream>

#include "common.cuh"
#include "structure.hpp"

#ifndef ALIP_CUDA_ARCHITECTURES
#define ALIP_CUDA_ARCHITECTURES "unknown"
#endif

namespace alip {
namespace cuda {

namespace detail {

void throw_cuda(cudaError_t err, const char* what, const char* file, int line) {
    cudaGetLastError();  // clear a non-sticky error so that later calls start clean
    std::ostringstream msg;
    switch (err) {
        case cudaErrorNoDevice:
            msg << "no CUDA device is visible (alip's CUDA kernels need an NVIDIA GPU)";
            break;
        case cudaErrorInsufficientDriver: {
            int driver = 0;
            if (cudaDriverGetVersion(&driver) != cudaSuccess) cudaGetLastError();
            if (driver == 0) msg << "no NVIDIA driver found (alip's CUDA kernels need an NVIDIA GPU and its driver)";
            else
                msg << "the NVIDIA driver is older than the CUDA runtime alip was built with (" << describe()
                    << "); update the driver or rebuild alip with a matching CUDA toolkit";
            break;
        }
        case cudaErrorMemoryAllocation:
            msg << "out of GPU memory";
            break;
        case cudaErrorNoKernelImageForDevice:
            msg << "alip's CUDA kernels were not compiled for this GPU (compiled for " << ALIP_CUDA_ARCHITECTURES
                << "); rebuild with -C cmake.define.CMAKE_CUDA_ARCHITECTURES=<arch>";
            break;
        default:
            msg << "CUDA error";
            break;
    }
    msg << " [" << cudaGetErrorName(err) << ": " << cudaGetErrorString(err) << " in " << what << " at " << file << ":"
        << line << "]";
    throw std::runtime_error(msg.str());
}

DeviceGuard::DeviceGuard(int device) {
    ALIP_CUDA_CHECK(cudaGetDevice(&previous_));
    if (device != previous_) {
        ALIP_CUDA_CHECK(cudaSetDevice(device));
        changed_ = true;
    }
}

DeviceGuard::~DeviceGuard() {
    if (changed_) cudaSetDevice(previous_);
}

int device_of(const void* ptr, const char* name) {
    if (ptr == nullptr) throw InvalidInput(std::string(name) + " is required (null pointer)");
    cudaPointerAttributes attr{};
    ALIP_CUDA_CHECK(cudaPointerGetAttributes(&attr, ptr));
    if (attr.type != cudaMemoryTypeDevice && attr.type != cudaMemoryTypeManaged) {
        throw InvalidInput(std::string(name) + " is not in GPU memory (expected a CUDA device pointer)");
    }
    return attr.device;
}

void check_on_device(const void* ptr, int device, const char* name) {
    if (ptr == nullptr) return;
    const int d = device_of(ptr, name);
    if (d != device) {
        std::ostringstream msg;
        msg << name << " is on GPU " << d << " but the computation runs on GPU " << device;
        throw InvalidInput(msg.str());
    }
}

namespace {
bool pools_supported() {
    int device = 0, supported = 0;
    if (cudaGetDevice(&device) != cudaSuccess) return false;
    if (cudaDeviceGetAttribute(&supported, cudaDevAttrMemoryPoolsSupported, device) != cudaSuccess) {
        cudaGetLastError();
        return false;
    }
    return supported != 0;
}
}  // namespace

void StreamUses::record(cudaStream_t stream) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& u : uses_) {
        if (u.first == stream) {
            ALIP_CUDA_CHECK(cudaEventRecord(u.second, stream));
            return;
        }
    }
    cudaEvent_t ev = nullptr;
    ALIP_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    const cudaError_t err = cudaEventRecord(ev, stream);
    if (err != cudaSuccess) {
        cudaEventDestroy(ev);
        throw_cuda(err, "cudaEventRecord(ev, stream)", __FILE__, __LINE__);
    }
    uses_.emplace_back(stream, ev);
}

void StreamUses::wait() noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& u : uses_) {
        cudaEventSynchronize(u.second);
        cudaEventDestroy(u.second);
    }
    uses_.clear();
    cudaGetLastError();
}

void allocate_bytes(void** ptr, size_t bytes, cudaStream_t stream) {
    if (pools_supported()) ALIP_CUDA_CHECK(cudaMallocAsync(ptr, bytes, stream));
    else ALIP_CUDA_CHECK(cudaMalloc(ptr, bytes));
}

void release_bytes(void* ptr, cudaStream_t stream) noexcept {
    cudaError_t err = pools_supported() ? cudaFreeAsync(ptr, stream) : cudaFree(ptr);
    if (err != cudaSuccess) cudaGetLastError();  // never throw from a destructor
}

}  // namespace detail

bool compiled() { return true; }

int device_count() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
}

std::string describe() {
    int runtime = 0, driver = 0;
    cudaRuntimeGetVersion(&runtime);
    if (cudaDriverGetVersion(&driver) != cudaSuccess) cudaGetLastError();
    std::ostringstream s;
    s << "CUDA runtime " << runtime / 1000 << "." << (runtime % 1000) / 10 << ", driver ";
    if (driver > 0) s << driver / 1000 << "." << (driver % 1000) / 10;
    else s << "none";
    s << ", architectures " << ALIP_CUDA_ARCHITECTURES;
    return s.str();
}

NeighborList::Impl::~Impl() {
    int previous = -1;
    const bool switched = cudaGetDevice(&previous) == cudaSuccess && previous != device &&
                          cudaSetDevice(device) == cudaSuccess;
    uses_.wait();
    // Every use has finished (and construction ended with a synchronization), so the
    // buffers can be released in any stream order.
    for (auto* b : {&seg, &neighbor, &shift, &structure}) b->reset_on(nullptr);
    for (auto* b : {&center_offset, &atom_offsets}) b->reset_on(nullptr);
    for (auto* b : {&vector, &distance}) b->reset_on(nullptr);
    cudaGetLastError();
    if (switched) cudaSetDevice(previous);
}

}  // namespace cuda
}  // namespace alip
