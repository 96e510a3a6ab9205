// Shared by the CUDA translation units: error checks, device guard, stream-ordered
// buffers, the device layout of a neighbor list.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "acsf_cuda.hpp"

namespace alip {
namespace cuda {
namespace detail {

/// Throws std::runtime_error naming the failed call (Python: RuntimeError).
[[noreturn]] void throw_cuda(cudaError_t err, const char* what, const char* file, int line);

#define ALIP_CUDA_CHECK(expr)                                                              \
    do {                                                                                   \
        const cudaError_t alip_err_ = (expr);                                              \
        if (alip_err_ != cudaSuccess) ::alip::cuda::detail::throw_cuda(alip_err_, #expr, __FILE__, __LINE__); \
    } while (0)

/// Checks the launch of the last kernel (configuration errors; not asynchronous faults).
#define ALIP_CUDA_LAUNCH_CHECK() ALIP_CUDA_CHECK(cudaGetLastError())

/// Makes `device` current for the lifetime of the guard.
class DeviceGuard {
public:
    explicit DeviceGuard(int device);
    ~DeviceGuard();
    DeviceGuard(const DeviceGuard&) = delete;
    DeviceGuard& operator=(const DeviceGuard&) = delete;

private:
    int previous_ = -1;
    bool changed_ = false;
};

/// The device that holds `ptr`; throws InvalidInput unless it is device (or managed)
/// memory, so a host pointer never reaches a kernel.
int device_of(const void* ptr, const char* name);

/// Throws InvalidInput unless `ptr` is nullptr or memory usable on `device`.
void check_on_device(const void* ptr, int device, const char* name);

/// Device memory freed at scope end; stream-ordered where the device supports memory
/// pools (cudaMallocAsync / cudaFreeAsync on `stream`), plain cudaMalloc otherwise.
template <class T>
class Buffer {
public:
    Buffer() = default;
    Buffer(size_t n, cudaStream_t stream) : n_(n), stream_(stream) {
        if (n > 0) allocate(reinterpret_cast<void**>(&ptr_), n * sizeof(T), stream);
    }
    ~Buffer() { reset(); }
    Buffer(Buffer&& o) noexcept : ptr_(o.ptr_), n_(o.n_), stream_(o.stream_) { o.ptr_ = nullptr, o.n_ = 0; }
    Buffer& operator=(Buffer&& o) noexcept {
        if (this != &o) {
            reset();
            ptr_ = o.ptr_, n_ = o.n_, stream_ = o.stream_;
            o.ptr_ = nullptr, o.n_ = 0;
        }
        return *this;
    }
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;

    T* get() const { return ptr_; }
    size_t size() const { return n_; }
    /// Frees, ordered on the allocation stream.
    void reset() { reset_on(stream_); }
    /// Frees, ordered on `stream` (the caller makes sure no kernel still reads it).
    void reset_on(cudaStream_t stream) {
        if (ptr_ != nullptr) release(ptr_, stream);
        ptr_ = nullptr;
        n_ = 0;
    }
    void zero(cudaStream_t stream) const {
        if (n_ > 0) ALIP_CUDA_CHECK(cudaMemsetAsync(ptr_, 0, n_ * sizeof(T), stream));
    }

private:
    static void allocate(void** ptr, size_t bytes, cudaStream_t stream);
    static void release(void* ptr, cudaStream_t stream) noexcept;
    T* ptr_ = nullptr;
    size_t n_ = 0;
    cudaStream_t stream_ = nullptr;
};

/// The streams on which kernels that read an object's device memory were launched: one
/// event per stream, recorded after each launch. wait() blocks until all of them have
/// completed, so that the memory can then be freed in any stream order (an object may be
/// used on several streams, e.g. torch side streams, and freeing it on its allocation
/// stream alone would not wait for those). Thread-safe: the bindings release the GIL, so
/// two Python threads may launch with one object at the same time.
class StreamUses {
public:
    StreamUses() = default;
    StreamUses(const StreamUses&) = delete;
    StreamUses& operator=(const StreamUses&) = delete;
    ~StreamUses() { wait(); }
    /// Call after the launches on `stream`, with the object's device current.
    void record(cudaStream_t stream);
    /// Waits for every recorded use and destroys the events (never throws).
    void wait() noexcept;

private:
    std::mutex mutex_;
    std::vector<std::pair<cudaStream_t, cudaEvent_t>> uses_;
};

void allocate_bytes(void** ptr, size_t bytes, cudaStream_t stream);
void release_bytes(void* ptr, cudaStream_t stream) noexcept;

template <class T>
void Buffer<T>::allocate(void** ptr, size_t bytes, cudaStream_t stream) {
    allocate_bytes(ptr, bytes, stream);
}
template <class T>
void Buffer<T>::release(void* ptr, cudaStream_t stream) noexcept {
    release_bytes(ptr, stream);
}

template <class T>
std::vector<T> to_host(const T* device_ptr, size_t n, cudaStream_t stream) {
    std::vector<T> out(n);
    if (n > 0) {
        ALIP_CUDA_CHECK(cudaMemcpyAsync(out.data(), device_ptr, n * sizeof(T), cudaMemcpyDeviceToHost, stream));
        ALIP_CUDA_CHECK(cudaStreamSynchronize(stream));
    }
    return out;
}

template <class T>
Buffer<T> to_device(const std::vector<T>& host, cudaStream_t stream) {
    Buffer<T> out(host.size(), stream);
    if (!host.empty())
        ALIP_CUDA_CHECK(
            cudaMemcpyAsync(out.get(), host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice, stream));
    return out;
}

inline int grid_for(int64_t work, int block, int max_blocks = 65535 * 8) {
    int64_t g = (work + block - 1) / block;
    if (g < 1) g = 1;
    if (g > max_blocks) g = max_blocks;
    return int(g);
}

}  // namespace detail

/// Device layout of a neighbor list (see NeighborList). Centers are global atom
/// indices; the pairs of center i are [center_offset[i], center_offset[i + 1]), grouped
/// by neighbor species: species s occupies center_offset[i] + seg[i * (n_species + 1) + s]
/// up to the next segment.
struct NeighborList::Impl {
    int device = 0;
    int64_t n_atoms = 0, n_structures = 0, n_pairs = 0;
    int32_t n_species = 1;
    double cutoff = 0;
    detail::Buffer<int64_t> center_offset;  ///< (N + 1,)
    detail::Buffer<int32_t> seg;            ///< (N, n_species + 1), relative to center_offset[i]
    detail::Buffer<int32_t> neighbor;       ///< (n_pairs,) global j
    detail::Buffer<int32_t> shift;          ///< (n_pairs, 3)
    detail::Buffer<double> vector;          ///< (n_pairs, 3)
    detail::Buffer<double> distance;        ///< (n_pairs,)
    detail::Buffer<int32_t> structure;      ///< (N,) structure of each atom
    detail::Buffer<int64_t> atom_offsets;   ///< (S + 1,) a copy of the batch offsets
    std::vector<int64_t> host_offsets;      ///< (S + 1,)
    /// Records, after kernels that read the list on `stream`, an event that the
    /// destructor waits for before freeing (the list may be used on several streams).
    void record_use(cudaStream_t stream) const { uses_.record(stream); }
    ~Impl();

private:
    mutable detail::StreamUses uses_;
};

}  // namespace cuda
}  // namespace alip
