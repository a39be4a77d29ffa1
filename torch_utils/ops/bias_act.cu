// bias_act plugin: CUDA kernels. Includes only CUDA headers and bias_act.h (no torch), so that
// `nvcc -c bias_act.cu` works on any machine with the CUDA toolkit; bias_act.cpp binds them to torch.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "bias_act.h"

namespace bias_act_kernels {
namespace {

// Element loads/stores; the math runs in float for half inputs.
__device__ __forceinline__ float load(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float load(const __half* p, int64_t i) { return __half2float(p[i]); }
__device__ __forceinline__ void store(float* p, int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void store(__half* p, int64_t i, float v) { p[i] = __float2half_rn(v); }

__device__ __forceinline__ int64_t channel_of(const Params& p, int64_t i) { return (i / p.inner) % p.channels; }

template <typename T> __global__ void forward_kernel(Params p, const T* x, const T* b, T* y) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < p.numel; i += (int64_t)blockDim.x * gridDim.x) {
        float v = load(x, i) + (b ? load(b, channel_of(p, i)) : 0.f);
        store(y, i, forward_value<float>(p.act, v, p.alpha, p.gain, p.clamp));
    }
}

template <typename T> __global__ void backward_kernel(Params p, const T* dy, const T* x, const T* b, const T* y, T* dx) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < p.numel; i += (int64_t)blockDim.x * gridDim.x) {
        float v = load(x, i) + (b ? load(b, channel_of(p, i)) : 0.f);
        store(dx, i, backward_value<float>(p.act, p.order, load(dy, i), v, y ? load(y, i) : 0.f, p.alpha, p.gain, p.clamp));
    }
}

constexpr int kBlock = 256;

int grid_size(int64_t numel) {
    int64_t blocks = (numel + kBlock - 1) / kBlock;
    return static_cast<int>(blocks < 65535 * 8 ? (blocks > 0 ? blocks : 1) : 65535 * 8);  // Grid-stride loops cover the rest.
}

}  // namespace

int launch_forward_f32(const Params& p, const float* x, const float* b, float* y, void* stream) {
    forward_kernel<float><<<grid_size(p.numel), kBlock, 0, static_cast<cudaStream_t>(stream)>>>(p, x, b, y);
    return static_cast<int>(cudaGetLastError());
}

int launch_forward_f16(const Params& p, const void* x, const void* b, void* y, void* stream) {
    forward_kernel<__half><<<grid_size(p.numel), kBlock, 0, static_cast<cudaStream_t>(stream)>>>(
        p, static_cast<const __half*>(x), static_cast<const __half*>(b), static_cast<__half*>(y));
    return static_cast<int>(cudaGetLastError());
}

int launch_backward_f32(const Params& p, const float* dy, const float* x, const float* b, const float* y, float* dx,
                        void* stream) {
    backward_kernel<float><<<grid_size(p.numel), kBlock, 0, static_cast<cudaStream_t>(stream)>>>(p, dy, x, b, y, dx);
    return static_cast<int>(cudaGetLastError());
}

int launch_backward_f16(const Params& p, const void* dy, const void* x, const void* b, const void* y, void* dx,
                        void* stream) {
    backward_kernel<__half><<<grid_size(p.numel), kBlock, 0, static_cast<cudaStream_t>(stream)>>>(
        p, static_cast<const __half*>(dy), static_cast<const __half*>(x), static_cast<const __half*>(b),
        static_cast<const __half*>(y), static_cast<__half*>(dx));
    return static_cast<int>(cudaGetLastError());
}

}  // namespace bias_act_kernels
