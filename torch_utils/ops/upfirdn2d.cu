// upfirdn2d plugin: CUDA kernel. Includes only CUDA headers, upfirdn2d.h and cuda_half_io.h (no torch), so that
// `nvcc -c upfirdn2d.cu` works on any machine with the CUDA toolkit; upfirdn2d.cpp binds it to torch.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "cuda_half_io.h"
#include "upfirdn2d.h"

namespace upfirdn2d_kernels {
namespace {

using cuda_half_io::store;
using cuda_half_io::to_float;

// One thread per output pixel (grid-stride over all planes); taps are read from global memory,
// which the L1 cache serves well for the small filters used here.
template <typename T> __global__ void kernel(Geometry g, int64_t planes, const T* x, const float* k, T* y) {
    const int64_t plane_out = (int64_t)g.out_h * g.out_w;
    const int64_t total = planes * plane_out;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)blockDim.x * gridDim.x) {
        const int64_t plane = i / plane_out;
        const int rem = (int)(i - plane * plane_out);
        const T* src = x + plane * g.in_h * g.in_w;
        float v = pixel(g, k, rem / g.out_w, rem % g.out_w, [&](int64_t j) { return to_float(src[j]); });
        store(y, i, v);
    }
}

constexpr int kBlock = 256;

template <typename T> int launch(const Geometry& g, int64_t planes, const T* x, const float* k, T* y, void* stream) {
    int64_t total = planes * g.out_h * g.out_w;
    int64_t blocks = (total + kBlock - 1) / kBlock;
    int grid = (int)(blocks < 65535 * 8 ? (blocks > 0 ? blocks : 1) : 65535 * 8);
    kernel<T><<<grid, kBlock, 0, static_cast<cudaStream_t>(stream)>>>(g, planes, x, k, y);
    return static_cast<int>(cudaGetLastError());
}

}  // namespace

int launch_f32(const Geometry& g, int64_t planes, const float* x, const float* k, float* y, void* stream) {
    return launch<float>(g, planes, x, k, y, stream);
}

int launch_f16(const Geometry& g, int64_t planes, const void* x, const float* k, void* y, void* stream) {
    return launch<__half>(g, planes, static_cast<const __half*>(x), k, static_cast<__half*>(y), stream);
}

}  // namespace upfirdn2d_kernels
