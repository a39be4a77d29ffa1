// filtered_lrelu plugin: CUDA kernel for one stage (upfirdn2d + pointwise step). Includes only CUDA
// headers and the plugin's own headers (no torch), so `nvcc -c filtered_lrelu.cu` works anywhere the
// CUDA toolkit is installed; filtered_lrelu.cpp binds it to torch.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "cuda_half_io.h"
#include "filtered_lrelu.h"
#include "upfirdn2d.h"

namespace filtered_lrelu_kernels {
namespace {

using upfirdn2d_kernels::Geometry;

using cuda_half_io::store;
using cuda_half_io::to_float;

// One thread per output pixel of the stage, grid-stride over all planes.
template <typename TIn, typename TOut, int M>
__global__ void stage_kernel(Geometry g, int64_t planes, int64_t channels, const TIn* x, const float* bias,
                             const float* k, TOut* y, Step step, uint8_t* mask) {
    const int64_t plane_out = (int64_t)g.out_h * g.out_w;
    const int64_t total = planes * plane_out;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)blockDim.x * gridDim.x) {
        const int64_t plane = i / plane_out;
        const int rem = (int)(i - plane * plane_out);
        const TIn* src = x + plane * g.in_h * g.in_w;
        const float b = bias ? bias[plane % channels] : 0.f;
        // The bias is added to every input sample, so it goes through the filter as the reference does.
        float v = upfirdn2d_kernels::pixel(g, k, rem / g.out_w, rem % g.out_w,
                                           [&](int64_t j) { return to_float(src[j]) + b; });
        if (M == kActivate) {
            uint8_t bits;
            v = activate<float>(step, v, &bits);
            if (mask) mask[i] = bits;  // Only recorded when a gradient will be needed.
        } else if (M == kMaskGradient) {
            v *= step_derivative<float>(step, mask[i]);
        }
        store(y, i, v);
    }
}

constexpr int kBlock = 256;

template <typename TIn, typename TOut>
int launch_typed(const Geometry& g, int64_t planes, int64_t channels, const void* x, const float* bias, const float* k,
                 void* y, int mode, const Step& step, uint8_t* mask, cudaStream_t stream) {
    int64_t total = planes * g.out_h * g.out_w;
    int64_t blocks = (total + kBlock - 1) / kBlock;
    int grid = (int)(blocks < 65535 * 8 ? (blocks > 0 ? blocks : 1) : 65535 * 8);
    const TIn* xi = static_cast<const TIn*>(x);
    TOut* yo = static_cast<TOut*>(y);
    if (mode == kActivate)
        stage_kernel<TIn, TOut, kActivate><<<grid, kBlock, 0, stream>>>(g, planes, channels, xi, bias, k, yo, step, mask);
    else if (mode == kMaskGradient)
        stage_kernel<TIn, TOut, kMaskGradient><<<grid, kBlock, 0, stream>>>(g, planes, channels, xi, bias, k, yo, step, mask);
    else
        stage_kernel<TIn, TOut, kPlain><<<grid, kBlock, 0, stream>>>(g, planes, channels, xi, bias, k, yo, step, mask);
    return static_cast<int>(cudaGetLastError());
}

}  // namespace

int launch_stage(const Geometry& g, int64_t planes, int64_t channels, const void* x, bool half_in, const float* bias,
                 const float* k, void* y, bool half_out, int mode, const Step& step, uint8_t* mask, void* stream) {
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    if (half_in && half_out) return launch_typed<__half, __half>(g, planes, channels, x, bias, k, y, mode, step, mask, s);
    if (half_in) return launch_typed<__half, float>(g, planes, channels, x, bias, k, y, mode, step, mask, s);
    if (half_out) return launch_typed<float, __half>(g, planes, channels, x, bias, k, y, mode, step, mask, s);
    return launch_typed<float, float>(g, planes, channels, x, bias, k, y, mode, step, mask, s);
}

}  // namespace filtered_lrelu_kernels
