// volume_render plugin: CUDA kernels, one thread per ray running the per-ray math of volume_render.h.
// Includes only CUDA headers and volume_render.h (no torch), so `nvcc -c volume_render.cu` works on
// any machine with the CUDA toolkit; volume_render.cpp binds the launchers to torch.
#include <cuda_runtime.h>

#include "volume_render.h"

namespace volume_render_kernels {
namespace {

constexpr int kBlock = 128;

int grid_size(int64_t slots) { return static_cast<int>((slots + kBlock - 1) / kBlock); }

// Each of `slots` threads owns one scratch row and renders rays tid, tid + slots, ...
__global__ void forward_kernel(Params p, Inputs<float> in, float* scratch, int* order, int64_t slots, float* rgb,
                               float* depth, float* weight_sum, float* coarse_weights, float* fine) {
    const int64_t slot = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (slot >= slots) return;
    Scratch<float> s(p, scratch + slot * scratch_size(p), order + slot * (p.coarse + p.fine));
    for (int64_t ray = slot; ray < p.rays; ray += slots)
        forward_ray(p, in, ray, s, rgb, depth, weight_sum, coarse_weights, fine);
}

struct AtomicAdd {
    __device__ void operator()(float* target, float value) const { atomicAdd(target, value); }
};

// Decoder gradients go to the thread's own row of weight_grads (summed by the caller); plane
// gradients, shared by all rays, are added atomically.
__global__ void backward_kernel(Params p, Inputs<float> in, float* scratch, int* order, int64_t slots,
                                const float* grad_rgb, const float* grad_depth, const float* grad_total,
                                float* weight_grads, float* planes_grad) {
    const int64_t slot = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (slot >= slots) return;
    Scratch<float> s(p, scratch + slot * scratch_size(p), order + slot * (p.coarse + p.fine));
    Grads<float> g(p, weight_grads + slot * weight_grad_size(p), planes_grad);
    for (int64_t ray = slot; ray < p.rays; ray += slots)
        backward_ray(p, in, ray, s, grad_rgb + ray * (p.outputs - 1), grad_depth[ray], grad_total[ray], g, AtomicAdd());
}

}  // namespace

int launch_forward(const Params& p, const Inputs<float>& in, float* scratch, int* order, int64_t slots, float* rgb,
                   float* depth, float* weight_sum, float* coarse_weights, float* fine, void* stream) {
    if (p.rays == 0) return 0;
    forward_kernel<<<grid_size(slots), kBlock, 0, static_cast<cudaStream_t>(stream)>>>(
        p, in, scratch, order, slots, rgb, depth, weight_sum, coarse_weights, fine);
    return static_cast<int>(cudaGetLastError());
}

int launch_backward(const Params& p, const Inputs<float>& in, float* scratch, int* order, int64_t slots,
                    const float* grad_rgb, const float* grad_depth, const float* grad_total, float* weight_grads,
                    float* planes_grad, void* stream) {
    if (p.rays == 0) return 0;
    backward_kernel<<<grid_size(slots), kBlock, 0, static_cast<cudaStream_t>(stream)>>>(
        p, in, scratch, order, slots, grad_rgb, grad_depth, grad_total, weight_grads, planes_grad);
    return static_cast<int>(cudaGetLastError());
}

}  // namespace volume_render_kernels
