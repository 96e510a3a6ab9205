// ACSF kernels on the GPU: values, fused VJP (forces and virial from dE/dG) and JVP
// (the backward of forces/virial with respect to dE/dG, for training on forces), with
// the conventions and feature order of cpp/acsf.hpp.
//
// Work decomposition: one warp per center atom (grid-stride over centers).
// - values / JVP: the warp's lanes take the triplets (n1 < n2) of one species-pair block
//   in a flat order, so every lane adds to the same features; each lane accumulates
//   its own column of a per-warp shared-memory table (features x 32 lanes), reduced
//   once per block. Species blocks follow the neighbor list's grouping by species.
// - VJP: the first neighbor n1 of a triplet is uniform across the warp and lanes take
//   the second one; dE/dv of n1 is reduced over the warp once per n1, dE/dv of n2 goes
//   to the lane's own slot of a per-pair buffer. Then lanes take the pairs: forces by
//   atomics on the neighbor (and one per center), the virial per center, reduced per
//   structure in a second kernel.
#include <algorithm>
#include <cmath>
#include <sstream>
#include <vector>

#include "acsf_math.cuh"
#include "acsf_tables.hpp"
#include "common.cuh"

namespace alip {
namespace cuda {

// Named (not anonymous) so that AcsfKernels::Impl may hold these types without
// -Wsubobject-linkage warnings; nothing outside this file uses them.
namespace acsf_kernels {

using namespace acsf_math;
using detail::Buffer;

constexpr int kAccStride = kWarp + 1;  ///< shared accumulator row (padded against bank conflicts)

template <class T>
__device__ inline T warp_sum(T x) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

template <class T>
__global__ void pair_kernel(Tables tab, ListView L, PairData<T> P, const T* displacement, const T* strain,
                            bool tangent) {
    const int lane = threadIdx.x & (kWarp - 1);
    const int64_t warps = int64_t(gridDim.x) * (blockDim.x / kWarp);
    for (int64_t i = blockIdx.x * int64_t(blockDim.x / kWarp) + threadIdx.x / kWarp; i < L.n_atoms; i += warps)
        pair_lane(tab, L, P, i, lane, displacement, strain, tangent);
}

/// Writes the column sums of the first n rows of the warp's table to g[0..n) and clears it.
template <class T>
__device__ inline void flush(T* acc, int n, T* g, int lane) {
    __syncwarp();
    for (int k = lane; k < n; k += kWarp) {
        T s = T(0);
        for (int l = 0; l < kWarp; ++l) s += acc[k * kAccStride + l];
        g[k] = s;
    }
    __syncwarp();
    for (int k = 0; k < n; ++k) acc[k * kAccStride + lane] = T(0);
    __syncwarp();
}

/// values (kJvp = false) or JVP (kJvp = true) of every center: one warp per center, one
/// (features x 33) table per warp, in dynamic shared memory, or, when global_acc is not
/// null (more functions than shared memory holds), at global_acc + (global warp index) *
/// features * 33. Only lanes of one warp touch a table; __syncwarp orders both kinds of
/// memory.
template <class T, bool kJvp>
__global__ void forward_kernel(Tables tab, ListView L, PairData<T> P, T* out, T* global_acc) {
    extern __shared__ __align__(16) unsigned char smem_raw[];
    const int lane = threadIdx.x & (kWarp - 1), warp = threadIdx.x / kWarp;
    const int n_acc = max(max(tab.ng2, tab.n_ang), 1);
    T* tables = global_acc ? global_acc + size_t(blockIdx.x) * (blockDim.x / kWarp) * n_acc * kAccStride
                           : reinterpret_cast<T*>(smem_raw);
    T* acc = tables + size_t(warp) * n_acc * kAccStride;
    for (int k = 0; k < n_acc; ++k) acc[k * kAccStride + lane] = T(0);
    __syncwarp();
    const int32_t ns = tab.ns;
    const int64_t warps = int64_t(gridDim.x) * (blockDim.x / kWarp);
    for (int64_t i = blockIdx.x * int64_t(blockDim.x / kWarp) + warp; i < L.n_atoms; i += warps) {
        T* g = out + i * tab.F;
        for (int32_t s = 0; s < ns && tab.ng2 > 0; ++s) {
            g2_lane<T, kJvp>(tab, L, P, i, s, lane, acc + lane, kAccStride);
            flush(acc, tab.ng2, g + int64_t(s) * tab.ng2, lane);
        }
        if (tab.n_ang == 0) continue;
        for (int32_t s1 = 0; s1 < ns; ++s1) {
            for (int32_t s2 = s1; s2 < ns; ++s2) {
                angular_lane<T, kJvp>(tab, L, P, i, s1, s2, lane, acc + lane, kAccStride);
                flush(acc, tab.n_ang, g + tab.n_radial + int64_t(tab.pair_index[s1 * ns + s2]) * tab.n_ang, lane);
            }
        }
    }
}

/// Fused VJP: acc4 (n_pairs, 4) receives dE/dv per pair, then forces (atomics on the
/// neighbor, one per center) and the per-atom virial are assembled.
template <class T>
__global__ void vjp_kernel(Tables tab, ListView L, PairData<T> P, const T* dE_dG, T* acc4, T* forces,
                           T* virial_atom) {
    const int lane = threadIdx.x & (kWarp - 1);
    const int32_t ns = tab.ns;
    const int64_t warps = int64_t(gridDim.x) * (blockDim.x / kWarp);
    for (int64_t i = blockIdx.x * int64_t(blockDim.x / kWarp) + threadIdx.x / kWarp; i < L.n_atoms; i += warps) {
        const T* w = dE_dG + i * tab.F;
        const int32_t* seg = L.seg + i * (ns + 1);
        for (int32_t s = 0; s < ns && tab.ng2 > 0; ++s) g2_vjp_lane(tab, L, P, w, i, s, lane, acc4);
        __syncwarp();
        for (int32_t s1 = 0; s1 < ns && tab.n_ang > 0; ++s1) {
            for (int32_t s2 = s1; s2 < ns; ++s2) {
                const int64_t first = L.center_offset[i] + seg[s1], K1 = seg[s1 + 1] - seg[s1];
                for (int64_t a = 0; a < K1; ++a) {
                    T part[4];
                    vjp_row_lane(tab, L, P, w, i, s1, s2, a, lane, acc4, part);
#pragma unroll
                    for (int q = 0; q < 4; ++q) part[q] = warp_sum(part[q]);
                    if (lane == 0) {
                        T* a1 = acc4 + 4 * (first + a);
                        for (int q = 0; q < 4; ++q) a1[q] += part[q];
                    }
                    __syncwarp();
                }
            }
        }
        __syncwarp();
        T fi[3], vir[9];
        assemble_lane(L, acc4, i, lane, [forces](int64_t j, int c, T x) { atomicAdd(forces + 3 * j + c, x); }, fi,
                      vir);
#pragma unroll
        for (int c = 0; c < 3; ++c) fi[c] = warp_sum(fi[c]);
#pragma unroll
        for (int q = 0; q < 9; ++q) vir[q] = warp_sum(vir[q]);
        if (lane == 0) {
            for (int c = 0; c < 3; ++c) atomicAdd(forces + 3 * i + c, fi[c]);
            for (int q = 0; q < 9; ++q) virial_atom[9 * i + q] = vir[q];
        }
    }
}

/// virials[k] = sum of virial_atom over the atoms of structure k (one block per structure).
template <class T>
__global__ void reduce_virial_kernel(const T* virial_atom, const int64_t* offsets, int64_t n_structures, T* virials) {
    __shared__ T part[9][256];
    for (int64_t k = blockIdx.x; k < n_structures; k += gridDim.x) {
        T s[9];
        for (int q = 0; q < 9; ++q) s[q] = T(0);
        for (int64_t i = offsets[k] + threadIdx.x; i < offsets[k + 1]; i += blockDim.x)
            for (int q = 0; q < 9; ++q) s[q] += virial_atom[9 * i + q];
        for (int q = 0; q < 9; ++q) part[q][threadIdx.x] = s[q];
        __syncthreads();
        for (int width = blockDim.x / 2; width > 0; width /= 2) {
            if (int(threadIdx.x) < width)
                for (int q = 0; q < 9; ++q) part[q][threadIdx.x] += part[q][threadIdx.x + width];
            __syncthreads();
        }
        if (threadIdx.x < 9) virials[9 * k + threadIdx.x] = part[threadIdx.x][0];
        __syncthreads();
    }
}

}  // namespace acsf_kernels

using namespace acsf_kernels;

// ---- host side -------------------------------------------------------------------------
struct AcsfKernels::Impl {
    int device = 0;
    AcsfSpec spec;
    HostTables host;
    Buffer<double> g2;
    Buffer<EtaGroup> groups;  // g4 groups, then g5 groups
    Buffer<AngularItem> items;
    Buffer<int32_t> pair_index;
    int max_shared = 48 * 1024;  ///< opt-in shared memory per block on the device
    int n_sm = 1;                ///< multiprocessors on the device
    /// Streams that ran kernels reading the tables; the destructor waits for them before
    /// freeing (the tables are freed on the legacy default stream, which does not order
    /// after torch's non-blocking streams).
    mutable detail::StreamUses uses;

    Tables tables() const { return host.view(spec, g2.get(), groups.get(), items.get(), pair_index.get()); }

    void check_list(const NeighborList& nl) const {
        if (nl.device() != device) {
            std::ostringstream msg;
            msg << "the neighbor list is on GPU " << nl.device() << ", the descriptor tables on GPU " << device;
            throw InvalidInput(msg.str());
        }
        if (nl.n_species() != spec.n_species) throw InvalidInput("the neighbor list was built for another species count");
        if (nl.cutoff() != spec.cutoff) throw InvalidInput("the neighbor list was built with another cutoff");
    }

    ListView view(const NeighborList& nl) const {
        const NeighborList::Impl& L = nl.impl();
        return ListView{L.center_offset.get(), L.seg.get(), L.neighbor.get(), L.vector.get(), L.structure.get(),
                        L.n_atoms};
    }
};

namespace {

/// Blocks of `warps` warps for one warp per center, at most a few waves of the device.
int center_grid(int64_t n_atoms, int warps) {
    int64_t blocks = (n_atoms + warps - 1) / warps;
    return int(std::max<int64_t>(1, std::min<int64_t>(blocks, int64_t(1) << 20)));
}

template <class T>
struct PairScratch {
    Buffer<T> r, fc, dfc, dx, dy, dz;
    PairScratch(int64_t n_pairs, bool tangent, cudaStream_t s)
        : r(size_t(n_pairs), s), fc(size_t(n_pairs), s), dfc(size_t(n_pairs), s) {
        if (tangent) {
            dx = Buffer<T>(size_t(n_pairs), s);
            dy = Buffer<T>(size_t(n_pairs), s);
            dz = Buffer<T>(size_t(n_pairs), s);
        }
    }
    PairData<T> data() const { return {r.get(), fc.get(), dfc.get(), dx.get(), dy.get(), dz.get()}; }
};

constexpr int kPairWarps = 8;
constexpr int kVjpWarps = 4;

template <class T>
void run_forward(const AcsfKernels::Impl& K, const NeighborList& nl, const T* displacement, const T* strain, T* out,
                 bool jvp, cudaStream_t stream) {
    const NeighborList::Impl& L = nl.impl();
    const Tables tab = K.tables();
    const ListView lv = K.view(nl);
    PairScratch<T> scratch(L.n_pairs, jvp, stream);
    const PairData<T> pd = scratch.data();
    pair_kernel<T><<<center_grid(L.n_atoms, kPairWarps), kPairWarps * kWarp, 0, stream>>>(tab, lv, pd, displacement,
                                                                                          strain, jvp);
    ALIP_CUDA_LAUNCH_CHECK();
    // accumulators: (warps, max(ng2, n_ang), 33) of T per block, in shared memory
    const int n_acc = std::max({tab.ng2, tab.n_ang, 1});
    const size_t per_warp = size_t(n_acc) * kAccStride * sizeof(T);
    int warps = 4;
    while (warps > 1 && size_t(warps) * per_warp > size_t(K.max_shared)) warps /= 2;
    size_t bytes = size_t(warps) * per_warp;
    int blocks = center_grid(L.n_atoms, warps);
    auto kernel = jvp ? forward_kernel<T, true> : forward_kernel<T, false>;
    Buffer<T> global_acc;
    if (bytes > size_t(K.max_shared)) {
        // More functions than one warp's table fits in shared memory: the tables go to
        // global memory (L1/L2-cached), one per warp of a grid capped at ~256 MB of them;
        // the kernel's grid-stride loop covers every center.
        warps = 4;
        bytes = 0;
        const int64_t budget = int64_t(256) << 20;
        const int64_t cap = std::max<int64_t>(1, std::min<int64_t>(int64_t(4) * K.n_sm, budget / int64_t(warps * per_warp)));
        blocks = int(std::min<int64_t>(blocks, cap));
        global_acc = Buffer<T>(size_t(blocks) * size_t(warps) * size_t(n_acc) * kAccStride, stream);
    } else if (bytes > 48 * 1024) {
        // Opt in to more than 48 KB. Always the device's maximum, never `bytes`: the
        // attribute is global to the kernel, and another thread may be launching it with a
        // larger table right now.
        ALIP_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, K.max_shared));
    }
    kernel<<<blocks, warps * kWarp, bytes, stream>>>(tab, lv, pd, out, global_acc.get());
    ALIP_CUDA_LAUNCH_CHECK();
    L.record_use(stream);
    K.uses.record(stream);
}

template <class T>
void run_vjp(const AcsfKernels::Impl& K, const NeighborList& nl, const T* dE_dG, T* forces, T* virials,
             cudaStream_t stream) {
    const NeighborList::Impl& L = nl.impl();
    const Tables tab = K.tables();
    const ListView lv = K.view(nl);
    PairScratch<T> scratch(L.n_pairs, false, stream);
    const PairData<T> pd = scratch.data();
    Buffer<T> acc4(size_t(4 * L.n_pairs), stream), virial_atom(size_t(9 * L.n_atoms), stream);
    acc4.zero(stream);
    ALIP_CUDA_CHECK(cudaMemsetAsync(forces, 0, size_t(3 * L.n_atoms) * sizeof(T), stream));
    pair_kernel<T><<<center_grid(L.n_atoms, kPairWarps), kPairWarps * kWarp, 0, stream>>>(tab, lv, pd, nullptr,
                                                                                          nullptr, false);
    ALIP_CUDA_LAUNCH_CHECK();
    vjp_kernel<T><<<center_grid(L.n_atoms, kVjpWarps), kVjpWarps * kWarp, 0, stream>>>(tab, lv, pd, dE_dG,
                                                                                      acc4.get(), forces,
                                                                                      virial_atom.get());
    ALIP_CUDA_LAUNCH_CHECK();
    const int blocks = int(std::min<int64_t>(L.n_structures, 65535));
    reduce_virial_kernel<T><<<blocks, 256, 0, stream>>>(virial_atom.get(), L.atom_offsets.get(), L.n_structures,
                                                         virials);
    ALIP_CUDA_LAUNCH_CHECK();
    L.record_use(stream);
    K.uses.record(stream);
}

}  // namespace

AcsfKernels::AcsfKernels(const AcsfSpec& spec, int device) : impl_(std::make_unique<Impl>()) {
    const Acsf validated(spec);  // the CPU path's parameter checks (throws InvalidInput)
    Impl& K = *impl_;
    int count = 0;
    ALIP_CUDA_CHECK(cudaGetDeviceCount(&count));
    if (device < 0) ALIP_CUDA_CHECK(cudaGetDevice(&device));
    if (device >= count) {
        std::ostringstream msg;
        msg << "no CUDA device " << device << " (" << count << " visible)";
        throw InvalidInput(msg.str());
    }
    detail::DeviceGuard guard(device);
    K.device = device;
    K.spec = validated.spec();  // normalised: rs2 >= 0 (rs2 < 0 given: rs)
    K.host = build_tables(K.spec);
    if (K.host.n_features != validated.n_features()) throw std::logic_error("feature count differs from the CPU core");
    ALIP_CUDA_CHECK(cudaDeviceGetAttribute(&K.max_shared, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    ALIP_CUDA_CHECK(cudaDeviceGetAttribute(&K.n_sm, cudaDevAttrMultiProcessorCount, device));

    cudaStream_t stream = nullptr;
    K.g2 = detail::to_device(K.host.g2, stream);
    K.groups = detail::to_device(K.host.groups, stream);
    K.items = detail::to_device(K.host.items, stream);
    K.pair_index = detail::to_device(K.host.pair_index, stream);
    ALIP_CUDA_CHECK(cudaStreamSynchronize(stream));
}

AcsfKernels::~AcsfKernels() {
    if (!impl_) return;
    int previous = -1;  // no DeviceGuard: a destructor must not throw (e.g. at interpreter exit)
    const bool switched = cudaGetDevice(&previous) == cudaSuccess && previous != impl_->device &&
                          cudaSetDevice(impl_->device) == cudaSuccess;
    impl_->uses.wait();  // kernels that read the tables, on any stream, have finished
    impl_.reset();
    cudaGetLastError();
    if (switched) cudaSetDevice(previous);
}

int AcsfKernels::device() const { return impl_->device; }
int64_t AcsfKernels::n_features() const { return impl_->host.n_features; }

void AcsfKernels::values(const NeighborList& nl, Dtype dtype, void* out, void* stream) const {
    impl_->check_list(nl);
    detail::DeviceGuard guard(impl_->device);
    detail::check_on_device(out, impl_->device, "out");
    if (!out) throw InvalidInput("out is required");
    auto s = static_cast<cudaStream_t>(stream);
    if (dtype == Dtype::Float64) run_forward<double>(*impl_, nl, nullptr, nullptr, static_cast<double*>(out), false, s);
    else run_forward<float>(*impl_, nl, nullptr, nullptr, static_cast<float*>(out), false, s);
}

void AcsfKernels::forces_virial(const NeighborList& nl, Dtype dtype, const void* dE_dG, void* forces, void* virials,
                                void* stream) const {
    impl_->check_list(nl);
    detail::DeviceGuard guard(impl_->device);
    detail::check_on_device(dE_dG, impl_->device, "dE_dG");
    detail::check_on_device(forces, impl_->device, "forces");
    detail::check_on_device(virials, impl_->device, "virials");
    if (!dE_dG || !forces || !virials) throw InvalidInput("dE_dG, forces and virials are required");
    auto s = static_cast<cudaStream_t>(stream);
    if (dtype == Dtype::Float64)
        run_vjp<double>(*impl_, nl, static_cast<const double*>(dE_dG), static_cast<double*>(forces),
                        static_cast<double*>(virials), s);
    else
        run_vjp<float>(*impl_, nl, static_cast<const float*>(dE_dG), static_cast<float*>(forces),
                       static_cast<float*>(virials), s);
}

void AcsfKernels::jvp(const NeighborList& nl, Dtype dtype, const void* displacement, const void* strain, void* out,
                      void* stream) const {
    impl_->check_list(nl);
    detail::DeviceGuard guard(impl_->device);
    detail::check_on_device(displacement, impl_->device, "displacement");
    detail::check_on_device(strain, impl_->device, "strain");
    detail::check_on_device(out, impl_->device, "out");
    if (!out) throw InvalidInput("out is required");
    auto s = static_cast<cudaStream_t>(stream);
    if (dtype == Dtype::Float64)
        run_forward<double>(*impl_, nl, static_cast<const double*>(displacement), static_cast<const double*>(strain),
                            static_cast<double*>(out), true, s);
    else
        run_forward<float>(*impl_, nl, static_cast<const float*>(displacement), static_cast<const float*>(strain),
                           static_cast<float*>(out), true, s);
}

}  // namespace cuda
}  // namespace alip
